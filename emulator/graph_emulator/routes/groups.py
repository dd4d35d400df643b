"""Groups: list, count, create, read, update, delete; members (direct, users only, transitive) and $ref."""

import re

from .. import odata
from ..calls import Outcome
from ..engine import GraphError
from .common import enumerate_from, parse_member_select, reject_search, reject_unsupported_options, require_object, select_fragment
from .registry import ID, route

MAX_BIND_PER_REQUEST = 20


@route("GET", r"/v1\.0/groups", "/v1.0/groups")
def list_groups(app, call, params, ctx):
    reject_search(call)
    select = odata.parse_select(call.query.get("$select"), "group")
    advanced = odata.is_advanced(call.query, call.headers)
    predicate = odata.parse_filter(call.query.get("$filter"), "group", advanced)
    directory = app.emu.directory
    count_total = None
    if advanced:

        def count_total():
            return sum(1 for _, group in directory.iter_groups(0) if predicate is None or predicate(group))

    return app.pager.list_response(
        call, app.context_url(call, select_fragment("groups", select)), directory.iter_groups, predicate, select, "group", count_total=count_total
    )


@route("GET", r"/v1\.0/groups/\$count", "/v1.0/groups/$count")
def count_groups(app, call, params, ctx):
    if call.headers.get("consistencylevel", "").lower() != "eventual":
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    predicate = odata.parse_filter(call.query.get("$filter"), "group", True)
    return Outcome(200, str(sum(1 for _, group in app.emu.directory.iter_groups(0) if predicate is None or predicate(group))))


def bound_member_ids(body, limit=None):
    """IDs from ``members@odata.bind`` URLs such as https://graph.microsoft.com/v1.0/directoryObjects/{id}."""
    urls = body.get("members@odata.bind")
    if urls is None:
        return []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise GraphError(400, "Request_BadRequest", "'members@odata.bind' must be an array of URLs.")
    if limit is not None and len(urls) > limit:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"The request contains {len(urls)} 'members@odata.bind' references; at most {limit} members can be added in a single request.",
        )
    return [object_id_from_url(u) for u in urls]


def object_id_from_url(url):
    match = re.search(r"/(?:directoryObjects|users|groups)(?:/|\(')([^/'()?]+)'?\)?/?$", url, re.IGNORECASE)
    if not match:
        raise GraphError(400, "Request_BadRequest", f"Invalid object reference '{url}': expected https://graph.microsoft.com/v1.0/directoryObjects/{{id}}.")
    return match.group(1)


def group_body_without_binds(body):
    return {k: v for k, v in body.items() if k != "members@odata.bind" and k != "owners@odata.bind"}


@route("POST", r"/v1\.0/groups", "/v1.0/groups")
def create_group(app, call, params, ctx):
    body = require_object(call.body)
    member_ids = bound_member_ids(body, MAX_BIND_PER_REQUEST)
    group = app.emu.directory.create_group(group_body_without_binds(body), ctx, member_ids=member_ids)
    result = {"@odata.context": app.context_url(call, "groups/$entity")}
    result.update(odata.project(group, None, "group"))
    return Outcome(201, result)


@route("GET", r"/v1\.0/groups/" + ID, "/v1.0/groups/{id}")
def get_group(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    select = odata.parse_select(call.query.get("$select"), "group")
    group = app.emu.directory.get_group(params["id"])
    body = {"@odata.context": app.context_url(call, select_fragment("groups", select) + "/$entity")}
    body.update(odata.project(group, select, "group"))
    return Outcome(200, body)


@route("PATCH", r"/v1\.0/groups/" + ID, "/v1.0/groups/{id}")
def update_group(app, call, params, ctx):
    body = require_object(call.body)
    member_ids = bound_member_ids(body, MAX_BIND_PER_REQUEST)
    app.emu.directory.update_group(params["id"], group_body_without_binds(body), ctx, add_member_ids=member_ids)
    return Outcome(204)


@route("DELETE", r"/v1\.0/groups/" + ID, "/v1.0/groups/{id}")
def delete_group(app, call, params, ctx):
    app.emu.directory.delete_group(params["id"], ctx)
    return Outcome(204)


class LazyMembers:
    """The member dicts of a listing, built on access: a page of 999 builds 999, not the whole group.

    Only used inside a route handler, which runs under the directory lock, so every dict is built
    from the same state the ``(id, kind)`` references were taken from.
    """

    def __init__(self, directory, refs, select):
        self.directory = directory
        self.refs = refs
        self.select = select

    def __len__(self):
        return len(self.refs)

    def __getitem__(self, index):
        member_id, kind = self.refs[index]
        return self.directory.member_dict(member_id, kind, self.select)

    def __iter__(self):
        return (self[index] for index in range(len(self.refs)))


def member_listing(app, call, refs, engine_select, users_only=False):
    """A member collection from ``(id, kind)`` references (engine order); dicts are built for the page only."""
    advanced = odata.is_advanced(call.query, call.headers)
    if "$filter" in call.query and not advanced:
        raise GraphError(400, "Request_UnsupportedQuery", "The specified filter to the reference property query is currently not supported.")
    reject_search(call)
    select = odata.parse_select(call.query.get("$select"), "user") if users_only else parse_member_select(call.query.get("$select"))
    predicate = odata.parse_filter(call.query.get("$filter"), "user", advanced) if "$filter" in call.query else None
    if users_only:
        refs = [ref for ref in refs if ref[1] == "user"]
    members = LazyMembers(app.emu.directory, refs, engine_select)
    count_total = None
    if advanced:

        def count_total():
            if predicate is None:
                return len(members)
            return sum(1 for m in members if predicate(m))

    fragment = "users" if users_only else "directoryObjects"
    return app.pager.list_response(
        call, app.context_url(call, fragment), lambda start: enumerate_from(members, start), predicate, select, "user", with_type=True, count_total=count_total
    )


def member_select(call):
    raw = call.query.get("$select")
    if raw is None or "$filter" in call.query:
        return None
    return tuple(parse_member_select(raw))


@route("GET", r"/v1\.0/groups/" + ID + r"/members", "/v1.0/groups/{id}/members")
def list_members(app, call, params, ctx):
    engine_select = member_select(call)  # first, as before: a bad $select answers 400 even for an unknown group
    return member_listing(app, call, app.emu.directory.member_refs(params["id"]), engine_select)


@route("GET", r"/v1\.0/groups/" + ID + r"/members/microsoft\.graph\.user", "/v1.0/groups/{id}/members/microsoft.graph.user")
def list_user_members(app, call, params, ctx):
    engine_select = member_select(call)  # first, as before: a bad $select answers 400 even for an unknown group
    return member_listing(app, call, app.emu.directory.member_refs(params["id"]), engine_select, users_only=True)


@route("GET", r"/v1\.0/groups/" + ID + r"/transitiveMembers", "/v1.0/groups/{id}/transitiveMembers")
def list_transitive_members(app, call, params, ctx):
    engine_select = member_select(call)  # first, as before: a bad $select answers 400 even for an unknown group
    return member_listing(app, call, app.emu.directory.transitive_member_refs(params["id"]), engine_select)


@route("POST", r"/v1\.0/groups/" + ID + r"/members/\$ref", "/v1.0/groups/{id}/members/$ref")
def add_member_ref(app, call, params, ctx):
    body = require_object(call.body)
    reference = body.get("@odata.id")
    if not isinstance(reference, str):
        raise GraphError(400, "Request_BadRequest", "The request body must contain '@odata.id' with the URL of the directory object to add.")
    app.emu.directory.add_members(params["id"], [object_id_from_url(reference)], ctx)
    return Outcome(204)


@route("DELETE", r"/v1\.0/groups/" + ID + r"/members/(?P<member>[^/]+)/\$ref", "/v1.0/groups/{id}/members/{id}/$ref")
def remove_member_ref(app, call, params, ctx):
    app.emu.directory.remove_member(params["id"], params["member"], ctx)
    return Outcome(204)
