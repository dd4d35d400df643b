# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Write the tenant of the role target: 60 users holding E3 directly; 50 without SWAY (the group's
policy), 10 with SWAY enabled (they would lose it: plans_would_be_lost), 5 of them also in a nested group.
2 of the 50 have no usage location: group licensing uses the tenant's country, and the rollback (a direct
assignment, which needs one) first gives them that country, so the app also holds User.ReadWrite.All."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import sys

from graph_emulator import generate_tenant

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def main(path):
    tenant = generate_tenant(users=60, seed=11, disabled_plan_ratio=0, no_usage_location=0, nested_users=5)
    tenant["apps"][0]["permissions"].append("User.ReadWrite.All")
    for user in tenant["users"][:2]:
        user["usageLocation"] = None
    sku = next(sku for sku in tenant["subscribedSkus"] if sku["skuId"] == E3)
    sway = next(plan["servicePlanId"] for plan in sku["servicePlans"] if plan["servicePlanName"] == "SWAY")
    for user in tenant["users"][:50]:
        user["directLicenses"] = [{"skuId": E3, "disabledPlans": [sway]}]
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(tenant, stream)


if __name__ == "__main__":
    main(sys.argv[1])
