# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""license_audit_info in-process against the Graph emulator (real HTTPS, real msal, the audit log's own limit)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from graph_emulator import Emulator, generate_tenant
from graph_emulator.legacy import LEGACY_APP_ID

from ansible_collections.entraops.licensing.plugins.modules import license_audit_info
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection as connection, run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
LEGACY_ID = "3c1d8a52-0000-4000-8000-00000000abcd"
FINISH = "Finish applying group based license to users"


@pytest.fixture(scope="module")
def emulator_instance():
    with Emulator(tenant=generate_tenant(users=40, seed=3), port=0, throttling=False) as emu:
        yield emu


@pytest.fixture
def emu(emulator_instance):
    emulator_instance.load_state(generate_tenant(users=40, seed=3))
    emulator_instance.configure(throttling=False, audit_actor="azure_ad", audit_retention_days=30)
    emulator_instance.reset_stats()
    yield emulator_instance
    emulator_instance.configure(throttling=False, audit_actor="azure_ad")


def users(emu):
    return emu.export_state()["users"]


def licensed_group(emu, count=10, name="lic-e3"):
    members = [u["id"] for u in users(emu)[:count]]
    group = emu.directory.create_group({"displayName": name, "securityEnabled": True, "mailEnabled": False, "mailNickname": name}, None, members)
    emu.directory.assign_group_license(group["id"], [{"skuId": E3, "disabledPlans": []}], [], None)
    emu.process_all()
    return group["id"]


def legacy_writes(emu, user_ids):
    """A second app (the legacy script) removes and re-adds the users' direct E3 over HTTPS."""
    emu.add_app(
        permissions=["LicenseAssignment.ReadWrite.All", "User.Read.All"], client_id=LEGACY_ID, secret="legacy-secret", display_name="Legacy licensing script"
    )
    import requests  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    session.trust_env = False
    session.verify = emu.ca_path
    token = emu.issue_token(client_id=LEGACY_ID)
    for user_id in user_ids:
        for body in ({"addLicenses": [], "removeLicenses": [E3]}, {"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}):
            reply = session.post(
                "%s/v1.0/users/%s/assignLicense" % (emu.base_url, user_id), json=body, headers={"Authorization": "Bearer " + token}, timeout=30
            )
            assert reply.status_code == 200, reply.text


def run(emu, **options):
    return run_module(license_audit_info.main, connection(emu, **options))


def test_group_finish_counts_and_set_group_license_by_this_collection(emu):
    group_id = licensed_group(emu)
    result, failed = run(emu, since="1h", groups=[group_id])
    assert not failed, result
    (group,) = result["groups"]
    assert group["display_name"] == "lic-e3"
    assert group["last_finish"]["users_assigned"] == 10 and group["last_finish"]["users_failed"] == 0
    assert [p["activity"] for p in group["processing"]] == ["start", "finish"]
    # set in-process (the emulator's control app), not by this collection's client id
    assert group["set_group_license"][0]["initiated_by"]["display_name"] == "emulator control"
    assert result["users"] == [] and result["requests"] == 3 and result["window"]["complete"] is True
    # only the audit endpoint was read, once per group activity, the group filtered server-side
    audit = [entry for entry in emu.request_log() if entry["path"] == "/v1.0/auditLogs/directoryAudits"]
    assert len(audit) == 3


def test_both_actor_spellings_count_as_group_licensing(emu):
    group_id = licensed_group(emu, count=4)
    emu.configure(audit_actor="entra")
    emu.directory.remove_member(group_id, users(emu)[0]["id"], None)
    emu.process_all()
    result, failed = run(emu, since="1h", groups=[group_id], users=[users(emu)[0]["id"]])
    assert not failed, result
    finishes = result["groups"][0]["finish"]
    assert [f["initiated_by"]["display_name"] for f in finishes] == ["Microsoft Azure AD Group-Based Licensing", "Microsoft Entra group-Based Licensing"]
    assert {f["initiated_by"]["kind"] for f in finishes} == {"group_licensing"}
    (user,) = result["users"]
    assert user["by_writer"] == {"group_licensing": 2, "this_collection": 0, "other": 0}
    assert result["other_writers"] == []


def test_legacy_writer_identified_by_app_id_and_own_writes_apart(emu):
    targets = [u["id"] for u in users(emu)[:3]]
    legacy_writes(emu, targets[:2])
    own = connection(emu)
    import requests  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    session.trust_env = False
    session.verify = emu.ca_path
    reply = session.post(
        "%s/v1.0/users/%s/assignLicense" % (emu.base_url, targets[2]),
        json={"addLicenses": [], "removeLicenses": [E3]},
        headers={"Authorization": "Bearer " + emu.issue_token()},
        timeout=30,
    )
    assert reply.status_code == 200
    result, failed = run(emu, since="1h", users=targets)
    assert not failed, result
    assert result["requests"] == 1
    by_id = dict((u["id"], u) for u in result["users"])
    assert by_id[targets[0]]["by_writer"] == {"group_licensing": 0, "this_collection": 0, "other": 2}
    assert by_id[targets[0]]["other_writers"] == [
        {"app_id": LEGACY_ID, "display_name": "Legacy licensing script", "user_id": None, "user_principal_name": None}
    ]
    assert by_id[targets[2]]["by_writer"] == {"group_licensing": 0, "this_collection": 1, "other": 0}
    assert by_id[targets[2]]["changes"][0]["initiated_by"]["app_id"] == own["client_id"].lower()
    assert result["other_writers"] == [
        {"app_id": LEGACY_ID, "display_name": "Legacy licensing script", "user_id": None, "user_principal_name": None, "users": 2, "events": 4}
    ]


def test_large_window_stays_within_five_requests_per_ten_seconds(emu):
    # up to 40 users x 60 removals and re-adds: over 4,300 Change user license events, 5 pages of 999, plus 3 group queries
    group_id = licensed_group(emu, count=5)
    ids = [u["id"] for u in users(emu) if u.get("usageLocation")][:40]
    assert len(ids) >= 36
    for dummy in range(60):
        for user_id in ids:
            emu.directory.assign_user_license(user_id, [], [E3], None)
            emu.directory.assign_user_license(user_id, [{"skuId": E3, "disabledPlans": []}], [], None)
    emu.configure(throttling=True)
    emu.reset_stats()
    result, failed = run(emu, since="29d")
    assert not failed, result
    assert result["requests"] == 8 and result["window"]["read_complete"] is True
    assert sum(u["by_writer"]["other"] for u in result["users"]) == len(ids) * 120 > 4 * 999
    assert [g["id"] for g in result["groups"]] == [group_id]
    audit = [e for e in emu.request_log() if e["path"] == "/v1.0/auditLogs/directoryAudits"]
    answered = [datetime.datetime.fromisoformat(e["time"]).timestamp() for e in audit if e["status"] == 200]
    # The pacer keeps to Graph's bucket (5 at once, then one every 2 s); a request arriving a hair early under load may
    # still be refused once, and is then retried after its Retry-After.
    assert len(answered) == 8 and emu.stats()["throttled"] <= 1 and len(audit) - len(answered) == emu.stats()["throttled"]
    assert answered[7] - answered[0] >= 5.5
    assert result["graph"]["seconds_paced"] > 0


def test_max_requests_stops_the_read_and_says_so(emu):
    licensed_group(emu, count=5)
    result, failed = run(emu, since="1h", max_requests=2)
    assert not failed
    assert result["requests"] == 2 and result["window"]["read_complete"] is False
    assert any("max_requests=2" in w for w in result["warnings"])


def test_window_before_the_retention_is_flagged(emu):
    licensed_group(emu, count=2)
    result, failed = run(emu, since="45d")
    assert not failed
    assert result["window"]["complete"] is False and "keeps 30 days" in result["window"]["message"]
    assert any("keeps 30 days" in w for w in result["warnings"])
    assert result["groups"]  # what is kept is still returned


def test_missing_audit_permission_is_said_not_failed_when_asked(emu):
    app = emu.add_app(permissions=["User.Read.All"], secret="no-audit-secret", display_name="no audit")
    options = dict(client_id=app["clientId"], client_secret="no-audit-secret")
    result, failed = run(emu, since="1h", fail_on_forbidden=False, **options)
    assert not failed and result["readable"] is False
    assert "AuditLog.Read.All" in result["message"] and any("AuditLog.Read.All" in w for w in result["warnings"])
    result, failed = run(emu, since="1h", **options)
    assert failed and result["graph_error"]["status"] == 403


def test_bad_since_fails_before_any_request(emu):
    result, failed = run(emu, since="yesterday")
    assert failed and "since: got 'yesterday'" in result["msg"]
    result, failed = run(emu, since="1h", max_requests=0)
    assert failed and "max_requests: got 0" in result["msg"]
    assert [e for e in emu.request_log() if e["path"].startswith("/v1.0/")] == []


def test_readds_after_removal_are_named_by_writer_and_joiners_reported(emu, tmp_path):
    """The real path: plan, removal with the journal, the legacy script re-licensing, a fresh reading, then this module."""
    from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info  # pylint: disable=import-outside-toplevel

    group_id = licensed_group(emu, count=6)
    members = [u["id"] for u in users(emu)[:6]]
    plan_path, journal_path, reading_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl"), str(tmp_path / "reading.json")
    baseline_path = str(tmp_path / "baseline.json")
    planned, failed = run_module(
        license_assignment_info.main,
        connection(emu, skus=["ENTERPRISEPACK"], trusted_groups=[group_id], plan_path=plan_path, report_path=baseline_path, canary_size=0, batch_size=100),
    )
    assert not failed, planned.get("msg")
    removed, failed = run_module(direct_license.main, connection(emu, state="absent", plan_path=plan_path, journal_path=journal_path))
    assert not failed and removed["removed_total"] == 6, removed.get("msg")
    # the legacy script: the users of department Sales (two of the migrated ones and a joiner created after the plan)
    for user_id in members[:2]:
        emu.directory.update_user(user_id, {"department": "Sales"}, None)
    joiner = emu.directory.create_user(
        {
            "displayName": "New Joiner",
            "userPrincipalName": "new.joiner@contoso.onmicrosoft.com",
            "usageLocation": "US",
            "department": "Sales",
            "accountEnabled": True,
        },
        None,
    )
    emu.legacy.configure(rule={"property": "department", "equals": "Sales"})
    assert sorted(emu.legacy.run_once()["relicensed"]) == sorted(members[:2] + [joiner["id"]])
    reading, failed = run_module(license_assignment_info.main, connection(emu, skus=["ENTERPRISEPACK"], trusted_groups=[group_id], report_path=reading_path))
    assert not failed, reading.get("msg")
    emu.reset_stats()
    result, failed = run(emu, journal_path=journal_path, reading_path=reading_path, baseline_path=baseline_path)
    assert not failed, result.get("msg")
    assert sorted(row["user_id"] for row in result["readded"]) == sorted(members[:2])
    assert {row["writer"]["app_id"] for row in result["readded"]} == {LEGACY_APP_ID.lower()}
    assert result["readded_writers"] == {"Legacy licensing script (app %s)" % LEGACY_APP_ID: 2}
    assert [row["user_id"] for row in result["joiners_not_in_plan"]] == [joiner["id"]] and result["joiners_not_in_plan_total"] == 1
    assert result["requests"] == 1  # only Change user license, since the earliest removal that came back
    assert joiner["id"] in [row["user_id"] for row in result["direct_only_no_group"]] and result["lost_group_kept_direct_total"] == 0
    assert emu.loss_ledger() == []


def test_nothing_came_back_means_no_audit_request(emu, tmp_path):
    from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info  # pylint: disable=import-outside-toplevel

    group_id = licensed_group(emu, count=3)
    plan_path, journal_path, reading_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl"), str(tmp_path / "reading.json")
    run_module(
        license_assignment_info.main, connection(emu, skus=["ENTERPRISEPACK"], trusted_groups=[group_id], plan_path=plan_path, canary_size=0, batch_size=100)
    )
    run_module(direct_license.main, connection(emu, state="absent", plan_path=plan_path, journal_path=journal_path))
    run_module(license_assignment_info.main, connection(emu, skus=["ENTERPRISEPACK"], trusted_groups=[group_id], report_path=reading_path))
    emu.reset_stats()
    result, failed = run(emu, journal_path=journal_path, reading_path=reading_path)
    assert not failed and result["readded"] == [] and result["requests"] == 0
    assert [e for e in emu.request_log() if e["path"].startswith("/v1.0/")] == []
    result, failed = run(emu, reading_path=reading_path)
    assert failed and "reading_path needs journal_path" in result["msg"]
    result, failed = run(emu)
    assert failed and "since is required" in result["msg"]
