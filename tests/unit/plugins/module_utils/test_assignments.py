# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Bulk reads for classification, against the Graph emulator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import assignments, directory
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphClient
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError

from ..modules.migration_tenant import E3, GROUPS, SAFE_USERS, build_tenant, connection
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS


@pytest.fixture(scope="module")
def setup():
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    tenant, roles = build_tenant(extra_safe=1000)
    with Emulator(tenant=copy.deepcopy(tenant), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu, roles


@pytest.fixture
def emu(setup):
    setup[0].configure(**STRICT_KNOBS)
    setup[0].reset_stats()
    return setup[0]


@pytest.fixture
def roles(setup):
    return setup[1]


@pytest.fixture
def client(emu):
    options = connection(emu)
    options["max_retry_time"] = 20
    graph = GraphClient(**options)
    yield graph
    graph.close()


def test_memberships_come_from_group_member_lists(emu, roles, client):
    index = assignments.MembershipIndex(client).load_licensed_groups()
    assert set(index.groups) == set([GROUPS["e3_all"], GROUPS["e3_no_sway"], GROUPS["e3_no_yammer"], GROUPS["e3_ems"], GROUPS["e1_e3"]])
    assert index.direct_of(roles["two_groups"]) == frozenset([GROUPS["e3_no_sway"], GROUPS["e3_no_yammer"]])
    assert index.direct_of(roles["nested"]) == frozenset()
    assert index.transitive_of(roles["nested"]) == frozenset([GROUPS["e3_all"]])
    paths = [entry["path"] for entry in emu.request_log() if entry["path"].startswith("/v1.0/")]
    # one listing of groups, one member list per licensed group, transitive members only for the group with a nested group
    assert set(path for path in paths if path.endswith("/transitiveMembers")) == set(["/v1.0/groups/%s/transitiveMembers" % GROUPS["e3_all"]])
    assert not any("/users" in path for path in paths)


def test_sku_holders_stream_across_pages_once_each(emu, roles, client, monkeypatch):
    catalog = directory.read_sku_catalog(client)
    index = assignments.MembershipIndex(client).load_licensed_groups()
    monkeypatch.setattr(directory, "PAGE_SIZE", 100)
    emu.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    emu.reset_stats()
    records = assignments.iter_records(client, catalog, index, sku_ids=[E3])
    first = next(records)
    assert first["sku_id"] == E3
    # streaming: the first record is produced after one page of users (the next one may be on its way), not after all 11
    assert sum(1 for entry in emu.request_log() if entry["path"] == "/v1.0/users") <= 2
    rest = list(records)
    assert len(rest) + 1 == SAFE_USERS + 1000 + 7
    assert len(set(record["user_id"] for record in rest)) == len(rest)
    assert sum(1 for entry in emu.request_log() if entry["path"] == "/v1.0/users") == 11  # every page once


def test_users_by_id_and_upn_in_batches(emu, roles, client):
    upn = emu.directory.get_user(roles["safe_0"], select=("userPrincipalName",))["userPrincipalName"]
    found = list(directory.iter_users_by_key(client, [upn, roles["lossy"], "nobody@contoso.onmicrosoft.com"]))
    assert [user["id"] if user else None for dummy, user in found] == [roles["safe_0"], roles["lossy"], None]
    assert all(entry["in_batch"] for entry in emu.request_log() if entry["path"].startswith("/v1.0/users/"))


def test_groups_by_name_or_id(client):
    assert list(assignments.resolve_groups(client, ["LIC E3 all", GROUPS["e3_ems"].upper()])) == [GROUPS["e3_all"], GROUPS["e3_ems"]]
    with pytest.raises(LicensingInputError, match="'Nope'"):
        assignments.resolve_groups(client, ["Nope"])
    with pytest.raises(LicensingInputError, match="does not exist"):
        assignments.resolve_groups(client, ["00000000-0000-0000-0000-000000000001"])
