"""The little of Graph's /beta the emulator serves: a group read, for ``membershipRuleProcessingStatus``.

``membershipRuleProcessingStatus`` (a dynamic group's evaluation status) exists in beta only; v1.0 refuses it in
``$select`` like any property it does not know. Every other /beta path answers 400 "Resource not found for the
segment" (docs/tenant-format.md section 5).
"""

from .. import odata
from ..calls import Outcome
from .common import reject_unsupported_options, select_fragment
from .registry import ID, route


@route("GET", r"/beta/groups/" + ID, "/beta/groups/{id}")
def get_group_beta(app, call, params, ctx):
    reject_unsupported_options(call, {"$select"})
    select = odata.parse_select(call.query.get("$select"), "group_beta")
    group = app.emu.directory.get_group(params["id"])
    body = {"@odata.context": f"{call.base_url}/beta/$metadata#{select_fragment('groups', select)}/$entity"}
    # The answer always names the group (the documented status example shows "id" beside the selected property).
    body["id"] = group["id"]
    body.update(odata.project(group, select, "group_beta"))
    return Outcome(200, body)
