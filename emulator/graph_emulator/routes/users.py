"""Users: list, count, create, read, update, delete; a user's memberships (memberOf, transitiveMemberOf)."""

from .. import odata
from ..calls import Outcome
from ..engine import GraphError
from .common import enumerate_from, parse_member_select, reject_search, reject_unsupported_options, require_object, select_fragment
from .registry import ID, route


@route("GET", r"/v1\.0/users", "/v1.0/users")
def list_users(app, call, params, ctx):
    reject_search(call)
    select = odata.parse_select(call.query.get("$select"), "user")
    advanced = odata.is_advanced(call.query, call.headers)
    predicate, filtered = odata.parse_filter_with_properties(call.query.get("$filter"), "user", advanced)
    directory = app.emu.directory
    # the engine skips computing licensing properties nobody asked for: the selected ones and those the filter reads
    engine_select = tuple(select) if select is not None else odata.USER_DEFAULT
    engine_select += tuple(sorted(filtered.difference(engine_select)))
    ids = odata.simple_id_lookup(call.query.get("$filter"))

    def iterate(start):
        if ids is not None:
            found = []
            for position, user_id in enumerate(ids):
                try:
                    found.append((position, directory.get_user(user_id, select=engine_select)))
                except GraphError:
                    continue
            return iter(found[start:]) if start < len(found) else iter(())
        return directory.iter_users(start, select=engine_select)

    shape = None
    if select is not None and ids is None:
        # only the selected properties and those the filter reads are built (_user_view); the filter sees the
        # values _user_dict would give, then the page is shaped as odata.project would shape it
        names = tuple(select) + tuple(sorted(filtered.difference(select)))
        dropped = tuple(name for name in names if name not in select or name in odata.NEVER_RETURNED or name.startswith("@"))
        empty_lists = tuple(name for name in select if name in odata.COLLECTION_PROPERTIES)

        def iterate(start):  # noqa: F811 - replaces the general iterator above
            return directory.iter_user_views(start, names)

        def shape(view):
            for name in dropped:
                del view[name]
            for name in empty_lists:
                if view[name] is None:
                    view[name] = []
            return view

    count_total = None
    if advanced:

        def count_total():
            return sum(1 for _, user in iterate(0) if predicate is None or predicate(user))

    return app.pager.list_response(
        call, app.context_url(call, select_fragment("users", select)), iterate, predicate, select, "user", count_total=count_total, shape=shape
    )


@route("GET", r"/v1\.0/users/\$count", "/v1.0/users/$count")
def count_users(app, call, params, ctx):
    if call.headers.get("consistencylevel", "").lower() != "eventual":
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    advanced = True
    predicate = odata.parse_filter(call.query.get("$filter"), "user", advanced)
    return Outcome(200, str(sum(1 for _, user in app.emu.directory.iter_users(0) if predicate is None or predicate(user))))


@route("POST", r"/v1\.0/users", "/v1.0/users")
def create_user(app, call, params, ctx):
    user = app.emu.directory.create_user(require_object(call.body), ctx)
    body = {"@odata.context": app.context_url(call, "users/$entity")}
    body.update(odata.project(user, None, "user"))
    return Outcome(201, body, {"Location": f"{call.base_url}/v2/{app.emu.directory.tenant_id}/directoryObjects/{user['id']}/Microsoft.DirectoryServices.User"})


@route("GET", r"/v1\.0/users/" + ID, "/v1.0/users/{id}")
def get_user(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    select = odata.parse_select(call.query.get("$select"), "user")
    user = app.emu.directory.get_user(params["id"], select=tuple(select) if select else odata.USER_DEFAULT)
    body = {"@odata.context": app.context_url(call, select_fragment("users", select) + "/$entity")}
    body.update(odata.project(user, select, "user"))
    return Outcome(200, body)


@route("PATCH", r"/v1\.0/users/" + ID, "/v1.0/users/{id}")
def update_user(app, call, params, ctx):
    app.emu.directory.update_user(params["id"], require_object(call.body), ctx)
    return Outcome(204)


@route("DELETE", r"/v1\.0/users/" + ID, "/v1.0/users/{id}")
def delete_user(app, call, params, ctx):
    app.emu.directory.delete_user(params["id"], ctx)
    return Outcome(204)


@route("GET", r"/v1\.0/users/" + ID + r"/memberOf", "/v1.0/users/{id}/memberOf")
def member_of(app, call, params, ctx):
    return memberships(app, call, app.emu.directory.member_of(params["id"]))


@route("GET", r"/v1\.0/users/" + ID + r"/memberOf/microsoft\.graph\.group", "/v1.0/users/{id}/memberOf/microsoft.graph.group")
def member_of_groups(app, call, params, ctx):
    return memberships(app, call, app.emu.directory.member_of(params["id"]), groups_only=True)


@route("GET", r"/v1\.0/users/" + ID + r"/transitiveMemberOf", "/v1.0/users/{id}/transitiveMemberOf")
def transitive_member_of(app, call, params, ctx):
    return memberships(app, call, app.emu.directory.transitive_member_of(params["id"]))


@route("GET", r"/v1\.0/users/" + ID + r"/transitiveMemberOf/microsoft\.graph\.group", "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group")
def transitive_member_of_groups(app, call, params, ctx):
    return memberships(app, call, app.emu.directory.transitive_member_of(params["id"]), groups_only=True)


def memberships(app, call, groups, groups_only=False):
    """A user's memberships: directoryObjects, or (OData cast) groups whose $select names group properties."""
    reject_search(call)
    if groups_only:
        select = odata.parse_select(call.query.get("$select"), "group")
        context = app.context_url(call, "groups")
    else:
        select = parse_member_select(call.query.get("$select"))
        context = app.context_url(call, "directoryObjects")
    return app.pager.list_response(call, context, lambda start: enumerate_from(groups, start), None, select, "group", with_type=True)
