"""Microsoft Graph identity-and-access throttling (the Graph reference, graph-api.md 7.2 and 7.3).

Every budget is a token bucket: ``quota`` tokens that refill evenly over ``window`` seconds.

Time scale. The emulator runs an *emulated* clock: emulated seconds = wall seconds x time_scale.
Budgets refill in emulated time, so with time_scale=10 a 150 s write window refills in 15 wall
seconds. ``Retry-After`` is what a client sleeps, so it is given in WALL seconds:
``max(1, ceil(emulated_wait / time_scale))``, an integer as Graph sends. Because it is rounded up,
a client that sleeps exactly Retry-After finds the budget refilled.

Retry-After windows. Each 429 opens a window for that app and that limit (``ReadWrite`` for
resource units, ``Write`` for write quotas, ``Audit`` for audit logs) ending Retry-After wall
seconds later. A request of the same kind from the same app that arrives inside the window is
rejected again and counted as an *early retry*, except during a short grace period right after
the window opened (``early_retry_grace_ms``): those requests were already in flight when the 429
was sent, so they are evaluated against the budgets like any other request.

Refused requests are charged (``charge_refused``, on by default). Graph: "usage keeps accruing
while throttled, so don't retry early" (reference 7.1). A refused request costs what it would
have cost had it been admitted, on every budget it counts against, so the budget goes into debt
(at most one quota below empty). Its Retry-After is the time until the budget, debt included,
again holds what the request costs: each refusal of a wave is told to wait longer than the one
before it, and a client that sends a whole wave again after the first Retry-After finds the
budget in debt again and is refused again. An early retry (inside the window) is charged too and
pushes the window out to its own Retry-After.

Promised capacity (``charge_refused=False`` only, the kinder model of emulator 0.1). When several
requests are throttled back to back (a $batch of 20 writes), each later one is told to wait long
enough for the ones before it to have succeeded too, and nothing refused is charged: a client
that honours every Retry-After is not throttled again on an otherwise idle emulator, however
many it sends at once. Graph makes no such promise; the switch exists to compare the two.
"""

import math
import threading
import time
from dataclasses import dataclass, field

RU_LIMITS = ((50, 3500), (501, 5000), (None, 8000))  # (users below, RU per 10 s): S <50, M 50-500, L >500
RU_WINDOW = 10.0
APP_TENANT_WRITES = (3000, 150.0)
TENANT_WRITES = (18000, 300.0)
APP_RU = (150000, 20.0)
APP_WRITES = (35000, 300.0)
AUDIT_REQUESTS = (5, 10.0)
WARNING_RATIO = 0.8
WRITE_BUCKETS = ("writes", "tenant-writes", "app-writes")

# base resource-unit cost of a GET by route template (any other identity GET costs 1)
GET_COSTS = {
    "GET /v1.0/users": 2,
    "GET /v1.0/users/{id}": 2,
    "GET /v1.0/subscribedSkus": 3,
    "GET /v1.0/subscribedSkus/{id}": 3,
    "GET /v1.0/groups/{id}/members": 3,
    "GET /v1.0/groups/{id}/members/microsoft.graph.user": 3,
    "GET /v1.0/groups/{id}/transitiveMembers": 5,
    "GET /v1.0/users/{id}/licenseDetails": 2,
}


def resource_units(route, method, query):
    """RU cost of a request with the documented modifiers ($select -1, $expand +1, $top < 20 -1, min 1)."""
    if method != "GET":
        return 1
    cost = GET_COSTS.get(route, 1)
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    try:
        if "$top" in query and int(query["$top"]) < 20:
            cost -= 1
    except ValueError:
        pass
    return max(1, cost)


def ru_quota_for(user_count):
    for below, quota in RU_LIMITS:
        if below is None or user_count < below:
            return quota
    return RU_LIMITS[-1][1]


class Clock:
    """Emulated clock that can change speed without jumping."""

    def __init__(self, time_scale=1.0, wall=time.monotonic):
        self._wall = wall
        self._base_wall = wall()
        self._base_emulated = 0.0
        self.time_scale = float(time_scale)

    def wall(self):
        return self._wall()

    def now(self):
        return self._base_emulated + (self._wall() - self._base_wall) * self.time_scale

    def set_scale(self, time_scale):
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self._base_emulated = self.now()
        self._base_wall = self._wall()
        self.time_scale = float(time_scale)


@dataclass
class Bucket:
    quota: float
    window: float
    level: float = None
    updated: float = 0.0
    promised: list = field(default_factory=list)  # [(emulated deadline, cost)]

    def __post_init__(self):
        if self.level is None:
            self.level = self.quota

    @property
    def rate(self):
        return self.quota / self.window

    def refill(self, now):
        if now > self.updated:
            self.level = min(self.quota, self.level + (now - self.updated) * self.rate)
            self.updated = now
        # a promise is dropped one window after its deadline: its holder gave up or already came back
        self.promised = [(deadline, cost) for deadline, cost in self.promised if deadline + self.window > now]

    def has(self, cost):
        return self.level + 1e-9 >= cost

    def wait_for(self, cost, now):
        """Emulated seconds until ``cost`` tokens are free after all earlier promises are paid."""
        owed = sum(amount for _, amount in self.promised)
        return max(0.0, (cost + owed - self.level) / self.rate)

    def usage_ratio(self):
        return (self.quota - self.level) / self.quota


@dataclass
class Verdict:
    allowed: bool
    resource_units: int
    retry_after: int = 0
    scope: str = ""
    information: str = ""
    limit_percentage: float = 0.0
    early_retry: bool = False


class Throttler:
    """Budgets for one tenant (the emulator serves one) and every app calling it."""

    def __init__(self, clock, enabled=False, budget_scale=1.0, early_retry_grace_ms=100, charge_refused=True):
        self.clock = clock
        self.enabled = enabled
        self.charge_refused = bool(charge_refused)
        # The share of every write budget left when it is first used after a reset: below 1 it
        # stands for writes made just before (the group phase's member writes, another script).
        self.write_budget_left = 1.0
        self.budget_scale = float(budget_scale)
        self.early_retry_grace = early_retry_grace_ms / 1000.0
        self._lock = threading.Lock()
        self._buckets = {}
        self._windows = {}  # (app, limit) -> (opened wall, ends wall)

    def configure(self, enabled=None, budget_scale=None, early_retry_grace_ms=None, charge_refused=None, write_budget_left=None):
        with self._lock:
            if write_budget_left is not None:
                self.write_budget_left = float(write_budget_left)
            if enabled is not None:
                self.enabled = bool(enabled)
            if charge_refused is not None:
                self.charge_refused = bool(charge_refused)
            if budget_scale is not None:
                if budget_scale <= 0:
                    raise ValueError(f"budget_scale must be > 0, got {budget_scale!r}")
                self.budget_scale = float(budget_scale)
            if early_retry_grace_ms is not None:
                self.early_retry_grace = early_retry_grace_ms / 1000.0
            self._buckets.clear()
            self._windows.clear()

    def reset(self):
        with self._lock:
            self._buckets.clear()
            self._windows.clear()

    def _bucket(self, key, quota, window, now):
        bucket = self._buckets.get(key)
        scaled = max(1.0, quota * self.budget_scale)
        if bucket is None or bucket.quota != scaled:
            level = scaled * self.write_budget_left if key[0] in WRITE_BUCKETS else None
            bucket = Bucket(quota=scaled, window=window, level=level, updated=now)
            self._buckets[key] = bucket
        bucket.refill(now)
        return bucket

    def _retry_after_seconds(self, emulated_wait):
        return max(1, math.ceil(emulated_wait / self.clock.time_scale - 1e-9))

    def check(self, app_id, tenant_id, user_count, route, method, query, arrival=None):
        """Admit or throttle one request (or one $batch item); charges budgets when admitted.

        ``arrival`` is the wall time the HTTP request arrived (the $batch for its items): early
        retries are judged on when the client sent the request, not on when we got to it.
        """
        is_write = method in ("POST", "PATCH", "PUT", "DELETE")
        is_audit = route.startswith("GET /v1.0/auditLogs")
        cost = 1 if is_audit else resource_units(route, method, query)
        if not self.enabled:
            return Verdict(True, cost)
        with self._lock:
            now = self.clock.now()
            wall = self.clock.wall()
            arrival = wall if arrival is None else arrival
            checks = self._checks(app_id, tenant_id, user_count, is_write, is_audit, cost, now)
            early = self._inside_window(app_id, checks, arrival, wall)
            if early is not None:
                limit, ends = early
                seconds = max(1, math.ceil(ends - wall - 1e-9))
                if self.charge_refused:
                    self._charge(checks)
                    seconds = max(seconds, self._retry_after_seconds(self._debt_wait(checks, now)[0]))
                    self._open_window(app_id, limit, wall, seconds, extend=True)
                return self._reject(app_id, tenant_id, limit, seconds, cost, early_retry=True)
            short = [(limit, bucket, amount, info) for limit, bucket, amount, info in checks if not bucket.has(amount)]
            if short:
                if self.charge_refused:
                    self._charge(checks)
                    emulated_wait, limit, info = self._debt_wait(checks, now)
                    seconds = self._retry_after_seconds(emulated_wait)
                    self._open_window(app_id, limit, wall, seconds, extend=True)
                    return self._reject(app_id, tenant_id, limit, seconds, cost, information=info)
                emulated_wait, limit, info = max((bucket.wait_for(amount, now), limit, info) for limit, bucket, amount, info in short)
                seconds = self._retry_after_seconds(emulated_wait)
                deadline = now + seconds * self.clock.time_scale
                for _, bucket, amount, _ in short:
                    bucket.promised.append((deadline, amount))
                self._open_window(app_id, limit, wall, seconds)
                return self._reject(app_id, tenant_id, limit, seconds, cost, information=info)
            for _, bucket, amount, _ in checks:
                bucket.level -= amount
                self._pay_promise(bucket, amount, now)
            ratio = max((bucket.usage_ratio() for _, bucket, _, _ in checks), default=0.0)
            return Verdict(True, cost, limit_percentage=round(ratio, 2) if ratio >= WARNING_RATIO else 0.0)

    def _open_window(self, app_id, limit, wall, seconds, extend=False):
        # Without charging, while a window is open the earliest promised retry time stands: an
        # honest client that retries one item after that item's (shorter) Retry-After must not look
        # early. With charging (``extend``) the window keeps its opening time (the in-flight grace
        # counts from the first 429) and ends no earlier than the request just refused may retry:
        # nothing sent before then can pass.
        current = self._windows.get((app_id, limit))
        if current is not None and wall < current[1]:
            if extend:
                self._windows[(app_id, limit)] = (current[0], max(current[1], wall + seconds))
            return
        self._windows[(app_id, limit)] = (wall, wall + seconds)

    @staticmethod
    def _charge(checks):
        """Charge a refused request to every budget it counts against; a budget's debt is at most one quota."""
        for _, bucket, amount, _ in checks:
            bucket.level = max(-bucket.quota, bucket.level - amount)

    @staticmethod
    def _debt_wait(checks, now):
        """(emulated seconds, limit, information) until every budget again holds what the request costs."""
        return max((bucket.wait_for(amount, now), limit, info) for limit, bucket, amount, info in checks)

    @staticmethod
    def _pay_promise(bucket, amount, now):
        # a request admitted at or after a promise's deadline is taken to be the promised retry
        for index, (deadline, promised_cost) in enumerate(bucket.promised):
            if deadline <= now + 1e-6 and promised_cost == amount:
                del bucket.promised[index]
                return

    def _checks(self, app_id, tenant_id, user_count, is_write, is_audit, cost, now):
        """(limit name, bucket, tokens needed, x-ms-throttle-information) for every budget that applies."""
        if is_audit:
            quota, window = AUDIT_REQUESTS
            return [("Audit", self._bucket(("audit", app_id, tenant_id), quota, window, now), 1, "ResourceUnitLimitExceeded")]
        checks = [
            ("ReadWrite", self._bucket(("ru", app_id, tenant_id), ru_quota_for(user_count), RU_WINDOW, now), cost, "ResourceUnitLimitExceeded"),
            ("ReadWrite", self._bucket(("app-ru", app_id), *APP_RU, now), cost, "ResourceUnitLimitExceeded"),
        ]
        if is_write:
            checks.append(("Write", self._bucket(("writes", app_id, tenant_id), *APP_TENANT_WRITES, now), 1, "WriteLimitExceeded"))
            checks.append(("Write", self._bucket(("tenant-writes", tenant_id), *TENANT_WRITES, now), 1, "WriteLimitExceeded"))
            checks.append(("Write", self._bucket(("app-writes", app_id), *APP_WRITES, now), 1, "WriteLimitExceeded"))
        return checks

    def _inside_window(self, app_id, checks, arrival, wall):
        for limit in sorted({limit for limit, _, _, _ in checks}):
            window = self._windows.get((app_id, limit))
            if window is None:
                continue
            opened, ends = window
            if arrival < ends and wall < ends and arrival - opened > self.early_retry_grace:
                return limit, ends
        return None

    @staticmethod
    def _reject(app_id, tenant_id, limit, seconds, cost, information="", early_retry=False):
        kind = {"Write": "Write", "Audit": "Read"}.get(limit, "ReadWrite")
        return Verdict(
            False,
            cost,
            retry_after=seconds,
            scope=f"Tenant_Application/{kind}/{app_id}/{tenant_id}",
            information=information or ("WriteLimitExceeded" if limit == "Write" else "ResourceUnitLimitExceeded"),
            limit_percentage=1.0,
            early_retry=early_retry,
        )
