"""Benchmark tenants: generate_tenant's users (all holding E3 directly) plus licensing groups that cover them.

The generated tenant has no licensed group, so nothing would be safe to remove. We add
``ceil(users / GROUP_SIZE)`` security groups carrying the same SKU with no disabled plan and
split the users between them (every user a direct member of exactly one group). The tenant is
loaded in ``processed`` mode, so Entra has already applied the groups: every user holds the SKU
directly and inherited, which is the state right before the ``remove`` phase of a migration.
"""

import math
import random
import uuid

from graph_emulator import generate_tenant

GROUP_SIZE = 10000
SEED = 7


def build_tenant(users, seed=SEED, group_size=GROUP_SIZE):
    """(tenant dict, facts) where facts describe the work the bound is computed from."""
    tenant = generate_tenant(users=users, seed=seed)
    sku_id = tenant["subscribedSkus"][0]["skuId"]
    user_ids = [user["id"] for user in tenant["users"]]
    group_count = max(1, math.ceil(users / group_size))
    rng = random.Random(seed + 1)
    licensed_groups = []
    for index in range(group_count):
        members = user_ids[index::group_count]
        licensed_groups.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "displayName": f"LIC E3 {index + 1:02d}",
                "description": "benchmark licensing group",
                "securityEnabled": True,
                "mailEnabled": False,
                "mailNickname": f"LICE3{index + 1:02d}",
                "groupTypes": [],
                "members": members,
                "assignedLicenses": [{"skuId": sku_id, "disabledPlans": []}],
            }
        )
    tenant["groups"].extend(licensed_groups)
    facts = {
        "users": users,
        "sku_id": sku_id,
        "sku_part_number": tenant["subscribedSkus"][0]["skuPartNumber"],
        "groups_total": len(tenant["groups"]),
        "licensed_groups": [{"id": group["id"], "display_name": group["displayName"], "members": len(group["members"])} for group in licensed_groups],
    }
    return tenant, facts
