"""The directory's audit log (``GET /auditLogs/directoryAudits``) and its loss ledger (plans users lost, and why).

The directory's operations write both; loading a tenant as processed writes neither (``quiet``): a snapshot
starts with no events and no losses.
"""

import json
import uuid
from collections import deque

from .records import _context, _now_iso_ms

GROUP_LICENSING_APP = "Microsoft Azure AD Group-Based Licensing"
AUDIT_LIMIT = 200_000


class AuditTrail:
    """The audit events (the last AUDIT_LIMIT, stored compactly) and the loss ledger of one loaded tenant."""

    def __init__(self):
        self.events = deque(maxlen=AUDIT_LIMIT)
        self.ledger = []
        self.quiet = False

    def record(self, activity, category, operation, ctx, target, modified=(), system=False):
        """Store compactly; ``target`` is (type, id, displayName, userPrincipalName)."""
        if self.quiet:
            return
        ctx = _context(ctx)
        app = (None, GROUP_LICENSING_APP) if system else (ctx.app_id or None, ctx.app_display_name or None)
        self.events.append((str(uuid.uuid4()), _now_iso_ms(), activity, category, operation, app, target, tuple(modified), ctx.request_id or None))

    def record_losses(self, user, before, after, skus, cause, ctx):
        """One ledger entry per SKU whose enabled plans in ``before`` are not all in ``after`` ({skuId: plans})."""
        if self.quiet:
            return
        ctx = _context(ctx)
        for sku_id, enabled_before in before.items():
            lost = enabled_before - after.get(sku_id, frozenset())
            if lost:
                sku = skus[sku_id]
                self.ledger.append(
                    {
                        "time": _now_iso_ms(),
                        "user_id": user.id,
                        "user_principal_name": user.upn,
                        "sku_id": sku_id,
                        "sku_part_number": sku.part_number,
                        "plans_lost": sorted(
                            ({"servicePlanId": p, "servicePlanName": sku.plan_names[p]} for p in lost), key=lambda item: item["servicePlanName"]
                        ),
                        "cause": cause,
                        "request": {"request_id": ctx.request_id, "client_request_id": ctx.client_request_id, "method": ctx.method, "path": ctx.path},
                    }
                )

    def event_dicts(self) -> list:
        return [audit_dict(event) for event in self.events]

    def ledger_copy(self) -> list:
        return json.loads(json.dumps(self.ledger))

    def clear_ledger(self) -> None:
        self.ledger.clear()


def audit_dict(event):
    event_id, when, activity, category, operation, app, target, modified, correlation = event
    return {
        "id": f"Directory_{event_id}",
        "category": category,
        "correlationId": correlation or event_id,
        "result": "success",
        "resultReason": "",
        "activityDisplayName": activity,
        "activityDateTime": when,
        "loggedByService": "Core Directory",
        "operationType": operation,
        "initiatedBy": {"app": {"appId": app[0], "displayName": app[1], "servicePrincipalId": None, "servicePrincipalName": app[1]}, "user": None},
        "targetResources": [
            {
                "id": target[1],
                "displayName": target[2],
                "type": target[0],
                "userPrincipalName": target[3],
                "groupType": None,
                "modifiedProperties": [{"displayName": n, "oldValue": o, "newValue": v} for n, o, v in modified],
            }
        ],
        "additionalDetails": [],
    }


def license_text(skus, licenses) -> str:
    return json.dumps([f"[SkuName={skus[s].part_number}, SkuId={s}, DisabledPlans=[{', '.join(d)}]]" for s, d in licenses])


def user_target(user):
    return ("User", user.id, user.display_name, user.upn)


def group_target(group):
    return ("Group", group.id, group.display_name, None)
