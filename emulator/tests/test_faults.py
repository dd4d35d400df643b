"""Fault injection: error statuses, delays, dropped connections, apply-then-fail, racing directory changes."""

import time

import pytest
import requests

from conftest import E3, EMS_E5, licensed_user, users_of
from graph_emulator.faults import FaultSpecError

ADD_EMS = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}


def held_skus(emu, user_id):
    return {lic["skuId"] for lic in emu.directory.get_user(user_id)["assignedLicenses"]}


@pytest.mark.parametrize("status, code, retry_after", [(500, "generalException", None), (503, "serviceNotAvailable", 1), (504, "GatewayTimeout", None)])
def test_status_faults_answer_without_running_the_request(fresh_emu, fresh_graph, status, code, retry_after):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=r"/assignLicense$", status=status, retry_after=retry_after)
    response = fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
    assert EMS_E5 not in held_skus(fresh_emu, user["id"])
    time.sleep(retry_after or 0)  # an honest client honours Retry-After
    assert fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS).status_code == 200, "count defaults to 1"
    assert fresh_emu.stats()["early_retries"] == 0


def test_skip_and_count(fresh_emu, fresh_graph):
    fresh_emu.add_fault(method="GET", route=r"/v1\.0/users$", status=500, skip=1, count=2)
    statuses = [fresh_graph.get("users?$top=1").status_code for _ in range(4)]
    assert statuses == [200, 500, 500, 200]


def test_injected_429_and_early_retry_detection(fresh_emu, fresh_graph):
    fresh_emu.add_fault(method="GET", route=r"/v1\.0/users$", status=429)
    response = fresh_graph.get("users?$top=1")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "TooManyRequests"
    time.sleep(0.2)  # past the in-flight grace, before Retry-After
    early = fresh_graph.get("users?$top=1")
    assert early.status_code == 429
    assert fresh_emu.stats()["early_retries"] == 1
    assert fresh_graph.get("organization").status_code == 200, "other requests are not held back"
    time.sleep(1)
    assert fresh_graph.get("users?$top=1").status_code == 200
    assert fresh_emu.stats()["early_retries"] == 1


def test_dropped_connection_is_a_connection_error_and_nothing_is_applied(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=r"/assignLicense$", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert EMS_E5 not in held_skus(fresh_emu, user["id"])
    assert fresh_emu.stats()["dropped"] == 1
    assert fresh_graph.get("users?$top=1").status_code == 200, "the server keeps serving"


def test_apply_then_504_means_the_write_happened(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=r"/assignLicense$", apply_then=True, status=504)
    response = fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert response.status_code == 504
    assert EMS_E5 in held_skus(fresh_emu, user["id"])
    again = fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert again.status_code == 200


def test_apply_then_drop(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=r"/assignLicense$", apply_then=True, drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert EMS_E5 in held_skus(fresh_emu, user["id"])


def test_delay_fault_slows_the_matching_request(fresh_emu, fresh_graph):
    fresh_emu.add_fault(method="GET", route=r"/organization$", delay_ms=300)
    started = time.monotonic()
    assert fresh_graph.get("organization").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_membership_change_races_the_request(fresh_emu, fresh_graph):
    users = users_of(fresh_emu)
    group = fresh_graph.post(
        "groups",
        {
            "displayName": "Race",
            "mailEnabled": False,
            "mailNickname": "race",
            "securityEnabled": True,
            "members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{u['id']}" for u in users[:2]],
        },
    ).json()
    victim = users[0]["id"]
    fresh_emu.add_fault(method="GET", route=rf"/groups/{group['id']}/members", op={"op": "remove_member", "group": group["id"], "user": victim})
    members = fresh_graph.get(f"groups/{group['id']}/members").json()["value"]
    assert victim not in [m["id"] for m in members]
    assert len(members) == 1


def test_sku_units_change_and_legacy_automation_ops(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(
        route=r"/subscribedSkus$",
        ops=[
            {"op": "set_sku_units", "sku": EMS_E5, "enabled": 0},
            {"op": "assign_user_license", "user": user["id"], "add": [{"skuId": E3, "disabledPlans": []}], "remove": []},
        ],
    )
    skus = fresh_graph.get("subscribedSkus").json()["value"]
    assert next(s for s in skus if s["skuId"] == EMS_E5)["prepaidUnits"]["enabled"] == 0
    failed = fresh_graph.post(f"users/{user['id']}/assignLicense", ADD_EMS)
    assert failed.status_code == 400


def test_fault_specs_are_validated(fresh_emu):
    with pytest.raises(FaultSpecError, match="no action"):
        fresh_emu.add_fault(route="users")
    with pytest.raises(FaultSpecError, match="unknown fault keys"):
        fresh_emu.add_fault(route="users", status=500, sttaus=1)
    with pytest.raises(FaultSpecError, match="apply_then"):
        fresh_emu.add_fault(route="users", apply_then=True, delay_ms=5)
    with pytest.raises(FaultSpecError, match="op"):
        fresh_emu.add_fault(op={"op": "explode"})
    fresh_emu.add_fault(route="x", status=500, count=None)
    assert len(fresh_emu.list_faults()) == 1
    fresh_emu.clear_faults()
    assert fresh_emu.list_faults() == []


# -- the outer $batch request ------------------------------------------------------------------------

BATCH_ROUTE = r"/\$batch$"


def assign_batch(user_id):
    return {
        "requests": [{"id": "1", "method": "POST", "url": f"/users/{user_id}/assignLicense", "headers": {"Content-Type": "application/json"}, "body": ADD_EMS}]
    }


def envelope_log(emu):
    return [entry for entry in emu.request_log() if entry["path"].lower() == "/v1.0/$batch"]


def item_log(emu):
    return [entry for entry in emu.request_log() if entry["in_batch"]]


@pytest.mark.parametrize("status, retry_after", [(429, 2), (503, 1), (500, None), (504, None)])
def test_outer_batch_status_fault_runs_no_item(fresh_emu, fresh_graph, status, retry_after):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=BATCH_ROUTE, in_batch=False, status=status, retry_after=retry_after)
    response = fresh_graph.post("$batch", assign_batch(user["id"]))
    assert response.status_code == status
    assert response.headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
    assert EMS_E5 not in held_skus(fresh_emu, user["id"])
    assert item_log(fresh_emu) == []
    assert [entry["status"] for entry in envelope_log(fresh_emu)] == [status]
    assert fresh_emu.stats()["faults_fired"] == 1


def test_outer_batch_429_window_counts_an_early_resend(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=BATCH_ROUTE, in_batch=False, status=429, retry_after=1)
    assert fresh_graph.post("$batch", assign_batch(user["id"])).status_code == 429
    time.sleep(0.2)  # past the in-flight grace, before Retry-After
    assert fresh_graph.post("$batch", assign_batch(user["id"])).status_code == 429
    assert fresh_emu.stats()["early_retries"] == 1
    time.sleep(1)
    assert fresh_graph.post("$batch", assign_batch(user["id"])).json()["responses"][0]["status"] == 200
    assert EMS_E5 in held_skus(fresh_emu, user["id"])


def test_outer_batch_drop_runs_no_item(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=BATCH_ROUTE, in_batch=False, drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh_graph.post("$batch", assign_batch(user["id"]))
    assert EMS_E5 not in held_skus(fresh_emu, user["id"])
    assert item_log(fresh_emu) == []
    assert [entry["status"] for entry in envelope_log(fresh_emu)] == [0]
    assert fresh_emu.stats()["dropped"] == 1


@pytest.mark.parametrize("answer", [{"drop": True}, {"status": 504}])
def test_outer_batch_apply_then_runs_the_items_first(fresh_emu, fresh_graph, answer):
    user = licensed_user(fresh_emu)
    fresh_emu.add_fault(method="POST", route=BATCH_ROUTE, in_batch=False, apply_then=True, **answer)
    if answer.get("drop"):
        with pytest.raises(requests.exceptions.ConnectionError):
            fresh_graph.post("$batch", assign_batch(user["id"]))
    else:
        assert fresh_graph.post("$batch", assign_batch(user["id"])).status_code == 504
    assert EMS_E5 in held_skus(fresh_emu, user["id"]), "the item's write happened"
    assert [entry["status"] for entry in item_log(fresh_emu)] == [200]
    assert [entry["status"] for entry in envelope_log(fresh_emu)] == [0 if answer.get("drop") else 504]


def test_faults_without_a_route_leave_the_envelope_alone(fresh_emu, fresh_graph):
    # skip counts Graph calls (items and top-level requests), not $batch envelopes
    users = users_of(fresh_emu)[:2]
    fresh_emu.add_fault(status=500, skip=1)
    body = {"requests": [{"id": str(n), "method": "GET", "url": f"/users/{u['id']}"} for n, u in enumerate(users)]}
    response = fresh_graph.post("$batch", body)
    assert response.status_code == 200
    assert sorted(item["status"] for item in response.json()["responses"]) == [200, 500]  # the second item to run, in any order


def test_clear_faults_closes_fault_retry_after_windows(fresh_emu, fresh_graph):
    fresh_emu.add_fault(method="GET", route=r"/v1\.0/users$", status=429, retry_after=5)
    assert fresh_graph.get("users?$top=1").status_code == 429
    fresh_emu.clear_faults()
    fresh_emu.reset_stats()
    time.sleep(0.2)  # past the in-flight grace: only the window could refuse it now
    assert fresh_graph.get("users?$top=1").status_code == 200
    assert fresh_emu.stats()["early_retries"] == 0


def test_control_api_clear_closes_fault_windows_too(fresh_emu, fresh_graph):
    control = fresh_graph.session
    fresh_emu.add_fault(method="GET", route=r"/organization$", status=503, retry_after=5)
    assert fresh_graph.get("organization").status_code == 503
    assert control.delete(f"{fresh_emu.base_url}/_emulator/faults").status_code == 200
    time.sleep(0.2)
    assert fresh_graph.get("organization").status_code == 200
    assert fresh_emu.stats()["early_retries"] == 0


@pytest.mark.parametrize("retry_after, header", [(0.5, "1"), (1.2, "2"), (0, "0")])
def test_fractional_retry_after_is_rounded_up_and_the_window_matches(fresh_emu, fresh_graph, retry_after, header):
    fresh_emu.add_fault(method="GET", route=r"/organization$", status=503, retry_after=retry_after)
    response = fresh_graph.get("organization")
    assert response.status_code == 503 and response.headers["Retry-After"] == header
    seconds = int(header)
    if seconds:
        time.sleep(seconds - 0.5)  # past the in-flight grace, still inside what the header said
        assert fresh_graph.get("organization").status_code == 429
        assert fresh_emu.stats()["early_retries"] == 1
        time.sleep(0.5)
    assert fresh_graph.get("organization").status_code == 200, "honouring the header is never early"
    assert fresh_emu.stats()["early_retries"] == (1 if seconds else 0)


def test_negative_retry_after_is_refused_on_the_control_api(fresh_emu, fresh_graph):
    url = f"{fresh_emu.base_url}/_emulator/faults"
    for bad in (-1, -0.5, "soon", True):
        response = fresh_graph.session.post(url, json={"route": "/organization$", "status": 429, "retry_after": bad})
        assert response.status_code == 400
        assert "retry_after" in response.json()["error"] and repr(bad) in response.json()["error"]
    assert fresh_emu.list_faults() == []
