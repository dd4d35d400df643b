# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""sku_info run in-process against the Graph emulator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import pytest

from ansible_collections.entraops.licensing.plugins.modules import sku_info

from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection, run_module

CREDENTIAL_VARIABLES = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "GRAPH_ACCESS_TOKEN",
    "AZURE_CLOUD",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def fixture_skus(emulator):
    """The tenant's SKUs as loaded into the emulator, by lower-case GUID."""
    return dict((sku["skuId"].lower(), sku) for sku in emulator.export_state()["subscribedSkus"])


def consumed_units(client):
    """Units in use per SKU, counted from the users' assignedLicenses (one unit per user per SKU)."""
    counts = {}
    for user in client.get_all("/users", params={"$select": "id,assignedLicenses", "$top": 999}):
        for sku_id in set(license["skuId"].lower() for license in user.get("assignedLicenses") or []):
            counts[sku_id] = counts.get(sku_id, 0) + 1
    return counts


def test_every_sku_with_units_and_plans(emulator, client):
    result, failed = run_module(sku_info.main, emulator_connection(emulator))
    assert not failed, result.get("msg")
    assert result["changed"] is False
    expected = fixture_skus(emulator)
    consumed = consumed_units(client)
    returned = result["skus"]
    assert sorted(record["sku_id"] for record in returned) == sorted(expected)
    assert [record["sku_part_number"] for record in returned] == sorted(record["sku_part_number"] for record in returned)
    for record in returned:
        raw = expected[record["sku_id"]]
        assert record["sku_part_number"] == raw["skuPartNumber"]
        assert record["enabled"] == raw["prepaidUnits"]["enabled"]
        assert record["consumed"] == consumed.get(record["sku_id"], 0)
        assert record["available"] == record["enabled"] - record["consumed"]
        assert record["capability_status"] == raw["capabilityStatus"]
        assert [plan["service_plan_id"] for plan in record["service_plans"]] == [plan["servicePlanId"].lower() for plan in raw["servicePlans"]]
        assert record["user_service_plan_names"] == sorted(plan["servicePlanName"] for plan in raw["servicePlans"] if plan["appliesTo"] == "User")
    assert any(record["consumed"] for record in returned)  # the fixture tenant really assigns licenses


def test_filter_by_part_number_and_guid_keeps_the_given_order(emulator):
    expected = sorted(fixture_skus(emulator).values(), key=lambda sku: sku["skuPartNumber"])
    first, second = expected[-1], expected[0]
    args = emulator_connection(emulator, skus=[first["skuPartNumber"].lower(), second["skuId"].upper(), first["skuId"]])
    result, failed = run_module(sku_info.main, args)
    assert not failed, result.get("msg")
    assert [record["sku_part_number"] for record in result["skus"]] == [first["skuPartNumber"], second["skuPartNumber"]]


def test_unknown_part_number_fails_naming_it(emulator):
    emulator.reset_stats()
    args = emulator_connection(emulator, skus=["ENTERPRISEPACK_TYPO", "00000000-0000-0000-0000-000000000000"])
    result, failed = run_module(sku_info.main, args)
    assert failed
    assert result["msg"].startswith("'ENTERPRISEPACK_TYPO', '00000000-0000-0000-0000-000000000000': no subscribed SKU has these")
    for part_number in (sku["skuPartNumber"] for sku in fixture_skus(emulator).values()):
        assert part_number in result["msg"]
    graph_requests = [entry for entry in emulator.request_log() if entry["path"].startswith("/v1.0/")]
    assert graph_requests and all(entry["method"] == "GET" for entry in graph_requests)


def test_check_mode_gives_the_same_answer(emulator):
    normal, dummy = run_module(sku_info.main, emulator_connection(emulator))
    checked, failed = run_module(sku_info.main, dict(emulator_connection(emulator), _ansible_check_mode=True))
    assert not failed
    assert checked["changed"] is False
    assert checked["skus"] == normal["skus"]


def test_connection_from_environment(emulator, monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", emulator.client_secret)
    args = dict(graph_url=emulator.base_url, authority_url=emulator.authority_url, ca_bundle=emulator.ca_path)
    result, failed = run_module(sku_info.main, args)
    assert not failed, result.get("msg")
    assert result["skus"]


def test_explicit_credential_wins_over_environment(emulator, monkeypatch):
    monkeypatch.setenv("GRAPH_ACCESS_TOKEN", "not-a-valid-token")
    result, failed = run_module(sku_info.main, emulator_connection(emulator))
    assert not failed, result.get("msg")


def test_access_token(emulator):
    args = dict(access_token=emulator.issue_token(), graph_url=emulator.base_url, ca_bundle=emulator.ca_path)
    result, failed = run_module(sku_info.main, args)
    assert not failed, result.get("msg")
    assert result["skus"]


def test_no_credentials_fails_clearly(emulator):
    result, failed = run_module(sku_info.main, dict(graph_url=emulator.base_url, tenant_id=emulator.tenant_id))
    assert failed
    assert result["msg"].startswith("No Graph credentials: set one of client_secret, client_certificate_path or access_token")


def test_secret_without_client_id_fails_clearly(emulator):
    result, failed = run_module(sku_info.main, dict(tenant_id=emulator.tenant_id, client_secret="x"))
    assert failed
    assert result["msg"] == "client_id (or AZURE_CLIENT_ID) is required with client_secret"


def test_two_credentials_are_refused(emulator):
    result, failed = run_module(sku_info.main, dict(emulator_connection(emulator), access_token="abc"))
    assert failed
    assert "mutually exclusive" in result["msg"]


def test_missing_permission_is_reported_without_traceback(emulator):
    app = emulator.add_app(permissions=["User.Read.All"], secret="sku-info-reader-secret")
    result, failed = run_module(sku_info.main, emulator_connection(emulator, client_id=app["clientId"], client_secret="sku-info-reader-secret"))
    assert failed
    assert result["msg"].startswith(
        "Cannot read the subscribed SKUs: Graph returned 403 Authorization_RequestDenied "
        "for GET /v1.0/subscribedSkus: Insufficient privileges to complete the operation. (request-id "
    )
    assert result["graph_error"]["status"] == 403 and result["graph_error"]["request_id"]
    assert "exception" not in result
    assert "sku-info-reader-secret" not in repr(result)


def test_plain_http_graph_url_is_refused(emulator):
    result, failed = run_module(sku_info.main, emulator_connection(emulator, graph_url="http://graph.example.com"))
    assert failed
    assert "Refusing to send an access token over plain http:// to graph.example.com" in result["msg"]


def test_granted_and_missing_permissions_from_the_token_never_the_token(emulator, capsys):
    app = emulator.add_app(permissions=["Organization.Read.All", "User.Read.All", "Group.Create"], secret="perm-reader-secret")
    result, failed = run_module(
        sku_info.main, emulator_connection(emulator, client_id=app["clientId"], client_secret="perm-reader-secret", permissions_for=["read", "group", "assign"])
    )
    assert not failed, result.get("msg")
    assert result["granted_permissions"] == ["Group.Create", "Organization.Read.All", "User.Read.All"]
    assert result["permissions_known"] is True
    assert [(need["operation"], need["permission"]) for need in result["missing_permissions"]] == [
        ("read", "GroupMember.Read.All"),
        ("group", "GroupMember.ReadWrite.All"),
        ("assign", "LicenseAssignment.ReadWrite.All"),
    ]
    captured = capsys.readouterr()
    for text in (repr(result), captured.out, captured.err):
        assert not re.search(r"eyJ[A-Za-z0-9_-]+\.eyJ", text) and "perm-reader-secret" not in text  # no JWT, no secret
