"""The legacy licensing automation (legacy.py): joiners, re-licenses, leavers, its audit trail, control API and CLI."""

import subprocess
import sys
import time

import pytest

from conftest import Graph, https_session
from graph_emulator import Emulator
from graph_emulator.legacy import LEGACY_APP_ID, LEGACY_APP_NAME
from test_engine import E3, YAMMER, group_doc, gid, make_tenant, uid, user_doc

CLI = [sys.executable, "-m", "graph_emulator.cli"]


def tenant():
    """Users 1-4 hold E3 directly; 1-3 also through group 1 (processed); 5 holds nothing; 6 is in department Sales."""
    users = [user_doc(n, direct=[(E3, [])]) for n in (1, 2, 3, 4)] + [user_doc(5), user_doc(6)]
    doc = make_tenant(users, [group_doc(1, [uid(1), uid(2), uid(3)], [(E3, [])])])
    doc["processing"] = {"groupLicenses": "processed"}
    return doc


@pytest.fixture()
def emu():
    with Emulator(tenant=tenant()) as emulator:
        yield emulator


def direct_skus(emu, n):
    user = emu.directory.get_user(uid(n))
    return [s["skuId"] for s in user["licenseAssignmentStates"] if s["assignedByGroup"] is None]


def legacy_events(emu):
    return [e for e in emu.directory.audit_events() if (e["initiatedBy"]["app"] or {}).get("appId") == LEGACY_APP_ID]


def test_relicenses_a_removed_direct_copy_and_logs_as_its_own_app(emu):
    emu.legacy.configure(disabled_plans=["YAMMER_ENTERPRISE"])
    first = emu.legacy.run_once()
    # user 5 and 6 are enabled and lack a direct copy: the first pass licenses them (no joiners on a first pass)
    assert first == {"joiners": [], "relicensed": [uid(5), uid(6)], "leavers": [], "failed": []}
    emu.directory.assign_user_license(uid(1), [], [E3], None)  # the migration removes user 1's direct copy
    assert direct_skus(emu, 1) == []
    second = emu.legacy.run_once()
    assert second["relicensed"] == [uid(1)]
    assert direct_skus(emu, 1) == [E3]
    user = emu.directory.get_user(uid(1))
    direct = [s for s in user["licenseAssignmentStates"] if s["assignedByGroup"] is None][0]
    assert direct["disabledPlans"] == [YAMMER]
    events = legacy_events(emu)
    assert [e["activityDisplayName"] for e in events].count("Change user license") == 3
    assert {e["initiatedBy"]["app"]["displayName"] for e in events} == {LEGACY_APP_NAME}
    assert emu.loss_ledger() == [e for e in emu.loss_ledger() if e["user_id"] != uid(1)]  # user 1 lost nothing
    actions = emu.legacy.action_log()
    assert [(a["kind"], a["user_id"]) for a in actions][-1] == ("relicensed", uid(1))
    assert actions[-1]["user_principal_name"] == "user1@contoso.com"


def test_joiners_and_leavers_follow_the_rule(emu):
    emu.legacy.configure(rule={"property": "department", "equals": "sales"}, checks="assigned")
    emu.directory.update_user(uid(6), {"department": "Sales"}, None)
    assert emu.legacy.run_once() == {"joiners": [], "relicensed": [uid(6)], "leavers": [], "failed": []}
    emu.directory.update_user(uid(5), {"department": "Sales"}, None)
    emu.directory.update_user(uid(2), {"department": "Sales"}, None)  # holds E3 through group 1 and directly: nothing to do
    assert emu.legacy.run_once() == {"joiners": [uid(5)], "relicensed": [], "leavers": [], "failed": []}
    emu.directory.update_user(uid(2), {"department": "Finance"}, None)
    emu.directory.update_user(uid(6), {"department": "Finance"}, None)
    # leavers: the direct copy goes; user 2 keeps E3 through group 1, user 6 loses it (what the script meant)
    assert emu.legacy.run_once() == {"joiners": [], "relicensed": [], "leavers": [uid(2), uid(6)], "failed": []}
    assert direct_skus(emu, 2) == [] and emu.directory.get_user(uid(2))["assignedLicenses"]
    assert direct_skus(emu, 6) == []
    assert {entry["user_id"] for entry in emu.loss_ledger()} == {uid(6)}


def test_checks_assigned_does_not_relicense_users_covered_by_a_group(emu):
    emu.legacy.configure(checks="assigned")
    emu.legacy.run_once()
    emu.directory.assign_user_license(uid(1), [], [E3], None)
    assert emu.legacy.run_once()["relicensed"] == []
    assert direct_skus(emu, 1) == []


def test_a_failed_write_is_logged_not_raised(emu):
    emu.directory.update_user(uid(5), {"usageLocation": None}, None)
    done = emu.legacy.run_once()
    assert done["failed"] == [uid(5)]
    failed = [a for a in emu.legacy.action_log() if a["user_id"] == uid(5)][0]
    assert "usage location" in failed["error"]


def test_bad_settings_are_refused_naming_the_value(emu):
    with pytest.raises(ValueError, match="sku: got 'E9'"):
        emu.legacy.configure(sku="E9")
    with pytest.raises(ValueError, match="disabled_plans: got 'NOPE'"):
        emu.legacy.configure(disabled_plans=["NOPE"])
    with pytest.raises(ValueError, match="rule.property: got 'city'"):
        emu.legacy.configure(rule={"property": "city", "equals": "x"})
    with pytest.raises(ValueError, match="interval_s: got 0"):
        emu.legacy.configure(interval_s=0)
    with pytest.raises(ValueError, match=r"unknown legacy automation setting\(s\) \['speed'\]"):
        emu.legacy.configure(speed=1)
    assert emu.legacy.config()["enabled"] is False


def test_the_schedule_runs_passes_in_emulated_time_and_stops(emu):
    emu.configure(time_scale=100.0)
    emu.legacy.configure(enabled=True, interval_s=10.0)  # 0.1 s of wall time between passes
    deadline = time.monotonic() + 10
    while emu.legacy.config()["passes"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emu.legacy.config()["passes"] >= 3
    assert direct_skus(emu, 5) == [E3]
    emu.legacy.configure(enabled=False)
    passes = emu.legacy.config()["passes"]
    time.sleep(0.3)
    assert emu.legacy.config()["passes"] == passes


def test_control_api(emu):
    session = https_session(emu)
    base = f"{emu.base_url}/_emulator/legacy"
    refused = session.post(base, json={"checks": "sometimes"}, timeout=30)
    assert refused.status_code == 400 and "checks: got 'sometimes'" in refused.json()["error"]
    configured = session.post(base, json={"disabled_plans": ["YAMMER_ENTERPRISE"]}, timeout=30).json()
    assert configured["disabled_plans"] == ["YAMMER_ENTERPRISE"] and configured["enabled"] is False
    ran = session.post(f"{base}/run", timeout=30).json()
    assert ran["relicensed"] == [uid(5), uid(6)]
    state = session.get(base, timeout=30).json()
    assert state["config"]["passes"] == 1 and len(state["actions"]) == 2
    assert session.delete(base, timeout=30).json() == {"actions": []}
    # the legacy app's writes read back over Graph like any other
    audit = Graph(emu, emu.issue_token(permissions=["AuditLog.Read.All", "Directory.Read.All"]))
    events, _ = audit.list_all(f"auditLogs/directoryAudits?$filter=initiatedBy/app/appId eq '{LEGACY_APP_ID}'")
    assert [e["activityDisplayName"] for e in events] == ["Change user license", "Update user"] * 2


def test_cli_refuses_bad_legacy_settings():
    result = subprocess.run(CLI + ["serve", "--users", "5", "--legacy-settings", '{"sku": "E9"}'], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "sku: got 'E9'" in result.stderr
    result = subprocess.run(CLI + ["serve", "--users", "5", "--legacy-settings", "[1]"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "expected a JSON object" in result.stderr


def test_group_tenant_helpers_are_consistent():
    # the fixture's group really covers users 1-3 (so the re-license above is a second copy, not a rescue)
    with Emulator(tenant=tenant()) as emulator:
        assert [m for m in emulator.directory.get_group(gid(1))["assignedLicenses"]] == [{"skuId": E3, "disabledPlans": []}]


def test_cli_switches_the_legacy_actor_and_the_audit_spelling_on(tmp_path):
    from test_cli import served  # pylint: disable=import-outside-toplevel

    settings = '{"interval_s": 5, "rule": {"property": "accountEnabled", "equals": true}}'
    serve_args = ("--port", "0", "--users", "5", "--time-scale", "50", "--legacy-actor", "--legacy-settings", settings, "--audit-actor", "entra")
    with served(tmp_path / "info.json", *serve_args) as (info, session):
        assert session.get(f"{info['base_url']}/_emulator/config", timeout=30).json()["audit_actor"] == "entra"
        deadline = time.monotonic() + 10
        state = session.get(f"{info['base_url']}/_emulator/legacy", timeout=30).json()
        while state["config"]["passes"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            state = session.get(f"{info['base_url']}/_emulator/legacy", timeout=30).json()
        assert state["config"]["enabled"] is True and state["config"]["interval_s"] == 5 and state["config"]["passes"] >= 2
