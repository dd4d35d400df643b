# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""tenant_snapshot against the Graph emulator: generated tenant -> snapshot -> second emulator, the same licensing.

Every generator profile is covered (``graph_emulator.tenant.PROFILES``): a profile added to the emulator is
round-tripped here without a change to this file. On top of the generated tenant each test tenant gets licensed
groups (E3 for some users, EMS, and Audio Conferencing with fewer units than members, so some members are in
CountViolation) and a group nested in one of them, so the snapshot carries inherited copies, errors and nesting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.entraops.licensing.plugins.modules import license_assignment_info, tenant_snapshot

from .utils import STRICT_KNOBS, emulator_connection, run_module

KEY = "rehearsal-key-kept-by-the-operator"
# Properties that carry a name (replaced by pseudonyms) or are derived at load: not compared.
USER_NAMES = ("userPrincipalName", "displayName", "givenName", "surname", "mail", "mailNickname", "onPremisesSamAccountName", "employeeId")
USER_NAMES += ("onPremisesSecurityIdentifier", "onPremisesDomainName", "onPremisesUserPrincipalName", "onPremisesDistinguishedName")
GROUP_NAMES = ("displayName", "description", "mailNickname", "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesDomainName")
# membershipRuleProcessingStatus is a beta property (Graph v1.0 has none): the copy's own says when its load evaluated the rule.
GROUP_NAMES += ("onPremisesNetBiosName", "membershipRuleProcessingStatus")
# With pseudonymisation these are copied only when a membership rule names them (tenant_snapshot's documentation).
RULE_ONLY = ("department", "jobTitle", "companyName", "city", "onPremisesExtensionAttributes")


def _sku(doc, part_number):
    return next(sku for sku in doc["subscribedSkus"] if sku["skuPartNumber"] == part_number)


def _plan(sku, name):
    return next(plan["servicePlanId"] for plan in sku["servicePlans"] if plan["servicePlanName"] == name)


def licensed_tenant(profile, users=120, seed=3):
    """A generated tenant of ``profile`` with licensed groups, errors and nesting added."""
    from graph_emulator.tenant import generate_tenant  # pylint: disable=import-outside-toplevel

    doc = generate_tenant(users=users, seed=seed, profile=profile)
    e3, ems, meet = _sku(doc, "ENTERPRISEPACK"), _sku(doc, "EMS"), _sku(doc, "MCOMEETADV")
    meet["prepaidUnits"]["enabled"] = 8
    ids = [user["id"] for user in doc["users"] if user.get("usageLocation")]
    nested = "5f0c0a4e-8d7b-4d51-9a4f-000000000001"
    doc["groups"] += [
        {
            "id": "5f0c0a4e-8d7b-4d51-9a4f-000000000002",
            "displayName": "GBL - Office 365 E3",
            "members": ids[:40] + [nested],
            "assignedLicenses": [{"skuId": e3["skuId"], "disabledPlans": [_plan(e3, "YAMMER_ENTERPRISE")]}],
        },
        {"id": nested, "displayName": "GBL - E3 contractors", "members": ids[40:45], "assignedLicenses": []},
        {"id": "5f0c0a4e-8d7b-4d51-9a4f-000000000003", "displayName": "GBL - EMS", "members": ids[30:60], "assignedLicenses": [{"skuId": ems["skuId"]}]},
        {
            "id": "5f0c0a4e-8d7b-4d51-9a4f-000000000004",
            "displayName": "GBL - Audio Conferencing",
            "members": ids[50:62],
            "assignedLicenses": [{"skuId": meet["skuId"]}],
        },
    ]
    return doc


@pytest.fixture
def emulator():
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    started = []

    def start(tenant, **knobs):
        emu = Emulator(tenant=tenant, port=0, throttling=False, **dict(STRICT_KNOBS, **knobs)).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def snapshot(emu, tmp_path, **options):
    args = dict(emulator_connection(emu), path=str(tmp_path / "snapshot.json"))
    if options.get("pseudonymize", True):
        args.setdefault("pseudonym_key", KEY)
    args.update(options)
    return run_module(tenant_snapshot.main, args)


def verdicts(emu, sku_ids):
    result, failed = run_module(license_assignment_info.main, dict(emulator_connection(emu), skus=sku_ids, sample_size=100000))
    assert not failed, result.get("msg")
    return result["records"]


def comparable_user(user):
    doc = dict((key, value) for key, value in user.items() if key not in USER_NAMES + RULE_ONLY and value not in (None, [], {}))
    # Graph shows userType "Member" for a user whose file entry has none; the snapshot copies what Graph shows.
    doc.setdefault("userType", "Member")
    doc["groupLicenses"] = sorted(
        (entry["groupId"], entry["state"], entry["error"], json.dumps(entry["licenses"], sort_keys=True)) for entry in user.get("groupLicenses") or []
    )
    return doc


def comparable_group(group):
    doc = dict((key, value) for key, value in group.items() if key not in GROUP_NAMES and value not in (None, [], {}))
    doc["members"] = sorted(group["members"])
    return doc


@pytest.mark.parametrize("profile", __import__("graph_emulator.tenant", fromlist=["PROFILES"]).PROFILES)
def test_round_trip_keeps_licensing_groups_and_verdicts_with_pseudonyms(emulator, tmp_path, profile):
    original = emulator(licensed_tenant(profile))
    before = original.directory.export()
    group_ids = [group["id"] for group in before["groups"]]
    original.clear_request_log()
    result, failed = snapshot(original, tmp_path, groups=group_ids, mapping_path=str(tmp_path / "mapping.json"))
    assert not failed, result.get("msg")
    assert result["users"] == len(before["users"]) and result["groups"] == len(before["groups"])
    assert not any(entry["write"] for entry in original.request_log())

    with open(str(tmp_path / "snapshot.json")) as handle:
        text = handle.read()
    copy = emulator(json.loads(text))
    # Whatever the copy still has to evaluate (dynamic rules on the attributes the snapshot kept, group licensing)
    # must not change it: the comparison is made once both have finished.
    original.process_all()
    copy.process_all()
    before = original.directory.export()
    after = copy.directory.export()
    assert not after["apps"][0]["clientId"] in text  # the copy made its own app; the snapshot holds none
    assert "apps" not in json.loads(text)

    # The same licensing state, user by user (ids are kept by default).
    users_after = dict((user["id"], user) for user in after["users"])
    assert sorted(users_after) == sorted(user["id"] for user in before["users"])
    for user in before["users"]:
        assert comparable_user(users_after[user["id"]]) == comparable_user(user), user["userPrincipalName"]
    # The same groups: kind, licenses, members (nesting included), processing state.
    groups_after = dict((group["id"], group) for group in after["groups"])
    for group in before["groups"]:
        assert comparable_group(groups_after[group["id"]]) == comparable_group(group), group["displayName"]
    assert sorted(tuple(g["groupTypes"]) for g in after["groups"]) == sorted(tuple(g["groupTypes"]) for g in before["groups"])
    assert copy.loss_ledger() == []
    sku_ids = sorted(sku["skuId"] for sku in before["subscribedSkus"] if sku["skuPartNumber"] in ("ENTERPRISEPACK", "EMS", "MCOMEETADV"))
    for sku in before["subscribedSkus"]:
        copied = next(s for s in after["subscribedSkus"] if s["skuId"] == sku["skuId"])
        assert copied["prepaidUnits"] == sku["prepaidUnits"] and copied["servicePlans"] == sku["servicePlans"]

    # The same verdicts from license_assignment_info; names replaced by pseudonyms that the mapping maps back.
    with open(str(tmp_path / "mapping.json")) as handle:
        mapping = json.load(handle)["pseudonyms"]
    upns = dict((user["id"], user["userPrincipalName"]) for user in before["users"])
    records_before = dict(((r["user_id"], r["sku_id"]), r) for r in verdicts(original, sku_ids))
    records_after = dict(((r["user_id"], r["sku_id"]), r) for r in verdicts(copy, sku_ids))
    assert sorted(records_after) == sorted(records_before)
    assert set(r["verdict"] for r in records_before.values()) >= {"safe_to_remove", "direct_only", "not_direct_member"}, records_before
    assert any(entry["error"] == "CountViolation" for user in before["users"] for entry in user["groupLicenses"])
    for pair, record in records_before.items():
        copied = records_after[pair]
        for field in ("verdict", "plans_lost", "errors", "direct", "inherited_from", "healthy_inherited_from", "usage_location"):
            assert copied[field] == record[field], (field, record["user_principal_name"])
        assert copied["user_principal_name"] != record["user_principal_name"]
        assert mapping[copied["user_principal_name"]] == record["user_principal_name"]
    for user in before["users"]:
        assert user["userPrincipalName"] not in text and user["userPrincipalName"].split("@")[0] not in text
        assert users_after[user["id"]]["displayName"] != user["displayName"]
        for name in ("displayName", "givenName", "surname", "mail", "mailNickname", "onPremisesSamAccountName", "employeeId"):
            if user.get(name):
                assert json.dumps(user[name]) not in text, (name, user[name])
        assert mapping[users_after[user["id"]]["displayName"]] == user["displayName"]
    for group in before["groups"]:
        assert group["displayName"] not in text
        assert mapping[groups_after[group["id"]]["displayName"]] == group["displayName"]
    assert before["tenant"]["defaultDomain"] not in text
    assert set(upns.values()) <= set(mapping.values())


def test_ids_remapped_consistently_and_mapped_back(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=60))
    before = original.directory.export()
    result, failed = snapshot(original, tmp_path, remap_ids=True, groups=["All users"], mapping_path=str(tmp_path / "mapping.json"))
    assert not failed, result.get("msg")
    with open(str(tmp_path / "snapshot.json")) as handle:
        text = handle.read()
    with open(str(tmp_path / "mapping.json")) as handle:
        mapping = json.load(handle)["pseudonyms"]
    copy = emulator(json.loads(text))
    after = copy.directory.export()
    for user in before["users"]:
        assert user["id"] not in text
    back = dict((mapping[user["id"]], user) for user in after["users"])
    assert sorted(back) == sorted(user["id"] for user in before["users"])
    groups_back = dict((mapping[group["id"]], group) for group in after["groups"])
    for group in before["groups"]:
        copied = groups_back[group["id"]]
        assert sorted(mapping[member] for member in copied["members"]) == sorted(group["members"])
        assert copied["assignedLicenses"] == group["assignedLicenses"]
    for user in before["users"]:
        copied = back[user["id"]]
        assert sorted((mapping[e["groupId"]], e["state"], e["error"]) for e in copied["groupLicenses"]) == sorted(
            (e["groupId"], e["state"], e["error"]) for e in user["groupLicenses"]
        )
    # Named by display name: the name the migration's variables use is kept; the others are pseudonyms.
    names = sorted(group["displayName"] for group in after["groups"])
    assert "All users" in names and "GBL - EMS" not in names


def test_snapshot_stays_within_the_read_budget(emulator, tmp_path):
    # Pages of 999 exactly (ENTRAOPS_STRICT_EMULATOR's short and empty pages would only count the emulator's choice).
    original = emulator(licensed_tenant("default", users=3000), short_pages=False, empty_pages=False)
    original.clear_request_log()
    result, failed = snapshot(original, tmp_path)
    assert not failed, result.get("msg")
    assert result["users"] == 3000
    log = [entry for entry in original.request_log() if entry["path"].startswith("/v1.0/")]
    # organization, subscribedSkus, one groups page, one $batch of member pages (with its items), 4 pages of users
    assert len(log) / 3000.0 < 0.01, len(log)
    assert not [entry for entry in log if entry["path"].startswith("/v1.0/users/")], "no per-user read"
    assert not any(entry["write"] for entry in log)
    assert result["graph_requests"]["requests"] <= 10


def test_files_are_private_even_over_a_readable_file(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=30))
    target, mapping = tmp_path / "snapshot.json", tmp_path / "mapping.json"
    target.write_text("old")
    os.chmod(str(target), 0o644)
    previous = os.umask(0o022)
    try:
        result, failed = snapshot(original, tmp_path, mapping_path=str(mapping))
    finally:
        os.umask(previous)
    assert not failed, result.get("msg")
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(mapping)).st_mode) == 0o600
    assert sorted(os.listdir(str(tmp_path))) == ["mapping.json", "snapshot.json"]  # no temporary file left


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pseudonym_key": None}, "no key is given"),
        ({"pseudonym_key": "short"}, "at least 16"),
        ({"pseudonym_key": None, "pseudonym_key_path": "/nonexistent/key"}, "'/nonexistent/key' cannot be read"),
        ({"groups": ["No such group"]}, "'No such group' name no group"),
        ({"skus": ["NOT_A_SKU"]}, "NOT_A_SKU"),
        ({"pseudonymize": False, "mapping_path": "/tmp/never.json"}, "mapping_path is set but pseudonymize is false"),
        ({"mapping_path": "/nonexistent/folder/map.json"}, "'/nonexistent/folder/map.json' is not in an existing directory"),
        ({"groups": ["  "]}, "'  ' names no group"),
    ],
)
def test_bad_options_fail_before_anything_is_written(emulator, tmp_path, options, message):
    original = emulator(licensed_tenant("seed", users=20))
    args = dict(emulator_connection(original), path=str(tmp_path / "snapshot.json"), pseudonym_key=KEY)
    args.update(options)
    args = dict((key, value) for key, value in args.items() if value is not None)
    result, failed = run_module(tenant_snapshot.main, args)
    assert failed and message in result["msg"], result["msg"]
    assert os.listdir(str(tmp_path)) == []
    assert KEY not in json.dumps(result)


def test_check_mode_reads_and_writes_nothing(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=20))
    result, failed = snapshot(original, tmp_path, _ansible_check_mode=True, mapping_path=str(tmp_path / "m.json"))
    assert not failed and result["changed"] is False
    assert result["users"] == 20 and result["bytes"] > 0
    assert os.listdir(str(tmp_path)) == []


def test_without_pseudonyms_names_are_copied(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=20))
    before = original.directory.export()
    result, failed = snapshot(original, tmp_path, pseudonymize=False)
    assert not failed and result["pseudonymized"] is False
    with open(str(tmp_path / "snapshot.json")) as handle:
        doc = json.load(handle)
    assert sorted(u["userPrincipalName"] for u in doc["users"]) == sorted(u["userPrincipalName"] for u in before["users"])
    assert doc["tenant"]["defaultDomain"] == before["tenant"]["defaultDomain"]


def test_skus_limit_the_users_and_keep_the_free_units(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=80))
    before = original.directory.export()
    result, failed = snapshot(original, tmp_path, skus=["EMS"])
    assert not failed, result.get("msg")
    with open(str(tmp_path / "snapshot.json")) as handle:
        doc = json.load(handle)
    members = set()
    for group in before["groups"]:
        if group["assignedLicenses"]:
            members.update(group["members"])
    assert set(user["id"] for user in doc["users"]) == members & set(user["id"] for user in before["users"])
    assert result["users"] < len(before["users"])
    copy = emulator(doc)
    e3 = _sku(before, "ENTERPRISEPACK")["skuId"]

    def free(emu):
        sku = next(s for s in emu.directory.export()["subscribedSkus"] if s["skuId"] == e3)
        holders = sum(
            1
            for user in emu.directory.export()["users"]
            if any(lic["skuId"] == e3 for lic in user["directLicenses"])
            or any(lic["skuId"] == e3 for entry in user["groupLicenses"] if entry["state"] == "Active" for lic in entry["licenses"])
        )
        return sku["prepaidUnits"]["enabled"] - holders

    assert free(copy) == free(original)


def test_all_users_takes_the_unlicensed_too(emulator, tmp_path):
    doc = licensed_tenant("seed", users=20)
    doc["users"].append({"id": "5f0c0a4e-8d7b-4d51-9a4f-0000000000aa", "userPrincipalName": "nolicense@contoso.onmicrosoft.com"})
    original = emulator(doc)
    result, failed = snapshot(original, tmp_path)
    assert not failed and result["users"] == 20
    result, failed = snapshot(original, tmp_path, all_users=True)
    assert not failed and result["users"] == 21


@pytest.mark.parametrize("by_batch_up_to", [2000, 0])
def test_members_outside_the_chosen_skus_are_read_either_way(emulator, tmp_path, monkeypatch, by_batch_up_to):
    from ansible_collections.entraops.licensing.plugins.module_utils import snapshot_run  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(snapshot_run, "MISSING_MEMBERS_BY_BATCH", by_batch_up_to)
    original = emulator(licensed_tenant("seed", users=80))
    original.clear_request_log()
    result, failed = snapshot(original, tmp_path, skus=["MCOMEETADV"])
    assert not failed, result.get("msg")
    assert result["members_left_out"] == 0
    per_user = [entry for entry in original.request_log() if entry["path"].startswith("/v1.0/users/")]
    # a few members by $batch item, or one more paged pass over /users: never both
    assert bool(per_user) == (by_batch_up_to > 0)


def test_a_name_several_groups_carry_fails(emulator, tmp_path):
    doc = licensed_tenant("seed", users=20)
    doc["groups"].append({"id": "5f0c0a4e-8d7b-4d51-9a4f-0000000000bb", "displayName": "GBL - EMS"})
    original = emulator(doc)
    result, failed = snapshot(original, tmp_path, groups=["gbl - ems"])
    assert failed and "names more than one group" in result["msg"] and "5f0c0a4e-8d7b-4d51-9a4f-0000000000bb" in result["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_mapping_is_never_the_snapshot_itself(emulator, tmp_path):
    original = emulator(licensed_tenant("seed", users=5))
    result, failed = snapshot(original, tmp_path, mapping_path=str(tmp_path / "snapshot.json"))
    assert failed and "expected a separate file" in result["msg"]
    assert os.listdir(str(tmp_path)) == []
