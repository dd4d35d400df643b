"""The tenant: GET /organization."""

from ..calls import Outcome
from .registry import route


@route("GET", r"/v1\.0/organization", "/v1.0/organization")
def organization(app, call, params, ctx):
    directory = app.emu.directory
    org = {
        "id": directory.tenant_id,
        "displayName": getattr(directory, "tenant_display_name", "") or None,
        "countryLetterCode": directory.country_letter_code or None,
        "tenantType": "AAD",
        "verifiedDomains": [
            {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": True, "isInitial": True, "name": directory.default_domain, "type": "Managed"}
        ],
    }
    select = call.query.get("$select")
    if select:
        org = {k: org.get(k) for k in (n.strip() for n in select.split(",")) if k}
    return Outcome(200, {"@odata.context": app.context_url(call, "organization"), "value": [org]})
