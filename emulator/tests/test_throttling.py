"""Graph throttling (reference 7.2/7.3): budgets, Retry-After in wall seconds, early retries."""

import time

import pytest

from conftest import Graph, users_of
from graph_emulator.throttle import Clock, Throttler, resource_units, ru_quota_for

NOOP = {"addLicenses": [], "removeLicenses": []}


class FakeWall:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture()
def throttled(fresh_emu, fresh_graph):
    # write quota 3,000 / 150 s scaled to 3 / 150 s; emulated time runs 100x faster than wall time
    fresh_emu.configure(throttling=True, budget_scale=0.001, time_scale=100.0)
    return fresh_emu, fresh_graph


def assign(graph, user_id):
    return graph.post(f"users/{user_id}/assignLicense", NOOP)


def test_write_burst_over_budget_gets_429_with_throttle_headers(throttled):
    emu, graph = throttled
    user_id = users_of(emu)[0]["id"]
    responses = [assign(graph, user_id) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert "x-ms-throttle-limit-percentage" not in responses[0].headers
    assert float(responses[2].headers["x-ms-throttle-limit-percentage"]) >= 0.8
    limited = responses[3]
    assert limited.headers["Retry-After"].isdigit() and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["x-ms-throttle-scope"] == f"Tenant_Application/Write/{emu.client_id}/{emu.tenant_id}"
    assert limited.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    body = limited.json()["error"]
    # the documented 429 sample: code TooManyRequests, innerError code/status "429", message "Please retry after"
    assert body["code"] == "TooManyRequests" and body["message"] == "Please retry again later."
    assert body["innerError"]["code"] == "429" and body["innerError"]["status"] == "429"
    assert body["innerError"]["message"] == "Please retry after"
    assert body["innerError"]["request-id"] == limited.headers["request-id"]
    # reads are not write-limited. The RU budget (3.5 RU per 10 emulated s here) is separate: with kept-alive
    # connections the burst above takes a few wall ms, so give it 10 emulated s (0.1 wall s) to refill, well
    # inside the write window (Retry-After >= 1 wall s).
    time.sleep(0.1)
    assert graph.get("users?$top=1").status_code == 200
    stats = emu.stats()
    assert stats["throttled"] == 1 and stats["writes"] == 3 and stats["early_retries"] == 0
    assert stats["by_status"]["429"] == 1


def test_waiting_exactly_retry_after_then_succeeds(throttled):
    emu, graph = throttled
    user_id = users_of(emu)[0]["id"]
    for _ in range(3):
        assert assign(graph, user_id).status_code == 200
    limited = assign(graph, user_id)
    assert limited.status_code == 429
    time.sleep(int(limited.headers["Retry-After"]))
    assert assign(graph, user_id).status_code == 200
    assert emu.stats()["early_retries"] == 0


def test_retrying_early_is_refused_and_counted(throttled):
    emu, graph = throttled
    user_id = users_of(emu)[0]["id"]
    for _ in range(3):
        assign(graph, user_id)
    limited = assign(graph, user_id)
    assert limited.status_code == 429
    time.sleep(0.2)  # past the in-flight grace period, well before Retry-After
    early = assign(graph, user_id)
    assert early.status_code == 429
    # The early retry is charged (usage accrues while throttled): it waits at least as long as the first refusal.
    assert int(early.headers["Retry-After"]) >= int(limited.headers["Retry-After"])
    assert emu.stats()["early_retries"] == 1


def test_resource_unit_costs_on_responses(emu, graph):
    group_id = next(g for _, g in emu.directory.iter_groups(0))["id"]
    assert graph.get("users").headers["x-ms-resource-unit"] == "2"
    assert graph.get("users?$select=id").headers["x-ms-resource-unit"] == "1"
    assert graph.get("users?$top=5").headers["x-ms-resource-unit"] == "1"
    assert graph.get("subscribedSkus").headers["x-ms-resource-unit"] == "3"
    assert graph.get(f"groups/{group_id}/members").headers["x-ms-resource-unit"] == "3"
    assert graph.get(f"groups/{group_id}/transitiveMembers").headers["x-ms-resource-unit"] == "5"
    assert graph.get("organization").headers["x-ms-resource-unit"] == "1"


def test_audit_logs_allow_five_requests_per_ten_seconds(fresh_emu):
    fresh_emu.configure(throttling=True)
    audit = Graph(fresh_emu, fresh_emu.issue_token(permissions=["AuditLog.Read.All", "Directory.Read.All"]))
    statuses = [audit.get("auditLogs/directoryAudits?$top=1").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_retry_after_is_in_wall_seconds_and_scales_with_time_scale():
    wall = FakeWall()
    clock = Clock(time_scale=1.0, wall=wall)
    # 3 writes / 150 s -> one per 50 s; nothing refused is charged here, so Retry-After is the refill of one write
    throttler = Throttler(clock, enabled=True, budget_scale=0.001, charge_refused=False)
    admit = [throttler.check("app", "tenant", 10, "POST /v1.0/users/{id}/assignLicense", "POST", {}) for _ in range(4)]
    assert [v.allowed for v in admit] == [True, True, True, False]
    assert admit[3].retry_after == 50
    clock.set_scale(10.0)
    throttler.reset()
    for _ in range(3):
        assert throttler.check("app", "tenant", 10, "POST /v1.0/users", "POST", {}).allowed
    verdict = throttler.check("app", "tenant", 10, "POST /v1.0/users", "POST", {})
    assert verdict.retry_after == 5  # 50 emulated seconds at 10x = 5 wall seconds
    wall.now += 4.9
    early = throttler.check("app", "tenant", 10, "POST /v1.0/users", "POST", {})
    assert not early.allowed and early.early_retry
    wall.now += 0.1
    assert throttler.check("app", "tenant", 10, "POST /v1.0/users", "POST", {}).allowed


def test_promised_capacity_lets_every_throttled_item_succeed_after_its_retry_after():
    """The kinder model (charge_refused=False): refusals cost nothing and their retries are promised."""
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True, budget_scale=0.001, charge_refused=False)
    route = "POST /v1.0/users/{id}/assignLicense"
    verdicts = [throttler.check("app", "t", 10, route, "POST", {}, arrival=wall.now) for _ in range(6)]
    waits = [v.retry_after for v in verdicts if not v.allowed]
    assert waits == [50, 100, 150]
    wall.now += max(waits)
    retried = [throttler.check("app", "t", 10, route, "POST", {}) for _ in waits]
    assert all(v.allowed for v in retried)
    assert not any(v.early_retry for v in retried)


WRITE = "POST /v1.0/users/{id}/assignLicense"


def test_refused_requests_are_charged_and_each_retry_after_counts_the_debt():
    """Graph (reference 7.1): usage keeps accruing while throttled. The default model."""
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True, budget_scale=0.001)  # 3 writes / 150 s: one per 50 s
    assert throttler.charge_refused
    verdicts = [throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True] * 3 + [False] * 3
    # Each refusal is charged: the first must wait for its own charge and its retry (2 writes, 100 s),
    # the later ones for the refusals before them as well.
    assert [v.retry_after for v in verdicts[3:]] == [100, 150, 200]
    assert all(v.scope == "Tenant_Application/Write/app/t" and v.information == "WriteLimitExceeded" for v in verdicts[3:])


def test_a_wave_sent_again_after_the_first_retry_after_is_refused_again():
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True, budget_scale=0.001)
    waits = [v.retry_after for v in (throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now) for _ in range(6)) if not v.allowed]
    wall.now += waits[0]
    wave = [throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now) for _ in waits]
    assert not any(v.allowed for v in wave)
    # ... and those refusals were charged too: the debt grew, so did the wait.
    assert wave[-1].retry_after > waits[-1] - waits[0]


def test_after_the_last_retry_after_writes_at_the_refill_rate_pass():
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True, budget_scale=0.001)
    waits = [v.retry_after for v in (throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now) for _ in range(6)) if not v.allowed]
    wall.now += max(waits)
    paced = []
    for _ in waits:
        paced.append(throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now))
        wall.now += 50.0  # the budget's refill rate
    assert all(v.allowed for v in paced)


def test_a_write_budget_can_start_nearly_spent():
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True)
    throttler.configure(write_budget_left=0.01)  # 30 of the 3,000 writes per 150 s left
    admitted = [throttler.check("app", "t", 10, WRITE, "POST", {}, arrival=wall.now).allowed for _ in range(31)]
    assert admitted == [True] * 30 + [False]
    # reads are not write-limited
    assert throttler.check("app", "t", 10, "GET /v1.0/users", "GET", {"$select": "id"}).allowed


def test_in_flight_requests_right_after_a_429_are_not_early_retries():
    wall = FakeWall()
    throttler = Throttler(Clock(1.0, wall=wall), enabled=True, budget_scale=0.001, early_retry_grace_ms=100)
    for _ in range(3):
        throttler.check("app", "t", 10, "POST /v1.0/users", "POST", {})
    assert not throttler.check("app", "t", 10, "POST /v1.0/users", "POST", {}).allowed
    wall.now += 0.05
    in_flight = throttler.check("app", "t", 10, "POST /v1.0/users", "POST", {})
    assert not in_flight.allowed and not in_flight.early_retry
    other_app = throttler.check("other", "t", 10, "POST /v1.0/users", "POST", {})
    assert other_app.allowed


def test_documented_costs_and_tenant_sizes():
    assert resource_units("GET /v1.0/users", "GET", {}) == 2
    assert resource_units("GET /v1.0/users", "GET", {"$select": "id", "$top": "5"}) == 1
    assert resource_units("GET /v1.0/groups/{id}/transitiveMembers", "GET", {"$expand": "x"}) == 6
    assert resource_units("POST /v1.0/users/{id}/assignLicense", "POST", {}) == 1
    assert (ru_quota_for(49), ru_quota_for(50), ru_quota_for(500), ru_quota_for(501)) == (3500, 5000, 5000, 8000)


def test_resource_unit_budget_for_reads(fresh_emu, fresh_graph):
    # 30 users = small tenant: 3,500 RU / 10 s scaled to 3.5; GET users costs 2
    fresh_emu.configure(throttling=True, budget_scale=0.001)
    first = fresh_graph.get("users")
    second = fresh_graph.get("users")
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert second.headers["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")
