"""The /_emulator/ control API over HTTPS, as a playbook in another process would use it."""

import pytest

from conftest import EMS_E5, Graph, https_session, licensed_user, msal_token, users_of


@pytest.fixture()
def control(fresh_emu):
    session = https_session(fresh_emu)

    def call(method, name, body=None):
        return session.request(method, f"{fresh_emu.base_url}/_emulator/{name}", json=body, timeout=30)

    return call


def test_info_and_config(fresh_emu, control):
    info = control("GET", "info").json()
    assert info["base_url"] == fresh_emu.base_url and info["tenant_id"] == fresh_emu.tenant_id
    assert info["ca_path"] == fresh_emu.ca_path and info["client_id"] == fresh_emu.client_id
    config = control("POST", "config", {"throttling": True, "time_scale": 5, "latency_ms": 1}).json()
    assert config["throttling"] is True and config["time_scale"] == 5.0 and config["latency_ms"] == 1.0
    assert control("GET", "config").json() == config
    refused = control("POST", "config", {"throtling": True})
    assert refused.status_code == 400 and "throtling" in refused.json()["error"]
    assert control("POST", "config", {"time_scale": 0}).status_code == 400


def test_state_export_and_load_round_trip(fresh_emu, control, fresh_graph):
    state = control("GET", "state").json()
    assert len(state["users"]) == 30
    user = licensed_user(fresh_emu)
    fresh_graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []})
    changed = control("GET", "state").json()
    assert changed != state
    loaded = control("PUT", "state", state)
    assert loaded.status_code == 200 and loaded.json()["users"] == 30
    held = {lic["skuId"] for lic in fresh_emu.directory.get_user(user["id"])["assignedLicenses"]}
    assert EMS_E5 not in held
    assert control("PUT", "state", {"users": "nope"}).status_code == 400


def test_generate_replaces_the_tenant_and_keeps_serving_tokens(fresh_emu, control):
    result = control("POST", "generate", {"users": 12, "seed": 99}).json()
    assert result["users"] == 12 and result["tenant_id"] == fresh_emu.tenant_id
    token = msal_token(fresh_emu)["access_token"]
    users = Graph(fresh_emu, token).get("users?$select=id").json()["value"]
    assert len(users) == 12
    assert control("POST", "generate", {"users": 5, "colour": "red"}).status_code == 400


def test_stats_and_request_log(fresh_emu, control, fresh_graph):
    control("DELETE", "stats")
    user = users_of(fresh_emu)[0]
    fresh_graph.get(f"users/{user['id']}?$select=id")
    fresh_graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": [], "removeLicenses": []}, headers={"client-request-id": "cr-1"})
    fresh_graph.get("users/not-there")
    stats = control("GET", "stats").json()
    assert stats["by_route"]["GET /v1.0/users/{id}"]["by_status"] == {"200": 1, "404": 1}
    assert stats["by_route"]["POST /v1.0/users/{id}/assignLicense"]["count"] == 1
    assert stats["by_status"] == {"200": 2, "404": 1}
    assert stats["writes"] == 1 and stats["resource_units"] >= 3
    log = control("GET", "requests").json()["value"]
    assert [entry["status"] for entry in log] == [200, 200, 404]
    write = log[1]
    assert write["method"] == "POST" and write["write"] is True and write["in_batch"] is False
    assert write["client_request_id"] == "cr-1" and write["path"] == f"/v1.0/users/{user['id']}/assignLicense"
    assert log[0]["path"] == f"/v1.0/users/{user['id']}", "query strings are not logged"
    control("DELETE", "requests")
    assert control("GET", "requests").json()["value"] == []


def test_faults_over_http(fresh_emu, control, fresh_graph):
    created = control("POST", "faults", {"method": "GET", "route": "/organization$", "status": 503, "count": None})
    assert created.status_code == 201
    fault_id = created.json()["id"]
    assert [f["id"] for f in control("GET", "faults").json()["value"]] == [fault_id]
    assert fresh_graph.get("organization").status_code == 503
    assert control("DELETE", f"faults/{fault_id}").status_code == 200
    assert fresh_graph.get("organization").status_code == 200
    assert control("POST", "faults", {"route": "x"}).status_code == 400
    assert control("DELETE", "faults/unknown").status_code == 404


def test_apps_and_tokens_over_http(fresh_emu, control):
    app = control("POST", "apps", {"permissions": ["Organization.Read.All"], "secret": "app-secret-1"}).json()
    token = msal_token(fresh_emu, app["clientId"], "app-secret-1")["access_token"]
    graph = Graph(fresh_emu, token)
    assert graph.get("organization").status_code == 200
    assert graph.get("users").status_code == 403
    issued = control("POST", "tokens", {"client_id": app["clientId"], "permissions": ["User.Read.All"], "expires_in": 60}).json()
    assert Graph(fresh_emu, issued["access_token"]).get("users?$top=1").status_code == 200
    assert control("POST", "apps", {"permissions": [], "colour": "x"}).status_code == 400


def test_process_drains_group_licensing(fresh_emu, control, fresh_graph):
    fresh_emu.configure(processing_rate=0)
    members = [u["id"] for u in users_of(fresh_emu)[:3]]
    group = fresh_graph.post(
        "groups",
        {
            "displayName": "Slow",
            "mailEnabled": False,
            "mailNickname": "slow",
            "securityEnabled": True,
            "members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{m}" for m in members],
        },
    ).json()
    fresh_graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []})
    queued = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()
    assert queued["licenseProcessingState"]["state"] == "QueuedForProcessing"
    assert control("POST", "process").json() == {"pending": 0}
    done = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()
    assert done["licenseProcessingState"]["state"] == "ProcessingComplete"


def test_unknown_control_endpoint(control):
    assert control("GET", "nothing").status_code == 404


def test_identity_requests_are_logged_but_are_not_graph_writes(fresh_emu, control, fresh_graph):
    control("DELETE", "stats")
    control("DELETE", "requests")
    msal_token(fresh_emu)  # POST /{tenant}/oauth2/v2.0/token
    user = users_of(fresh_emu)[0]
    fresh_graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": [], "removeLicenses": []})
    log = control("GET", "requests").json()["value"]
    token_posts = [entry for entry in log if entry["path"].endswith("/oauth2/v2.0/token")]
    assert token_posts and all(entry["method"] == "POST" and entry["write"] is False for entry in token_posts)
    assert [entry["path"] for entry in log if entry["write"]] == [f"/v1.0/users/{user['id']}/assignLicense"]
    assert control("GET", "stats").json()["writes"] == 1


def test_answer_time_counts_the_emulators_own_work_and_latency_adds_to_it(fresh_emu, control, fresh_graph):
    import time

    def seconds(path):
        started = time.perf_counter()
        response = fresh_graph.get(path)
        assert response.status_code == 200
        return time.perf_counter() - started

    fresh_graph.get("users?$top=1")  # connection and token in place
    quick = min(seconds("users?$top=1") for _ in range(3))
    assert control("POST", "config", {"answer_time_ms": 300}).json()["answer_time_ms"] == 300.0
    answered = [seconds("users?$top=1") for _ in range(3)]
    assert min(answered) >= 0.3 and max(answered) < 0.3 + quick + 0.25  # the emulator's work is inside the 300 ms
    control("POST", "config", {"latency_ms": 200})
    assert seconds("users?$top=1") >= 0.5  # latency comes on top
    control("POST", "config", {"latency_ms": 0, "answer_time_ms": 0})
    assert min(seconds("users?$top=1") for _ in range(3)) < 0.3
    assert control("POST", "config", {"answer_time_ms": -1}).status_code == 400
