"""What the resource modules share: query options ($select, $search, ...), request bodies, collections."""

from .. import odata
from ..engine import GraphError


def select_fragment(name, select):
    return f"{name}({','.join(select)})" if select else name


def reject_unsupported_options(call, allowed):
    if "$expand" in call.query and "$expand" not in allowed:
        raise GraphError(400, "Request_BadRequest", "$expand is not supported by the graph emulator: read the relationship (e.g. /members) instead.")
    for option in call.query:
        if option.startswith("$") and option not in allowed:
            name = option[1:].capitalize()
            raise GraphError(
                400,
                "Request_BadRequest",
                f"The query specified in the URI is not valid. Query option '{name}' is not allowed. "
                "To allow it, set the 'AllowedQueryOptions' property on EnableQueryAttribute or "
                "QueryValidationSettings.",
            )


LIST_OPTIONS = frozenset(("$select", "$filter", "$top", "$count", "$skiptoken", "$search", "$orderby", "$format"))


def reject_list_options(call, allowed=LIST_OPTIONS):
    """A directory collection: ``$skip`` is refused as Graph refuses it (graph-api.md 5), ``$expand`` because the
    emulator does not expand (it used to ignore it silently), any other unknown ``$`` option as OData does."""
    if "$skip" in call.query:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$expand" in call.query:
        raise GraphError(400, "Request_BadRequest", "$expand is not supported by the graph emulator: read the relationship (e.g. /members) instead.")
    reject_unsupported_options(call, allowed)


def reject_search(call):
    reject_list_options(call)
    if "$search" in call.query:
        if call.headers.get("consistencylevel", "").lower() != "eventual":
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            )
        raise GraphError(400, "Request_UnsupportedQuery", "$search is not supported by the graph emulator.")
    if "$orderby" in call.query:
        raise GraphError(400, "Request_UnsupportedQuery", "$orderby is not supported by the graph emulator on this collection.")


def parse_plain_select(raw, known, type_name):
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in known:
            raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{name}' on type '{type_name}'.")
    return names


def parse_member_select(raw):
    """$select on directoryObject collections: a property of users or of groups."""
    if raw is None:
        return None
    names = []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        canonical = odata.canonical_property("user", name) or odata.canonical_property("group", name)
        if canonical is None:
            raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{name}' on type 'microsoft.graph.directoryObject'.")
        names.append(canonical)
    return names


def enumerate_from(items, start):
    return ((index, items[index]) for index in range(start, len(items)))


def require_object(body):
    if not isinstance(body, dict):
        raise GraphError(400, "Request_BadRequest", "The request body must be a JSON object.")
    return body
