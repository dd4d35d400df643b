"""The legacy licensing automation: a second app that licenses users directly on a schedule (issue 16).

Microsoft's migration procedure (step 1) says to leave the existing automation running as is. A typical one is a
PowerShell script that every so often:

- assigns the SKU directly (with its standard disabled plans) to users that match its rule and lack the SKU's
  direct copy: the **joiners**, and also users it thinks are missing it (``checks: direct``: a script that reads
  ``licenseAssignmentStates`` and counts only copies not assigned by a group; that is what re-adds a direct copy
  the migration removed: a **re-license**). With ``checks: assigned`` it looks at ``assignedLicenses`` and only
  licenses users who hold the SKU by no path at all.
- removes the direct copy from users that stopped matching the rule (the **leavers**).

Every write goes through the directory's own ``assign_user_license`` as the legacy app (its own appId and display
name), so the directory audit log shows ``Change user license`` and ``Update user`` events initiated by it, and the
loss ledger records what a leaver lost as for any other direct write.

The rule: ``{"property": P, "equals": V}`` or ``{"property": P, "startswith": V}`` with P one of accountEnabled,
department, jobTitle, usageLocation, userPrincipalName, displayName (strings compared without regard to case).
The default rule is every enabled account.

The schedule: every ``interval_s`` emulated seconds (the emulator's ``time_scale`` applies) while ``enabled``;
``run_once()`` runs one pass now (tests, ``POST /_emulator/legacy/run``). Switched off by default.
"""

import threading
import time
from datetime import datetime, timezone

from .records import GraphError, RequestContext

LEGACY_APP_ID = "3c1d8a52-6b8e-4f0e-9d7a-2f1e5b7c9a01"
LEGACY_APP_NAME = "Legacy licensing script"
RULE_PROPERTIES = {
    "accountEnabled": "account_enabled",
    "department": "department",
    "jobTitle": "job_title",
    "usageLocation": "usage_location",
    "userPrincipalName": "upn",
    "displayName": "display_name",
}
DEFAULTS = {
    "enabled": False,
    "sku": "ENTERPRISEPACK",
    "disabled_plans": [],
    "rule": {"property": "accountEnabled", "equals": True},
    "checks": "direct",
    "interval_s": 60.0,
    "app_id": LEGACY_APP_ID,
    "display_name": LEGACY_APP_NAME,
}
ACTION_LIMIT = 100_000


def _check_rule(rule):
    if not isinstance(rule, dict) or set(rule) - {"property", "equals", "startswith"} or "property" not in rule:
        raise ValueError(f"rule: got {rule!r}, expected {{'property': P, 'equals': V}} or {{'property': P, 'startswith': V}}")
    if rule["property"] not in RULE_PROPERTIES:
        raise ValueError(f"rule.property: got {rule['property']!r}, expected one of {sorted(RULE_PROPERTIES)}")
    if ("equals" in rule) == ("startswith" in rule):
        raise ValueError(f"rule: got {rule!r}, expected exactly one of 'equals' or 'startswith'")
    if "startswith" in rule and not isinstance(rule["startswith"], str):
        raise ValueError(f"rule.startswith: got {rule['startswith']!r}, expected a string")


def _check_settings(settings):
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown legacy automation setting(s) {sorted(unknown)}; expected some of {sorted(DEFAULTS)}")
    if "enabled" in settings and not isinstance(settings["enabled"], bool):
        raise ValueError(f"enabled: got {settings['enabled']!r}, expected true or false")
    if "checks" in settings and settings["checks"] not in ("direct", "assigned"):
        raise ValueError(f"checks: got {settings['checks']!r}, expected 'direct' or 'assigned'")
    interval = settings.get("interval_s", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ValueError(f"interval_s: got {interval!r}, expected a number of emulated seconds > 0")
    plans = settings.get("disabled_plans", [])
    if not isinstance(plans, list) or not all(isinstance(p, str) and p for p in plans):
        raise ValueError(f"disabled_plans: got {plans!r}, expected a list of service plan names or ids")
    for name in ("sku", "app_id", "display_name"):
        if name in settings and (not isinstance(settings[name], str) or not settings[name]):
            raise ValueError(f"{name}: got {settings[name]!r}, expected a non-empty string")
    if "rule" in settings:
        _check_rule(settings["rule"])


def _matches(user, rule):
    value = getattr(user, RULE_PROPERTIES[rule["property"]])
    if "startswith" in rule:
        return isinstance(value, str) and value.lower().startswith(rule["startswith"].lower())
    wanted = rule["equals"]
    if isinstance(wanted, str) and isinstance(value, str):
        return value.lower() == wanted.lower()
    return value == wanted


def _view(directory, sku_id, rule):
    """(ids matching the rule, ids holding the SKU directly, ids holding it by any active path), read under the lock."""
    with directory.lock:
        users = list(directory._users.values())  # the emulator's own records, as the script would list users
        matched = [u.id for u in users if _matches(u, rule)]
        holders = {u.id for u in users if u.direct and sku_id in u.direct}
        assigned = {u.id for u in users if sku_id in directory._effective(u)}
    return matched, holders, assigned


class LegacyAutomation:
    """The legacy app's schedule, settings and the log of what it did (``actions``)."""

    def __init__(self, directory, clock):
        self.directory = directory
        self.clock = clock
        self.settings = dict(DEFAULTS, disabled_plans=[], rule=dict(DEFAULTS["rule"]))
        self.actions = []
        self.passes = 0
        self._matched = None  # user ids that matched the rule at the last pass (None: no pass yet)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None

    # -- settings ---------------------------------------------------------------------------------
    def configure(self, **settings) -> dict:
        """Validate, then apply; switching on starts the schedule, switching off stops it."""
        _check_settings(settings)
        with self._lock:
            if "sku" in settings or "disabled_plans" in settings:
                self._resolve(settings.get("sku", self.settings["sku"]), settings.get("disabled_plans", self.settings["disabled_plans"]))
            self.settings.update({k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in settings.items()})
            if "rule" in settings:
                self._matched = None  # a new rule: its first pass sees no joiners or leavers, only what is missing
        if self.settings["enabled"]:
            self._start()
        else:
            self.stop()
        return self.config()

    def config(self) -> dict:
        with self._lock:
            return {**self.settings, "disabled_plans": list(self.settings["disabled_plans"]), "rule": dict(self.settings["rule"]), "passes": self.passes}

    def _resolve(self, sku, disabled_plans):
        """(skuId, [disabled plan ids]) from a part number or id and plan names or ids; ValueError naming a bad one."""
        with self.directory.lock:
            skus = list(self.directory._skus.values())  # the emulator's own records: read under the directory lock
        wanted = str(sku).lower()
        found = next((s for s in skus if wanted in (s.sku_id, s.part_number.lower())), None)
        if found is None:
            raise ValueError(f"sku: got {sku!r}, expected a skuId or skuPartNumber of subscribedSkus ({sorted(s.part_number for s in skus)})")
        plans = {name.lower(): plan_id for plan_id, name in found.plan_names.items()}
        resolved = []
        for plan in disabled_plans:
            plan_id = plans.get(plan.lower()) or (plan.lower() if plan.lower() in found.plan_names else None)
            if plan_id is None:
                raise ValueError(f"disabled_plans: got {plan!r}, expected a service plan of {found.part_number} ({sorted(plans)})")
            resolved.append(plan_id)
        return found.sku_id, sorted(resolved)

    # -- schedule ---------------------------------------------------------------------------------
    def _start(self):
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="graph-emulator-legacy", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _loop(self):
        while not self._stop.is_set():
            self._run_safely()
            wall_interval = self.settings["interval_s"] / max(self.clock.time_scale, 1e-9)
            if self._stop.wait(wall_interval):
                return

    def _run_safely(self):
        try:
            self.run_once()
        except Exception:  # noqa: BLE001 - a tenant being replaced mid-pass: the next pass starts again
            time.sleep(0)

    # -- one pass ---------------------------------------------------------------------------------
    def run_once(self) -> dict:
        """One pass of the script now: {joiners, relicensed, leavers, failed} (lists of user ids)."""
        with self._lock:
            sku_id, disabled = self._resolve(self.settings["sku"], self.settings["disabled_plans"])
            matched, holders, assigned = _view(self.directory, sku_id, self.settings["rule"])
            first = self._matched is None
            previous = set(matched) if first else self._matched
            done = {"joiners": [], "relicensed": [], "leavers": [], "failed": []}
            lacking = holders if self.settings["checks"] == "direct" else assigned
            for user_id in sorted(set(matched) - lacking):
                kind = "relicensed" if user_id in previous else "joiners"
                self._write(user_id, [{"skuId": sku_id, "disabledPlans": disabled}], [], kind, done)
            for user_id in sorted((previous - set(matched)) & holders):
                self._write(user_id, [], [sku_id], "leavers", done)
            self._matched = set(matched)
            self.passes += 1
            return done

    def _write(self, user_id, add, remove, kind, done):
        ctx = RequestContext(method="LEGACY", path="(legacy automation)", app_id=self.settings["app_id"], app_display_name=self.settings["display_name"])
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "pass": self.passes,
            "kind": kind,
            "user_id": user_id,
        }
        try:
            user = self.directory.assign_user_license(user_id, add, remove, ctx)
            entry["user_principal_name"] = user.get("userPrincipalName")
            done[kind].append(user_id)
        except GraphError as error:
            entry.update(kind=kind, error=error.message)
            done["failed"].append(user_id)
        if len(self.actions) >= ACTION_LIMIT:
            del self.actions[: ACTION_LIMIT // 10]
        self.actions.append(entry)

    def action_log(self) -> list:
        with self._lock:
            return [dict(entry) for entry in self.actions]

    def clear(self):
        with self._lock:
            self.actions.clear()
            self._matched = None
            self.passes = 0
