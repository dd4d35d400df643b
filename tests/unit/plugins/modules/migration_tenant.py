# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small tenant holding one user per migration situation, for the verification and removal tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import uuid

from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS, emulator_connection, wait_until_quiet

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
E1 = "18181a46-0d4e-45cd-891e-60aabd171b4e"
EMS_PART = "EMS"
SAFE_USERS = 12

_NAMESPACE = uuid.UUID("3f1d2a52-8a55-4c9d-9d0e-6f1d0e7b5a11")


def _gid(name):
    return str(uuid.uuid5(_NAMESPACE, name))


GROUPS = {
    "e3_all": _gid("e3_all"),
    "e3_no_sway": _gid("e3_no_sway"),
    "e3_no_yammer": _gid("e3_no_yammer"),
    "outer_nested": _gid("outer_nested"),
    "inner_plain": _gid("inner_plain"),
    "e3_ems": _gid("e3_ems"),
    "e1_e3": _gid("e1_e3"),
}


def plan_id(tenant, sku_id, name):
    sku = next(sku for sku in tenant["subscribedSkus"] if sku["skuId"] == sku_id)
    return next(plan["servicePlanId"] for plan in sku["servicePlans"] if plan["servicePlanName"] == name)


def build_tenant(extra_safe=0):
    """Tenant dict + ``roles``: {role: user id}. ``safe_N`` users are safe to migrate; the rest are not.

    Roles: safe_0..safe_{SAFE_USERS+extra_safe-1} (direct E3, direct member of 'E3 all'),
    lossy (group disables SWAY that the direct copy enables), two_groups (two groups that each
    disable one plan but together enable all), nested (member only through a nested group),
    count_violation (inherited E3 in CountViolation), exclusive (MutuallyExclusiveViolation),
    direct_only (no group), sway_off (direct copy disables SWAY; covered by 'E3 no SWAY').
    """
    from graph_emulator import generate_tenant  # pylint: disable=import-outside-toplevel

    safe_count = SAFE_USERS + extra_safe
    specials = ["lossy", "two_groups", "nested", "count_violation", "exclusive", "direct_only", "sway_off"]
    tenant = generate_tenant(users=safe_count + len(specials), seed=11, disabled_plan_ratio=0, no_usage_location=0, nested_users=0)
    users = tenant["users"]
    for user in users:
        user["usageLocation"] = user.get("usageLocation") or "US"
        user["directLicenses"] = [{"skuId": E3, "disabledPlans": []}]
    roles = {}
    for index in range(safe_count):
        roles["safe_%d" % index] = users[index]["id"]
    for offset, name in enumerate(specials):
        roles[name] = users[safe_count + offset]["id"]
    sway = plan_id(tenant, E3, "SWAY")
    yammer = plan_id(tenant, E3, "YAMMER_ENTERPRISE")
    ems = next(sku for sku in tenant["subscribedSkus"] if sku["skuPartNumber"] == EMS_PART)
    ems["prepaidUnits"]["enabled"] = 0
    for sku in tenant["subscribedSkus"]:
        if sku["skuId"] == E1:
            sku["prepaidUnits"]["enabled"] = 50
    by_id = dict((user["id"], user) for user in users)
    by_id[roles["sway_off"]]["directLicenses"] = [{"skuId": E3, "disabledPlans": [sway]}]
    tenant["rules"] = {"mutuallyExclusivePlans": [["SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE"]]}

    def group(key, name, members, licenses):
        return {
            "id": GROUPS[key],
            "displayName": name,
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": key,
            "groupTypes": [],
            "members": members,
            "assignedLicenses": licenses,
        }

    tenant["groups"] = [
        group(
            "e3_all", "LIC E3 all", [roles["safe_%d" % index] for index in range(safe_count)] + [GROUPS["inner_plain"]], [{"skuId": E3, "disabledPlans": []}]
        ),
        group("inner_plain", "Contractors plain", [roles["nested"]], []),
        group("e3_no_sway", "LIC E3 no SWAY", [roles["lossy"], roles["two_groups"], roles["sway_off"]], [{"skuId": E3, "disabledPlans": [sway]}]),
        group("e3_no_yammer", "LIC E3 no Yammer", [roles["two_groups"]], [{"skuId": E3, "disabledPlans": [yammer]}]),
        group("e3_ems", "LIC E3 + EMS", [roles["count_violation"]], [{"skuId": E3, "disabledPlans": []}, {"skuId": ems["skuId"], "disabledPlans": []}]),
        group("e1_e3", "LIC E1 + E3", [roles["exclusive"]], [{"skuId": E3, "disabledPlans": []}, {"skuId": E1, "disabledPlans": []}]),
    ]
    return tenant, roles


def connection(emu):
    """Module connection options for the emulator's default app."""
    return emulator_connection(emu, max_retry_time=60)


def direct_sku_ids(emu, user_id):
    """SKU ids the user holds directly, read in-process from the emulator."""
    user = emu.directory.get_user(user_id, select=("id", "licenseAssignmentStates"))
    return sorted(entry["skuId"] for entry in user["licenseAssignmentStates"] if entry.get("assignedByGroup") is None)


def reset_migration_emulator(emu, tenant):
    """``emu`` with ``tenant`` freshly loaded, no faults, default knobs, empty ledger and request log.

    First waits until no request arrives: an in-process module that failed early may leave a background
    read finishing (a real module process ends with its daemon threads), which must not land in this test's log.
    """
    wait_until_quiet(emu, quiet_seconds=0.2)
    emu.clear_faults()
    emu.configure(throttling=False, latency_ms=0, processing_rate=1000.0, **STRICT_KNOBS)
    emu.load_state(copy.deepcopy(tenant))
    emu.clear_ledger()
    emu.reset_stats()
