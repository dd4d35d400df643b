"""JSON batching (reference section 6): limits, ids, dependencies, per-item status and throttling."""

from conftest import E3, EMS_E5, assert_error_envelope, licensed_user, users_of

JSON = {"Content-Type": "application/json"}


def by_id(response):
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["responses"]}


def test_batch_runs_items_and_reports_each_status(emu, graph):
    user = users_of(emu)[0]
    result = by_id(
        graph.post(
            "$batch",
            {
                "requests": [
                    {"id": "1", "method": "GET", "url": f"/users/{user['id']}?$select=id,assignedLicenses"},
                    {"id": "2", "method": "GET", "url": "users?$top=2&$select=id"},
                    {"id": "3", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
                    {"id": "4", "method": "GET", "url": "/subscribedSkus"},
                ]
            },
        )
    )
    assert result["1"]["status"] == 200 and result["1"]["body"]["id"] == user["id"]
    assert "assignedLicenses" in result["1"]["body"]
    assert len(result["2"]["body"]["value"]) == 2 and "@odata.nextLink" in result["2"]["body"]
    assert result["3"]["status"] == 404 and result["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert result["4"]["status"] == 200
    for item in result.values():
        assert int(item["headers"]["x-ms-resource-unit"]) >= 1


def test_batch_limits_and_malformed_envelopes(graph):
    over = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    assert_error_envelope(graph.post("$batch", {"requests": over}), 400, "BadRequest")
    duplicate = [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/groups"}]
    assert_error_envelope(graph.post("$batch", {"requests": duplicate}), 400, "BadRequest")
    assert_error_envelope(graph.post("$batch", {"nope": []}), 400, "BadRequest")
    no_type = [{"id": "1", "method": "POST", "url": "/groups", "body": {"displayName": "x"}}]
    error = assert_error_envelope(graph.post("$batch", {"requests": no_type}), 400, "BadRequest")
    assert "Content-Type" in error["message"]
    unknown_dependency = [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]
    assert graph.post("$batch", {"requests": unknown_dependency}).status_code == 400
    absolute = [{"id": "1", "method": "GET", "url": "https://example.com/v1.0/users"}]
    assert assert_error_envelope(graph.post("$batch", {"requests": absolute}), 400, "BadRequest")["message"] == "Invalid batch payload format."
    twenty = [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(20)]
    assert len(by_id(graph.post("$batch", {"requests": twenty}))) == 20


def test_dependents_of_a_failed_item_get_424_with_both_spellings(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    bad_remove = {"addLicenses": [], "removeLicenses": [EMS_E5]}  # user does not hold it -> 400
    add = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    result = by_id(
        fresh_graph.post(
            "$batch",
            {
                "requests": [
                    {"id": "1", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": bad_remove},
                    {"id": "2", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": add, "dependsOn": ["1"]},
                    {"id": "3", "method": "GET", "url": f"/users/{user['id']}", "depends_on": ["2"]},
                ]
            },
        )
    )
    assert result["1"]["status"] == 400
    assert result["2"]["status"] == 424 and result["3"]["status"] == 424
    assert result["2"]["body"]["error"]["code"] == "FailedDependency"
    held = {lic["skuId"] for lic in fresh_emu.directory.get_user(user["id"])["assignedLicenses"]}
    assert EMS_E5 not in held, "a 424 item must not run"


def test_dependencies_run_in_order(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    add = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    result = by_id(
        fresh_graph.post(
            "$batch",
            {
                "requests": [
                    {"id": "read", "method": "GET", "url": f"/users/{user['id']}?$select=assignedLicenses", "depends_on": ["add"]},
                    {"id": "add", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": add},
                ]
            },
        )
    )
    assert result["add"]["status"] == 200
    assert EMS_E5 in {lic["skuId"] for lic in result["read"]["body"]["assignedLicenses"]}


def test_batch_items_count_per_route_and_in_the_request_log(fresh_emu, fresh_graph):
    fresh_emu.reset_stats()
    user = users_of(fresh_emu)[0]
    fresh_graph.post(
        "$batch",
        {
            "requests": [
                {"id": "1", "method": "GET", "url": f"/users/{user['id']}"},
                {"id": "2", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": {"addLicenses": [], "removeLicenses": []}},
            ]
        },
    )
    stats = fresh_emu.stats()
    assert stats["by_route"]["POST /v1.0/$batch"]["count"] == 1
    assert stats["by_route"]["GET /v1.0/users/{id}"]["by_status"] == {"200": 1}
    assert stats["by_route"]["POST /v1.0/users/{id}/assignLicense"]["count"] == 1
    assert stats["batch_items"] == 2 and stats["http_requests"] == 1
    items = [entry for entry in fresh_emu.request_log() if entry["in_batch"]]
    assert sorted((e["method"], e["write"]) for e in items) == [("GET", False), ("POST", True)]


def test_throttled_batch_items_get_429_with_their_own_retry_after(fresh_emu, fresh_graph):
    # 3,000 writes per 150 s scaled to 3: the fourth write in the batch is over budget
    fresh_emu.configure(throttling=True, budget_scale=0.001)
    user = users_of(fresh_emu)[0]
    noop = {"addLicenses": [], "removeLicenses": []}
    result = by_id(
        fresh_graph.post(
            "$batch",
            {"requests": [{"id": str(i), "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": noop} for i in range(5)]},
        )
    )
    # items run in any order (batch_shuffle): which three got through is not fixed, that three did is
    assert sorted(item["status"] for item in result.values()) == [200, 200, 200, 429, 429]
    for throttled in (item for item in result.values() if item["status"] == 429):
        assert int(throttled["headers"]["Retry-After"]) >= 1
        assert throttled["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded"
        assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert fresh_emu.stats()["throttled"] == 2
    assert fresh_emu.stats()["early_retries"] == 0


def test_fault_inside_a_batch_item(fresh_emu, fresh_graph):
    fresh_emu.add_fault(method="GET", route=r"/subscribedSkus$", status=503, retry_after=2)
    result = by_id(
        fresh_graph.post(
            "$batch", {"requests": [{"id": "1", "method": "GET", "url": "/subscribedSkus"}, {"id": "2", "method": "GET", "url": "/subscribedSkus"}]}
        )
    )
    # the fault fires on whichever item runs first (batch_shuffle)
    assert sorted(item["status"] for item in result.values()) == [200, 503]
    assert [item["headers"]["Retry-After"] for item in result.values() if item["status"] == 503] == ["2"]
    fresh_emu.add_fault(method="GET", route=r"/subscribedSkus$", status=500, in_batch=False)
    result = by_id(fresh_graph.post("$batch", {"requests": [{"id": "1", "method": "GET", "url": "/subscribedSkus"}]}))
    assert result["1"]["status"] == 200, "in_batch=false faults leave batch items alone"
    assert fresh_graph.get("subscribedSkus").status_code == 500


def test_base64_item_body_is_accepted(fresh_emu, fresh_graph):
    import base64
    import json

    user = licensed_user(fresh_emu)
    encoded = base64.b64encode(json.dumps({"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}).encode()).decode()
    result = by_id(
        fresh_graph.post("$batch", {"requests": [{"id": "1", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": encoded}]})
    )
    assert result["1"]["status"] == 200
    assert {lic["skuId"] for lic in result["1"]["body"]["assignedLicenses"]} == {E3, EMS_E5}


def test_item_urls_must_be_relative_to_the_version_root(emu, graph):
    # absolute URLs fail the whole batch, a "/v1.0/..." path is the segment v1.0 under /v1.0 (reference 6; 3P captures)
    for url in ("https://graph.microsoft.com/v1.0/organization", f"{emu.base_url}/v1.0/organization"):
        error = assert_error_envelope(graph.post("$batch", {"requests": [{"id": "1", "method": "GET", "url": url}]}), 400, "BadRequest")
        assert error["message"] == "Invalid batch payload format."
    result = by_id(
        graph.post("$batch", {"requests": [{"id": "1", "method": "GET", "url": "/v1.0/organization"}, {"id": "2", "method": "GET", "url": "/organization"}]})
    )
    assert result["1"]["status"] == 400 and result["1"]["body"]["error"]["message"] == "Resource not found for the segment 'v1.0'."
    assert result["2"]["status"] == 200


def test_drop_fault_on_a_batch_item_drops_the_whole_batch(fresh_emu, fresh_graph):
    import pytest
    import requests

    fresh_emu.add_fault(method="GET", route=r"/organization$", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh_graph.post("$batch", {"requests": [{"id": "1", "method": "GET", "url": "/users?$top=1"}, {"id": "2", "method": "GET", "url": "/organization"}]})
    assert fresh_graph.get("organization").status_code == 200
