"""Audit logs: GET /auditLogs/directoryAudits."""

from .. import odata
from ..engine import GraphError
from .common import enumerate_from, reject_list_options
from .registry import route


@route("GET", r"/v1\.0/auditLogs/directoryAudits", "/v1.0/auditLogs/directoryAudits")
def directory_audits(app, call, params, ctx):
    reject_list_options(call)
    predicate = odata.parse_filter(call.query.get("$filter"), "audit", False)
    events = app.emu.directory.audit_events()
    order = call.query.get("$orderby", "").strip().lower()
    if order in ("activitydatetime desc",):
        events = list(reversed(events))
    elif order not in ("", "activitydatetime", "activitydatetime asc"):
        raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported $orderby '{call.query['$orderby']}': only activityDateTime asc|desc.")
    events = [e for e in events if predicate is None or predicate(e)]
    return app.pager.list_response(call, app.context_url(call, "auditLogs/directoryAudits"), lambda start: enumerate_from(events, start), None, None, "audit")
