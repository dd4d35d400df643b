# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Token claims decoding (no HTTP) and the permission needs of each operation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphClient, token_claims
from ansible_collections.entraops.licensing.plugins.module_utils.permissions import OPERATIONS, missing_permissions


def jwt(claims, pad=False):
    def part(value):
        text = base64.urlsafe_b64encode(json.dumps(value).encode("utf-8")).decode("ascii")
        return text if pad else text.rstrip("=")

    return "%s.%s.%s" % (part({"alg": "RS256", "typ": "JWT"}), part(claims), "c2lnbmF0dXJl")


@pytest.mark.parametrize("pad", [False, True])
def test_claims_of_a_jwt_with_or_without_base64_padding(pad):
    claims = {"roles": ["User.Read.All", "Group.Create"], "aud": "https://graph.microsoft.com", "x": "é?>"}
    assert token_claims(jwt(claims, pad=pad)) == claims


@pytest.mark.parametrize(
    "token",
    [
        "",
        "opaque-token",
        "a.b",
        "a.!!!.c",
        "a..c",
        "a.%s.c" % base64.urlsafe_b64encode(b"[1]").decode(),
        "a.%s.c" % base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        None,
        42,
    ],
)
def test_anything_else_has_no_claims(token):
    assert token_claims(token) is None


def client_with(token):
    return GraphClient(access_token=token, graph_url="https://127.0.0.1:1", authority_url="https://127.0.0.1:1")


def test_granted_permissions_from_the_roles_claim_sorted_and_unique():
    client = client_with(jwt({"roles": ["User.Read.All", "LicenseAssignment.ReadWrite.All", "User.Read.All"]}))
    assert client.granted_permissions() == ["LicenseAssignment.ReadWrite.All", "User.Read.All"]


@pytest.mark.parametrize("token", ["opaque-token-abc", jwt({"scp": "User.Read"}), jwt({"roles": "User.Read.All"})])
def test_granted_permissions_unknown_without_a_roles_list(token):
    assert client_with(token).granted_permissions() is None


def test_read_needs_are_met_by_the_documented_higher_permissions():
    assert missing_permissions(["Directory.Read.All"], ["read"]) == []
    assert missing_permissions(["directory.readwrite.all"], OPERATIONS) == []  # Entra compares names without case


def test_missing_needs_name_the_permission_and_what_would_do():
    missing = missing_permissions(["User.Read.All", "Organization.Read.All", "Group.Create"], ["read", "group", "remove"])
    assert [(need["operation"], need["permission"]) for need in missing] == [
        ("read", "GroupMember.Read.All"),
        ("group", "GroupMember.ReadWrite.All"),
        ("remove", "LicenseAssignment.ReadWrite.All"),
    ]
    assert "GroupMember.ReadWrite.All" in missing[0]["accepted"] and "Group.ReadWrite.All" in missing[1]["accepted"]


def test_group_creation_accepts_group_readwrite_instead_of_group_create():
    granted = ["User.Read.All", "GroupMember.Read.All", "Organization.Read.All", "Group.ReadWrite.All", "LicenseAssignment.ReadWrite.All"]
    assert missing_permissions(granted, ["read", "group", "assign", "remove"]) == []
    assert [need["permission"] for need in missing_permissions(granted, ["restore"])] == ["User.ReadWrite.All"]


def test_unknown_operation_is_named():
    with pytest.raises(ValueError, match="'delete' is not an operation"):
        missing_permissions([], ["delete"])
