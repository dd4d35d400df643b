"""The emulator as strict as Graph (issue 21): one test per behaviour, over HTTPS where it is on the wire.

Defaults: shuffled $batch, dependsOn patterns, literal types and limits in $filter, refused query options,
Content-Type on writes, tokens bound to the tenant in the authority, a least-privileged default app.
Switches (off by default): short and empty pages, read lag, processing delay, unknown processing states.
"""

import re
import time
from pathlib import Path

import msal
import pytest
from conftest import E3, EMS_E5, assert_error_envelope, https_session, licensed_user, users_of

from graph_emulator import Emulator, generate_tenant
from graph_emulator.strict import UNKNOWN_PROCESSING_STATE

JSON = {"Content-Type": "application/json"}
README = Path(__file__).resolve().parents[2] / "README.md"


def by_id(response):
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["responses"]}


# -- $batch -----------------------------------------------------------------------------------------


def test_batch_answers_in_another_order_and_runs_items_in_any_order(fresh_emu, fresh_graph):
    users = users_of(fresh_emu)[:20]
    requests = [{"id": str(n), "method": "GET", "url": f"/users/{user['id']}?$select=id"} for n, user in enumerate(users)]
    fresh_emu.clear_request_log()
    answered = [item["id"] for item in fresh_graph.post("$batch", {"requests": requests}).json()["responses"]]
    ran = [entry["path"].rsplit("/", 1)[1] for entry in fresh_emu.request_log() if entry["in_batch"]]
    assert sorted(answered, key=int) == [r["id"] for r in requests]
    assert answered != [r["id"] for r in requests], "20 answers in request order: the shuffle is off"
    assert ran != [user["id"] for user in users], "20 items run in request order: the shuffle is off"
    fresh_emu.configure(batch_shuffle=False)
    fresh_emu.clear_request_log()
    answered = [item["id"] for item in fresh_graph.post("$batch", {"requests": requests}).json()["responses"]]
    assert answered == [r["id"] for r in requests]
    assert [entry["path"].rsplit("/", 1)[1] for entry in fresh_emu.request_log() if entry["in_batch"]] == [user["id"] for user in users]


def test_depends_on_runs_first_and_only_graphs_patterns_are_accepted(emu, graph):
    def item(n, depends=None):
        entry = {"id": str(n), "method": "GET", "url": "/organization"}
        if depends:
            entry["dependsOn"] = depends
        return entry

    serial = [item(1), item(2, ["1"]), item(3, ["2"]), item(4, ["3"])]
    same = [item(1), item(2, ["1"]), item(3, ["1"]), item(4, ["1"])]
    parallel = [item(1), item(2), item(3)]
    for accepted in (serial, same, parallel):
        assert all(answer["status"] == 200 for answer in by_id(graph.post("$batch", {"requests": accepted})).values())
    two_dependencies = [item(1), item(2), item(3, ["1", "2"])]
    mixed = [item(1), item(2, ["1"]), item(3), item(4, ["3"])]
    backwards = [item(1, ["2"]), item(2, ["3"]), item(3)]
    for refused in (two_dependencies, mixed, backwards):
        error = assert_error_envelope(graph.post("$batch", {"requests": refused}), 400, "BadRequest")
        assert error["message"].startswith("Invalid dependsOn")


def test_serial_items_run_in_their_dependency_order(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    add = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    remove = {"addLicenses": [], "removeLicenses": [EMS_E5]}
    requests = [
        {"id": "add", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": add},
        {"id": "remove", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": JSON, "body": remove, "dependsOn": ["add"]},
        {"id": "read", "method": "GET", "url": f"/users/{user['id']}?$select=assignedLicenses", "dependsOn": ["remove"]},
    ]
    for _ in range(5):  # whatever the shuffle draws, the chain holds
        result = by_id(fresh_graph.post("$batch", {"requests": requests}))
        assert [result[key]["status"] for key in ("add", "remove", "read")] == [200, 200, 200]
        assert EMS_E5 not in {lic["skuId"] for lic in result["read"]["body"]["assignedLicenses"]}


def test_batch_item_writes_need_a_json_content_type(emu, graph):
    user = users_of(emu)[0]
    noop = {"addLicenses": [], "removeLicenses": []}
    result = by_id(
        graph.post(
            "$batch",
            {"requests": [{"id": "1", "method": "POST", "url": f"/users/{user['id']}/assignLicense", "headers": {"Content-Type": "text/plain"}, "body": noop}]},
        )
    )
    assert result["1"]["status"] == 415 and result["1"]["body"]["error"]["code"] == "UnsupportedMediaType"


# -- $filter literals and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, operand_types",
    [
        (f"users?$filter=assignedLicenses/any(x:x/skuId eq '{E3}')", ("Edm.Guid", "Edm.String")),
        ("users?$filter=id eq 4ef8aa38-9227-4658-9e27-a1c08a6a63ec", ("Edm.String", "Edm.Guid")),
        ("users?$filter=accountEnabled eq 'true'", ("Edm.Boolean", "Edm.String")),
        ("groups?$filter=securityEnabled eq 'true'", ("Edm.Boolean", "Edm.String")),
        ("users?$filter=id in ('a', 4ef8aa38-9227-4658-9e27-a1c08a6a63ec)", ("Edm.String", "Edm.Guid")),
    ],
)
def test_filter_literals_of_the_wrong_type_are_refused(graph, path, operand_types):
    error = assert_error_envelope(graph.get(path), 400, "BadRequest")
    assert error["message"].startswith("A binary operator with incompatible types was detected.")
    assert "Found operand types '%s' and '%s'" % operand_types in error["message"]


def test_filter_literals_of_the_right_type_pass(emu, graph):
    user = users_of(emu)[0]
    for path in (
        f"users?$filter=assignedLicenses/any(x:x/skuId eq {E3})&$top=1",
        f"users?$filter=id eq '{user['id']}'",
        "users?$filter=accountEnabled eq true&$top=1",
        "groups?$filter=securityEnabled eq true&$top=1",
    ):
        response = graph.get(path)
        assert response.status_code == 200 and response.json()["value"], (path, response.text)


def test_filter_limits_15_expressions_and_120_characters_without_advanced_query(emu, graph):
    ids = [user["id"] for user in users_of(emu)[:16]]
    in_clause = "users?$filter=id in (%s)"
    assert len(graph.get(in_clause % ",".join(f"'{i}'" for i in ids[:15])).json()["value"]) == 15
    error = assert_error_envelope(graph.get(in_clause % ",".join(f"'{i}'" for i in ids)), 400, "Request_UnsupportedQuery")
    assert "Max allowed: 15" in error["message"]
    ors = " or ".join(f"id eq '{i}'" for i in ids)
    assert_error_envelope(graph.get(f"users?$filter={ors}"), 400, "Request_UnsupportedQuery")
    advanced = graph.get(in_clause % ",".join(f"'{i}'" for i in ids) + "&$count=true", headers={"ConsistencyLevel": "eventual"})
    assert advanced.status_code == 200 and advanced.json()["@odata.count"] == 16
    assert graph.get("groups?$filter=displayName eq '%s'" % ("x" * 120)).status_code == 200
    error = assert_error_envelope(graph.get("groups?$filter=displayName eq '%s'" % ("x" * 121)), 400, "Request_UnsupportedQuery")
    assert "120" in error["message"]
    long_advanced = graph.get("groups?$filter=displayName eq '%s'&$count=true" % ("x" * 121), headers={"ConsistencyLevel": "eventual"})
    assert long_advanced.status_code == 200


@pytest.mark.parametrize(
    "path, message",
    [
        ("users?$skip=10", "'$skip' is not supported by the service."),
        ("groups?$skip=1", "'$skip' is not supported by the service."),
        ("users?$expand=memberOf", "$expand is not supported"),
        ("users/{user}?$expand=memberOf", "$expand is not supported"),
        ("groups/{group}/members?$expand=memberOf", "$expand is not supported"),
        ("users?$bogus=1", "Query option 'Bogus' is not allowed"),
        ("auditLogs/directoryAudits?$skip=1", "'$skip' is not supported by the service."),
    ],
)
def test_skip_expand_and_unknown_options_are_refused(emu, graph, path, message):
    user = users_of(emu)[0]
    group = emu.export_state()["groups"][0]
    error = assert_error_envelope(graph.get(path.format(user=user["id"], group=group["id"])), 400, "Request_BadRequest")
    assert message in error["message"]


# -- Content-Type ---------------------------------------------------------------------------------------------


def test_writes_without_a_json_content_type_are_refused(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    url = f"{fresh_emu.base_url}/v1.0/users/{user['id']}/assignLicense"
    body = '{"addLicenses": [], "removeLicenses": ["%s"]}' % E3
    auth = {"Authorization": f"Bearer {fresh_graph.token}"}
    missing = fresh_graph.session.post(url, data=body.encode(), headers=auth)
    error = assert_error_envelope(missing, 400, "BadRequest")
    assert "Content-Type" in error["message"]
    plain = fresh_graph.session.post(url, data=body.encode(), headers=dict(auth, **{"Content-Type": "text/plain"}))
    assert_error_envelope(plain, 415, "UnsupportedMediaType")
    assert E3 in {lic["skuId"] for lic in fresh_emu.directory.get_user(user["id"])["assignedLicenses"]}, "nothing was applied"
    charset = fresh_graph.session.post(url, data=body.encode(), headers=dict(auth, **{"Content-Type": "application/json; charset=utf-8"}))
    assert charset.status_code == 200
    reprocess = fresh_graph.session.post(f"{fresh_emu.base_url}/v1.0/users/{user['id']}/reprocessLicenseAssignment", headers=auth)
    assert reprocess.status_code == 200, "a POST without a body needs no Content-Type"


# -- identity --------------------------------------------------------------------------------------------------


def test_client_credentials_need_the_tenant_in_the_authority(emu):
    def token(tenant):
        app = msal.ConfidentialClientApplication(
            emu.client_id,
            client_credential=emu.client_secret,
            authority=f"{emu.authority_url}/{tenant}",
            instance_discovery=False,
            http_client=https_session(emu),
        )
        return app.acquire_token_for_client(scopes=[f"{emu.base_url}/.default"])

    refused = token("organizations")
    assert refused["error"] == "invalid_request" and refused["error_codes"] == [50194]
    assert "access_token" not in refused
    for tenant in (emu.tenant_id, emu.directory.default_domain):
        assert "access_token" in token(tenant)


def readme_least_privilege_permissions():
    """The permissions of the README's "Permissions" table (first table of that section)."""
    text = README.read_text()
    section = text[text.index("## Permissions") :]
    table = section[section.index("| Used for") : section.index("\n\n", section.index("| Used for"))]
    return set(re.findall(r"`([A-Za-z]+\.[A-Za-z.]+)`", table))


def test_generated_tenants_app_holds_exactly_the_readme_least_privilege_table():
    expected = readme_least_privilege_permissions() - {"Group.ReadWrite.All"}  # named only as the alternative for group writes
    tenant = generate_tenant(users=1, seed=1)
    assert set(tenant["apps"][0]["permissions"]) == expected
    tenant["apps"] = []  # a tenant without an app gets the emulator's default one
    with Emulator(tenant=tenant) as emu:
        assert set(emu.directory.apps[0]["permissions"]) == expected


def test_least_privilege_app_may_add_members_by_bind_but_not_rename_a_group(fresh_emu, fresh_graph):
    group = fresh_graph.post("groups", {"displayName": "LIC strict", "mailNickname": "licstrict", "mailEnabled": False, "securityEnabled": True}).json()
    user = users_of(fresh_emu)[0]
    bind = {"members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"]}
    assert fresh_graph.patch(f"groups/{group['id']}", bind).status_code == 204
    assert_error_envelope(fresh_graph.patch(f"groups/{group['id']}", {"description": "x"}), 403, "Authorization_RequestDenied")
    assert_error_envelope(fresh_graph.delete(f"groups/{group['id']}"), 403, "Authorization_RequestDenied")


# -- switches: paging -------------------------------------------------------------------------------------------


def test_short_and_empty_pages_still_list_every_user_once(fresh_emu, fresh_graph):
    fresh_emu.configure(short_pages=True, empty_pages=True, strict_seed=3)
    sizes, ids, url, empty_with_link = [], [], "users?$top=7&$select=id", 0
    while url:
        body = fresh_graph.get(url).json()
        sizes.append(len(body["value"]))
        ids.extend(user["id"] for user in body["value"])
        url = body.get("@odata.nextLink")
        empty_with_link += not body["value"] and bool(url)
    assert sorted(ids) == sorted(user["id"] for user in users_of(fresh_emu))
    assert max(sizes) <= 7 and any(0 < size < 7 for size in sizes[:-1]), sizes
    assert empty_with_link >= 1, sizes
    fresh_emu.configure(short_pages=False, empty_pages=False)
    items, pages = fresh_graph.list_all("users?$top=7&$select=id")
    assert len(items) == 30 and pages == 5


# -- switches: eventual consistency --------------------------------------------------------------------------------


def test_read_lag_hides_recent_license_writes_from_reads_then_shows_them(fresh_emu, fresh_graph):
    fresh_emu.configure(read_lag_ms=400)
    user = licensed_user(fresh_emu)
    add = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    count_query = f"users/$count?$filter=assignedLicenses/any(x:x/skuId eq {EMS_E5})"
    counted_before = int(fresh_graph.get(count_query, headers={"ConsistencyLevel": "eventual"}).text)
    written = fresh_graph.post(f"users/{user['id']}/assignLicense", add)
    assert written.status_code == 200
    stale = fresh_graph.get(f"users/{user['id']}?$select=assignedLicenses").json()
    assert EMS_E5 not in {lic["skuId"] for lic in stale["assignedLicenses"]}, "the read saw a write younger than the lag"
    listed = [u for u in fresh_graph.list_all("users?$select=id,assignedLicenses&$top=999")[0] if u["id"] == user["id"]]
    assert EMS_E5 not in {lic["skuId"] for lic in listed[0]["assignedLicenses"]}
    advanced = fresh_graph.get(
        f"users?$filter=assignedLicenses/any(x:x/skuId eq {EMS_E5})&$count=true&$select=id", headers={"ConsistencyLevel": "eventual"}
    ).json()
    assert advanced["@odata.count"] == counted_before, "the advanced count is the lagged one, not the exact one"
    assert EMS_E5 in {lic["skuId"] for lic in fresh_emu.directory.get_user(user["id"])["assignedLicenses"]}, "in-process reads are exact"
    time.sleep(0.5)  # past the configured lag, once: a fixed wait, not a poll
    fresh = fresh_graph.get(f"users/{user['id']}?$select=assignedLicenses").json()
    assert EMS_E5 in {lic["skuId"] for lic in fresh["assignedLicenses"]}


def test_read_lag_shows_a_group_as_it_was_before_its_license_change(fresh_emu, fresh_graph):
    fresh_emu.configure(read_lag_ms=400, processing_rate=0)
    group = fresh_graph.post("groups", {"displayName": "LIC lag", "mailNickname": "liclag", "mailEnabled": False, "securityEnabled": True}).json()
    time.sleep(0.5)
    add = {"addLicenses": [{"disabledPlans": [], "skuId": E3}], "removeLicenses": []}
    assert fresh_graph.post(f"groups/{group['id']}/assignLicense", add).status_code == 202
    stale = fresh_graph.get(f"groups/{group['id']}?$select=assignedLicenses,licenseProcessingState").json()
    assert stale["assignedLicenses"] == [] and stale["licenseProcessingState"] is None
    time.sleep(0.5)
    fresh = fresh_graph.get(f"groups/{group['id']}?$select=assignedLicenses,licenseProcessingState").json()
    assert [lic["skuId"] for lic in fresh["assignedLicenses"]] == [E3] and fresh["licenseProcessingState"] == {"state": "QueuedForProcessing"}


# -- switches: processing time, reprocessing, unknown states ------------------------------------------------------------


def licensed_group_with_member(emu, graph, name):
    user = users_of(emu)[1]
    bind = {"members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"]}
    group = graph.post("groups", dict(bind, displayName=name, mailNickname=name.replace(" ", ""), mailEnabled=False, securityEnabled=True)).json()
    emu.process_all()
    add = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    assert graph.post(f"groups/{group['id']}/assignLicense", add).status_code == 202
    return group, user


def from_group(graph, user, group):
    states = graph.get(f"users/{user['id']}?$select=licenseAssignmentStates").json()["licenseAssignmentStates"]
    return [entry for entry in states if entry["assignedByGroup"] == group["id"]]


def test_processing_delay_keeps_a_group_queued_and_reprocessing_does_not_resolve_at_once(fresh_emu, fresh_graph):
    fresh_emu.configure(processing_delay_s=3600)
    group, user = licensed_group_with_member(fresh_emu, fresh_graph, "LIC slow")
    state = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()["licenseProcessingState"]
    assert state == {"state": "QueuedForProcessing"}
    assert from_group(fresh_graph, user, group) == []
    assert fresh_graph.post(f"users/{user['id']}/reprocessLicenseAssignment").status_code == 200
    assert from_group(fresh_graph, user, group) == [], "reprocessing is queued work under processing_delay_s"
    fresh_emu.process_all()
    assert [entry["state"] for entry in from_group(fresh_graph, user, group)] == ["Active"]


def test_without_processing_delay_reprocessing_resolves_at_once(fresh_emu, fresh_graph):
    fresh_emu.configure(processing_rate=0)  # the background does nothing: only the reprocess can apply it
    group, user = licensed_group_with_member(fresh_emu, fresh_graph, "LIC now")
    assert from_group(fresh_graph, user, group) == []
    assert fresh_graph.post(f"users/{user['id']}/reprocessLicenseAssignment").status_code == 200
    assert [entry["state"] for entry in from_group(fresh_graph, user, group)] == ["Active"]


def test_unknown_processing_states_show_while_a_group_is_not_finished(fresh_emu, fresh_graph):
    fresh_emu.configure(unknown_processing_states=True, processing_rate=0)
    group, dummy = licensed_group_with_member(fresh_emu, fresh_graph, "LIC unknown")
    state = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()["licenseProcessingState"]
    assert state == {"state": UNKNOWN_PROCESSING_STATE}
    fresh_emu.process_all()
    state = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()["licenseProcessingState"]
    assert state == {"state": "ProcessingComplete"}


# -- knobs --------------------------------------------------------------------------------------------------------------


def test_strict_knobs_through_the_control_api_constructor_and_validation(fresh_emu):
    session = https_session(fresh_emu)
    knobs = {"short_pages": True, "empty_pages": True, "read_lag_ms": 250, "processing_delay_s": 5, "unknown_processing_states": True, "batch_shuffle": False}
    answer = session.post(f"{fresh_emu.base_url}/_emulator/config", json=knobs)
    assert answer.status_code == 200
    assert {name: answer.json()[name] for name in knobs} == dict(knobs, read_lag_ms=250.0, processing_delay_s=5.0)
    assert session.post(f"{fresh_emu.base_url}/_emulator/config", json={"read_lag_ms": -1}).status_code == 400
    assert session.post(f"{fresh_emu.base_url}/_emulator/config", json={"short_pages": "yes"}).status_code == 400
    with Emulator(tenant=generate_tenant(users=2, seed=1), short_pages=True, read_lag_ms=10) as emu:
        config = emu.config()
        assert config["short_pages"] is True and config["read_lag_ms"] == 10.0 and config["batch_shuffle"] is True
    with pytest.raises(TypeError):
        Emulator(tenant=generate_tenant(users=1, seed=1), shortpages=True)


def test_defaults_are_cheap_switches_off_shuffle_on():
    with Emulator(tenant=generate_tenant(users=1, seed=1)) as emu:
        config = emu.config()
    assert config["batch_shuffle"] is True
    assert (config["short_pages"], config["empty_pages"], config["read_lag_ms"], config["processing_delay_s"], config["unknown_processing_states"]) == (
        False,
        False,
        0.0,
        0.0,
        False,
    )


def test_serve_flags_reach_the_strict_knobs():
    from graph_emulator.cli import build_parser

    args = build_parser().parse_args(
        [
            "serve",
            "--no-batch-shuffle",
            "--short-pages",
            "--empty-pages",
            "--read-lag-ms",
            "300",
            "--processing-delay-s",
            "3",
            "--unknown-processing-states",
            "--strict-seed",
            "9",
        ]
    )
    assert (args.batch_shuffle, args.short_pages, args.empty_pages, args.read_lag_ms, args.processing_delay_s) == (False, True, True, 300.0, 3.0)
    assert args.unknown_processing_states is True and args.strict_seed == 9
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.batch_shuffle, defaults.short_pages, defaults.read_lag_ms) == (True, False, 0.0)
