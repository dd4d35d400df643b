# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Write a tenant for the migration targets: 20 users covered by 'LIC E3 all', one whose group disables SWAY, one direct only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import sys

from graph_emulator import generate_tenant

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def main(path):
    tenant = generate_tenant(users=22, seed=5, disabled_plan_ratio=0, no_usage_location=0, nested_users=0)
    sku = next(sku for sku in tenant["subscribedSkus"] if sku["skuId"] == E3)
    sway = next(plan["servicePlanId"] for plan in sku["servicePlans"] if plan["servicePlanName"] == "SWAY")
    users = tenant["users"]
    for user in users:
        user["directLicenses"] = [{"skuId": E3, "disabledPlans": []}]
    tenant["groups"] = [
        {
            "id": "4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0001",
            "displayName": "LIC E3 all",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "lic-e3-all",
            "groupTypes": [],
            "members": [user["id"] for user in users[:20]],
            "assignedLicenses": [{"skuId": E3, "disabledPlans": []}],
        },
        {
            "id": "4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0002",
            "displayName": "LIC E3 no SWAY",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "lic-e3-no-sway",
            "groupTypes": [],
            "members": [users[20]["id"]],
            "assignedLicenses": [{"skuId": E3, "disabledPlans": [sway]}],
        },
    ]
    with open(path, "w") as stream:
        json.dump(tenant, stream)


if __name__ == "__main__":
    main(sys.argv[1])
