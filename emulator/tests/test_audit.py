"""The directory audit log over HTTPS (issue 16): license activities, actors, filters, paging, retention, limit."""

import re
from urllib.parse import quote

import pytest

from conftest import Graph
from graph_emulator import Emulator
from test_engine import E3, EMS, group_doc, gid, make_tenant, uid, user_doc

AUDIT_PERMISSIONS = ["AuditLog.Read.All", "Directory.Read.All"]
FINISH = "Finish applying group based license to users"
START = "Start applying group based license to users"


@pytest.fixture()
def small():
    """Three members, two E3 units: group processing assigns two users and fails one (CountViolation)."""
    tenant = make_tenant(
        [user_doc(n) for n in (1, 2, 3)] + [user_doc(4, direct=[(EMS, [])])], [group_doc(1, [uid(1), uid(2), uid(3)])], units={"ENTERPRISEPACK": 2}
    )
    with Emulator(tenant=tenant) as emulator:
        yield emulator


def reader(emu):
    return Graph(emu, emu.issue_token(permissions=AUDIT_PERMISSIONS))


def audits(graph, query=""):
    items, _ = graph.list_all("auditLogs/directoryAudits" + query)
    return items


def license_group(emu):
    writer = Graph(emu, emu.issue_token())
    response = writer.post(f"groups/{gid(1)}/assignLicense", {"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []})
    assert response.status_code == 202, response.text
    emu.directory.process_all()
    return writer


def test_group_license_events_carry_the_finish_counts_and_the_writer(small):
    license_group(small)
    events = audits(reader(small))
    names = [e["activityDisplayName"] for e in events]
    assert names[0] == "Set group license"
    assert names.index(START) < names.index(FINISH)
    set_license = events[0]
    assert set_license["initiatedBy"]["app"]["appId"] == small.client_id
    assert set_license["category"] == "GroupManagement" and set_license["targetResources"][0]["id"] == gid(1)
    assert "ENTERPRISEPACK" in set_license["targetResources"][0]["modifiedProperties"][0]["newValue"]
    finish = events[names.index(FINISH)]
    assert finish["initiatedBy"]["app"]["displayName"] == "Microsoft Azure AD Group-Based Licensing"
    result = finish["targetResources"][0]["modifiedProperties"][0]
    assert result["displayName"] == "Result"
    assert result["newValue"] == "[Users successfully assigned licenses: 2, Users for whom license assignment failed: 1.];"
    changes = [e for e in events if e["activityDisplayName"] == "Change user license"]
    # the failed user changes too (an Error entry); every change is group licensing's
    assert {e["targetResources"][0]["id"] for e in changes} == {uid(1), uid(2), uid(3)}
    assert {e["initiatedBy"]["app"]["displayName"] for e in changes} == {"Microsoft Azure AD Group-Based Licensing"}


def test_the_actor_spelling_is_a_knob_and_applies_to_later_events(small):
    small.configure(audit_actor="entra")
    assert small.config()["audit_actor"] == "entra"
    license_group(small)
    finish = [e for e in audits(reader(small)) if e["activityDisplayName"] == FINISH]
    assert finish[0]["initiatedBy"]["app"]["displayName"] == "Microsoft Entra group-Based Licensing"
    with pytest.raises(ValueError, match="audit_actor: got 'azure'"):
        small.configure(audit_actor="azure")
    # the knob outlives loading another tenant
    small.directory.load(make_tenant([user_doc(1)], [group_doc(1, [uid(1)])]))
    assert small.config()["audit_actor"] == "entra"


def test_direct_writes_log_change_user_license_as_the_calling_app(small):
    writer = Graph(small, small.issue_token())
    assert writer.post(f"users/{uid(4)}/assignLicense", {"addLicenses": [], "removeLicenses": [EMS]}).status_code == 200
    change = [e for e in audits(reader(small)) if e["activityDisplayName"] == "Change user license"]
    assert len(change) == 1
    assert change[0]["initiatedBy"]["app"]["appId"] == small.client_id
    assert change[0]["targetResources"][0]["userPrincipalName"] == "user4@contoso.com"


def test_filters_on_name_time_target_and_initiator(small):
    license_group(small)
    graph = reader(small)
    every = audits(graph)
    by_name = audits(graph, f"?$filter=activityDisplayName eq '{FINISH}'")
    assert [e["activityDisplayName"] for e in by_name] == [FINISH]
    starts = audits(graph, "?$filter=startswith(activityDisplayName,'Start applying')")
    assert [e["activityDisplayName"] for e in starts] == [START]
    target = audits(graph, f"?$filter=targetResources/any(t:t/id eq '{uid(2)}')")
    assert target and {e["targetResources"][0]["id"] for e in target} == {uid(2)}
    mine = audits(graph, f"?$filter=initiatedBy/app/appId eq '{small.client_id}'")
    assert [e["activityDisplayName"] for e in mine] == ["Set group license"]
    last = every[-1]["activityDateTime"]
    later = audits(graph, "?$filter=" + quote(f"activityDateTime ge {last}"))
    assert later and all(e["activityDateTime"] >= last for e in later)
    assert audits(graph, "?$filter=" + quote("activityDateTime ge 2999-01-01T00:00:00Z")) == []
    combined = audits(graph, "?$filter=" + quote(f"activityDisplayName eq 'Change user license' and activityDateTime le {last}"))
    assert len(combined) == 3
    refused = graph.get("auditLogs/directoryAudits?$filter=activityDisplayName ne 'x'")
    assert refused.status_code == 400


def test_pages_follow_next_links_in_order(small):
    license_group(small)
    graph = reader(small)
    every = audits(graph)
    paged, pages = graph.list_all("auditLogs/directoryAudits?$top=2")
    assert pages == -(-len(every) // 2) and pages >= 3
    assert [e["id"] for e in paged] == [e["id"] for e in every]
    newest_first = audits(graph, "?$orderby=activityDateTime desc")
    assert [e["id"] for e in newest_first] == [e["id"] for e in reversed(every)]


def test_retention_answers_only_the_events_still_kept(small):
    license_group(small)
    graph = reader(small)
    assert audits(graph)
    small.configure(audit_retention_days=0)
    # a window starting before the retention is answered with what is kept (nothing here), not an error
    response = graph.get("auditLogs/directoryAudits?$filter=" + quote("activityDateTime ge 2020-01-01T00:00:00Z"))
    assert response.status_code == 200 and response.json()["value"] == []
    small.configure(audit_retention_days=30)
    assert audits(graph)
    with pytest.raises(ValueError, match="audit_retention_days"):
        small.configure(audit_retention_days=-1)


def test_six_requests_in_ten_seconds_get_429_with_retry_after(small):
    small.configure(throttling=True)
    graph = reader(small)
    answers = [graph.get("auditLogs/directoryAudits?$top=1") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    refused = answers[-1]
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 10
    assert refused.json()["error"]["code"] == "TooManyRequests"
    assert re.match(r"Tenant_Application/Read/", refused.headers["x-ms-throttle-scope"])
    # the audit budget is its own: other reads of the same app still pass
    assert graph.get("users?$top=1").status_code == 200
