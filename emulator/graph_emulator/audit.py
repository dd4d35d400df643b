"""The directory's audit log (``GET /auditLogs/directoryAudits``) and its loss ledger (plans users lost, and why).

The directory's operations write both; loading a tenant as processed writes neither (``quiet``): a snapshot
starts with no events and no losses.
"""

import json
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone

from .records import _context, _now_iso_ms

# The system app group-based licensing writes as: two spellings in Microsoft's docs (entra-licensing.md
# section 11; which one real logs carry is unconfirmed). The ``audit_actor`` knob picks one; a reader accepts both.
GROUP_LICENSING_APPS = {
    "azure_ad": "Microsoft Azure AD Group-Based Licensing",
    "entra": "Microsoft Entra group-Based Licensing",
}
GROUP_LICENSING_APP = GROUP_LICENSING_APPS["azure_ad"]
AUDIT_LIMIT = 200_000
# Entra keeps directory audit logs 30 days with P1/P2 (7 days on the free tier); the emulator answers only
# events younger than ``audit_retention_days`` (a decision: Graph answers a window starting earlier with what it
# still keeps, no error).
DEFAULT_RETENTION_DAYS = 30.0


class AuditTrail:
    """The audit events (the last AUDIT_LIMIT, stored compactly) and the loss ledger of one loaded tenant."""

    def __init__(self):
        self.events = deque(maxlen=AUDIT_LIMIT)
        self.ledger = []
        self.quiet = False
        self.actor = "azure_ad"
        self.retention_days = DEFAULT_RETENTION_DAYS

    def configure(self, actor=None, retention_days=None):
        """Validate, then set the group-licensing actor spelling and/or the retention (days)."""
        if actor is not None and actor not in GROUP_LICENSING_APPS:
            raise ValueError(f"audit_actor: got {actor!r}, expected one of {sorted(GROUP_LICENSING_APPS)}")
        if retention_days is not None and (isinstance(retention_days, bool) or not isinstance(retention_days, (int, float)) or retention_days < 0):
            raise ValueError(f"audit_retention_days: got {retention_days!r}, expected a non-negative number of days")
        if actor is not None:
            self.actor = actor
        if retention_days is not None:
            self.retention_days = float(retention_days)

    def record(self, activity, category, operation, ctx, target, modified=(), system=False, actor=None):
        """Store compactly; ``target`` is (type, id, displayName, userPrincipalName).

        The initiator is group-based licensing (``system``), ``actor`` (("app", appId, displayName) or
        ("user", userId, userPrincipalName)), or else the app of the request context.
        """
        if self.quiet:
            return
        ctx = _context(ctx)
        if system:
            app = ("app", None, GROUP_LICENSING_APPS[self.actor])
        elif actor is not None:
            app = tuple(actor)
        else:
            app = ("app", ctx.app_id or None, ctx.app_display_name or None)
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
        """The events still kept (younger than the retention), oldest first."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=self.retention_days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return [audit_dict(event) for event in self.events if event[1] >= cutoff]

    def ledger_copy(self) -> list:
        return json.loads(json.dumps(self.ledger))

    def clear_ledger(self) -> None:
        self.ledger.clear()


def audit_dict(event):
    event_id, when, activity, category, operation, initiator, target, modified, correlation = event
    kind, actor_id, actor_name = initiator
    if kind == "user":
        initiated = {"app": None, "user": {"id": actor_id, "displayName": None, "userPrincipalName": actor_name, "ipAddress": None}}
    else:
        initiated = {"app": {"appId": actor_id, "displayName": actor_name, "servicePrincipalId": None, "servicePrincipalName": actor_name}, "user": None}
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
        "initiatedBy": initiated,
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
