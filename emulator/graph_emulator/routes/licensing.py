"""Licensing: assignLicense (users and groups), reprocessLicenseAssignment, licenseDetails,
membersWithLicenseErrors and subscribedSkus."""

from .. import odata
from ..calls import Outcome
from ..engine import GraphError
from .common import parse_plain_select, reject_unsupported_options, require_object, select_fragment
from .groups import member_listing, member_select
from .registry import ID, route

USER_ACTION_RESPONSE = odata.USER_DEFAULT + ("accountEnabled", "assignedLicenses", "city", "companyName", "country", "department", "usageLocation")


def license_arguments(body):
    body = require_object(body)
    for name in ("addLicenses", "removeLicenses"):
        if name not in body or body[name] is None:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Invalid request: the parameter '{name}' is required and cannot be null; send an empty array when there is nothing to add or remove.",
            )
        if not isinstance(body[name], list):
            raise GraphError(400, "Request_BadRequest", f"Invalid request: '{name}' must be an array.")
    unknown = set(body) - {"addLicenses", "removeLicenses"}
    if unknown:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"The parameter '{sorted(unknown)[0]}' in the request payload is not a valid parameter for the operation 'assignLicense'.",
        )
    return body["addLicenses"], body["removeLicenses"]


@route("POST", r"/v1\.0/users/" + ID + r"/assignLicense", "/v1.0/users/{id}/assignLicense")
def assign_user_license(app, call, params, ctx):
    add, remove = license_arguments(call.body)
    user = app.emu.directory.assign_user_license(params["id"], add, remove, ctx)
    body = {"@odata.context": app.context_url(call, "users/$entity")}
    body.update(odata.project(user, list(USER_ACTION_RESPONSE), "user"))
    return Outcome(200, body)


@route("POST", r"/v1\.0/users/" + ID + r"/reprocessLicenseAssignment", "/v1.0/users/{id}/reprocessLicenseAssignment")
def reprocess_user(app, call, params, ctx):
    user = app.emu.directory.reprocess_user(params["id"], ctx)
    body = {"@odata.context": app.context_url(call, "users/$entity")}
    body.update(odata.project(user, list(USER_ACTION_RESPONSE), "user"))
    return Outcome(200, body)


@route("GET", r"/v1\.0/users/" + ID + r"/licenseDetails", "/v1.0/users/{id}/licenseDetails")
def license_details(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    details = app.emu.directory.license_details(params["id"])
    select = parse_plain_select(call.query.get("$select"), {"id", "skuId", "skuPartNumber", "servicePlans"}, "microsoft.graph.licenseDetails")
    value = [odata.project(d, select, "licenseDetails") for d in details]
    return Outcome(200, {"@odata.context": app.context_url(call, f"users('{params['id']}')/licenseDetails"), "value": value})


@route("GET", r"/v1\.0/groups/" + ID + r"/membersWithLicenseErrors", "/v1.0/groups/{id}/membersWithLicenseErrors")
def list_members_with_license_errors(app, call, params, ctx):
    engine_select = member_select(call)  # first, as before: a bad $select answers 400 even for an unknown group
    return member_listing(app, call, app.emu.directory.license_error_member_refs(params["id"]), engine_select)


@route("POST", r"/v1\.0/groups/" + ID + r"/assignLicense", "/v1.0/groups/{id}/assignLicense")
def assign_group_license(app, call, params, ctx):
    add, remove = license_arguments(call.body)
    group = app.emu.directory.assign_group_license(params["id"], add, remove, ctx)
    body = {"@odata.context": app.context_url(call, "groups/$entity")}
    body.update(odata.project(group, None, "group"))
    location = f"{call.base_url}/v2/{app.emu.directory.tenant_id}/directoryObjects/{group['id']}/Microsoft.DirectoryServices.Group"
    return Outcome(202, body, {"Location": location})


SKU_PROPERTIES = {
    "id",
    "accountId",
    "accountName",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
}


@route("GET", r"/v1\.0/subscribedSkus", "/v1.0/subscribedSkus")
def list_skus(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    select = parse_plain_select(call.query.get("$select"), SKU_PROPERTIES, "microsoft.graph.subscribedSku")
    skus = app.emu.directory.subscribed_skus()
    return Outcome(
        200,
        {
            "@odata.context": app.context_url(call, select_fragment("subscribedSkus", select)),
            "value": [odata.project(s, select, "subscribedSku") for s in skus],
        },
    )


@route("GET", r"/v1\.0/subscribedSkus/(?P<id>[^/]+)", "/v1.0/subscribedSkus/{id}")
def get_sku(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    select = parse_plain_select(call.query.get("$select"), SKU_PROPERTIES, "microsoft.graph.subscribedSku")
    for sku in app.emu.directory.subscribed_skus():
        if sku["id"].lower() == params["id"].lower():
            body = {"@odata.context": app.context_url(call, "subscribedSkus/$entity")}
            body.update(odata.project(sku, select, "subscribedSku"))
            return Outcome(200, body)
    raise GraphError(
        404, "Request_ResourceNotFound", f"Resource '{params['id']}' does not exist or one of its queried reference-property objects are not present."
    )
