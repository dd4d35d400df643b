# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""audit_log: the window, the queries and the classification of directoryAudit events (no HTTP)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import audit_log
from ansible_collections.entraops.licensing.plugins.module_utils.audit_log import AuditInputError

NOW = datetime.datetime(2026, 3, 10, 12, 0, 0)
OWN = "11111111-1111-4111-8111-111111111111"
LEGACY = "22222222-2222-4222-8222-222222222222"
GROUP = "33333333-3333-4333-8333-333333333333"
USER = "44444444-4444-4444-8444-444444444444"


def event(name, when, target, app_id=None, app_name=None, user=None, modified=()):
    initiated = {"app": None, "user": user} if user else {"app": {"appId": app_id, "displayName": app_name}, "user": None}
    return {
        "id": "Directory_%s_%s" % (name, when),
        "activityDisplayName": name,
        "activityDateTime": when,
        "result": "success",
        "initiatedBy": initiated,
        "targetResources": [dict(target, modifiedProperties=[{"displayName": n, "oldValue": o, "newValue": v} for n, o, v in modified])],
    }


GROUP_TARGET = {"id": GROUP, "displayName": "lic-e3", "type": "Group"}
USER_TARGET = {"id": USER, "displayName": "Adele", "userPrincipalName": "adele@contoso.com", "type": "User"}


def test_parse_moment_takes_iso_times_offsets_and_durations():
    assert audit_log.parse_moment("2026-03-01T08:00:00Z", "since", NOW) == datetime.datetime(2026, 3, 1, 8)
    assert audit_log.parse_moment("2026-03-01T09:00:00+01:00", "since", NOW) == datetime.datetime(2026, 3, 1, 8)
    assert audit_log.parse_moment("24h", "since", NOW) == datetime.datetime(2026, 3, 9, 12)
    assert audit_log.parse_moment("90m", "since", NOW) == datetime.datetime(2026, 3, 10, 10, 30)
    with pytest.raises(AuditInputError, match=r"since: got 'yesterday', expected an ISO 8601"):
        audit_log.parse_moment("yesterday", "since", NOW)


def test_window_inside_the_retention_is_complete():
    window = audit_log.time_window("7d", None, NOW)
    assert window == {
        "since": "2026-03-03T12:00:00Z",
        "until": "2026-03-10T12:00:00Z",
        "retention_days": 30,
        "kept_from": "2026-02-08T12:00:00Z",
        "complete": True,
        "open_end": True,
    }


def test_window_before_the_retention_says_what_is_gone():
    window = audit_log.time_window("45d", "2026-03-05T00:00:00Z", NOW, retention_days=30)
    assert window["complete"] is False
    assert "keeps 30 days (from 2026-02-08T12:00:00Z)" in window["message"]
    with pytest.raises(AuditInputError, match="expected a time before until"):
        audit_log.time_window("2026-03-05T00:00:00Z", "2026-03-04T00:00:00Z", NOW)


def test_queries_one_per_activity_and_a_single_target_server_side():
    window = audit_log.time_window("1d", "2026-03-10T12:00:00Z", NOW)
    both = audit_log.audit_queries(window, None, None, True, True)
    assert len(both) == 4
    assert all("activityDateTime ge 2026-03-09T12:00:00Z and activityDateTime le 2026-03-10T12:00:00Z" in q for q in both)
    assert both[0].startswith("activityDisplayName eq 'Set group license'")
    one_group = audit_log.audit_queries(window, [GROUP], None, True, False)
    assert len(one_group) == 3 and all(q.endswith("targetResources/any(t:t/id eq '%s')" % GROUP) for q in one_group)
    users_only = audit_log.audit_queries(window, None, [USER, "x"], False, True)
    assert users_only == [
        "activityDisplayName eq 'Change user license' and " + "activityDateTime ge 2026-03-09T12:00:00Z and activityDateTime le 2026-03-10T12:00:00Z"
    ]


def test_finish_result_counts():
    assert audit_log.parse_finish_result("[Users successfully assigned licenses: 6, Users for whom license assignment failed: 0.];") == (6, 0)
    assert audit_log.parse_finish_result("[Users successfully assigned licenses: 1200, Users for whom license assignment failed: 3.];") == (1200, 3)
    assert audit_log.parse_finish_result("something else") is None
    assert audit_log.parse_finish_result(None) is None


@pytest.mark.parametrize("name", ["Microsoft Azure AD Group-Based Licensing", "Microsoft Entra group-Based Licensing", "MICROSOFT ENTRA GROUP-BASED LICENSING"])
def test_both_spellings_of_group_licensing(name):
    writer = audit_log.writer_of(event("Change user license", "t", USER_TARGET, None, name), [OWN])
    assert writer["kind"] == "group_licensing"


def test_writers_this_collection_other_app_and_user_principal():
    own = audit_log.writer_of(event("Change user license", "t", USER_TARGET, OWN.upper(), "entraops"), [OWN])
    assert own["kind"] == "this_collection"
    legacy = audit_log.writer_of(event("Change user license", "t", USER_TARGET, LEGACY, "Legacy licensing script"), [OWN])
    assert legacy == {"kind": "other", "app_id": LEGACY, "display_name": "Legacy licensing script", "user_id": None, "user_principal_name": None}
    admin = audit_log.writer_of(event("Change user license", "t", USER_TARGET, user={"id": "u1", "userPrincipalName": "admin@contoso.com"}), [OWN])
    assert admin["kind"] == "other" and admin["user_principal_name"] == "admin@contoso.com"


def test_summarise_groups_and_users():
    events = [
        event(
            "Finish applying group based license to users",
            "2026-03-10T10:02:00Z",
            GROUP_TARGET,
            None,
            "Microsoft Entra group-Based Licensing",
            modified=[("Result", "", "[Users successfully assigned licenses: 6, Users for whom license assignment failed: 1.];")],
        ),
        event("Set group license", "2026-03-10T10:00:00Z", GROUP_TARGET, OWN, "entraops", modified=[("AssignedLicense", "[]", '["E3"]')]),
        event("Start applying group based license to users", "2026-03-10T10:01:00Z", GROUP_TARGET, None, "Microsoft Azure AD Group-Based Licensing"),
        event("Change user license", "2026-03-10T10:01:30Z", USER_TARGET, None, "Microsoft Azure AD Group-Based Licensing"),
        event("Change user license", "2026-03-10T10:05:00Z", USER_TARGET, OWN, "entraops"),
        event("Change user license", "2026-03-10T10:09:00Z", USER_TARGET, LEGACY, "Legacy licensing script"),
        event("Change user license", "2026-03-10T10:19:00Z", USER_TARGET, LEGACY, "Legacy licensing script"),
        event("Change user license", "2026-03-10T10:19:00Z", {"id": "other-user"}, LEGACY, "Legacy licensing script"),
    ]
    result = audit_log.summarise(events, groups=["lic-e3"], users=["ADELE@contoso.com"], own_app_ids=[OWN])
    (group,) = result["groups"]
    assert [p["activity"] for p in group["processing"]] == ["start", "finish"]
    assert group["last_finish"]["users_assigned"] == 6 and group["last_finish"]["users_failed"] == 1
    assert group["set_group_license"][0]["new_value"] == '["E3"]'
    assert group["set_group_license"][0]["initiated_by"]["kind"] == "this_collection"
    (user,) = result["users"]
    assert user["by_writer"] == {"group_licensing": 1, "this_collection": 1, "other": 2}
    assert user["other_writers"] == [{"app_id": LEGACY, "display_name": "Legacy licensing script", "user_id": None, "user_principal_name": None}]
    assert result["other_writers"] == [
        {"app_id": LEGACY, "display_name": "Legacy licensing script", "user_id": None, "user_principal_name": None, "users": 1, "events": 2}
    ]
    assert result["totals"]["finish_events"] == 1 and result["totals"]["users_failed"] == 1
    assert result["finish_events"] == [
        {
            "group_id": GROUP,
            "group": "lic-e3",
            "time": "2026-03-10T10:02:00Z",
            "users_assigned": 6,
            "users_failed": 1,
            "actor": "Microsoft Entra group-Based Licensing",
        }
    ]
    assert audit_log.finish_after(group, "2026-03-10T10:02:00Z") == [group["last_finish"]]
    assert audit_log.finish_after(group, "2026-03-10T10:02:01Z") == []


def test_summarise_lists_targets_asked_for_without_events():
    result = audit_log.summarise([], groups=[GROUP, "lic-ems"], users=[USER])
    assert sorted((g["id"], g["display_name"]) for g in result["groups"]) == [("", "lic-ems"), (GROUP, None)]
    assert result["users"][0]["id"] == USER and result["users"][0]["changes"] == []
    everything = audit_log.summarise([event("Change user license", "t", USER_TARGET, LEGACY, "x")])
    assert [u["id"] for u in everything["users"]] == [USER]
