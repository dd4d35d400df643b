"""The generator's ``multisku`` profile (docs/tenant-format.md section 3): users holding E3 with add-ons.

Real users hold Office 365 E3 with add-ons, and a migration moves some SKUs to groups while others stay direct.
The profile takes the ``default`` tenant (E3 directly for every user) and, deterministically for the seed:

- gives every user one to three add-ons from ADD_ONS that the fixture has (EMS E3, Audio Conferencing,
  Workplace Analytics; the fixture has no Visio, Project or Teams Phone), directly with no plan disabled, so
  each user holds two to four SKUs; an add-on whose prerequisite plan the user's E3 copy disables is left out
  (the tenant's rules would refuse it);
- gives each add-on the units its holders use plus a margin;
- adds the licensing group MULTI_GROUP_NAME, already licensed with E3 and EMS (one group, two SKUs) and
  processed, holding every EMS holder directly: their E3 and EMS copies are both direct and inherited (the
  SKUs that migrate), their Audio Conferencing and Workplace Analytics copies stay direct only.
"""

import random

ADD_ONS = ("EMS", "MCOMEETADV", "WORKPLACE_ANALYTICS")
MULTI_GROUP_NAME = "Licensing: E3 + EMS"
MARGIN_UNITS = 10


def _prerequisites(rules):
    return {plan: set(required) for plan, required in (rules.get("planDependencies") or {}).items()}


def _allowed(addon_sku, disabled, prerequisites):
    """Whether every user plan of the add-on has a prerequisite the user's E3 copy still enables (or none)."""
    for plan in addon_sku["servicePlans"]:
        required = prerequisites.get(plan["servicePlanId"].lower())
        if required and not (required - disabled):
            return False
    return True


def apply_multisku(tenant, seed, catalog, subscribed_sku, new_id):
    """Turn a ``default`` tenant document into the ``multisku`` profile (in place) and return it."""
    rng = random.Random(f"multisku-{seed}")
    by_part = {sku["skuPartNumber"]: sku for sku in tenant["subscribedSkus"]}
    add_ons = [part for part in ADD_ONS if part in catalog]
    for part in add_ons:
        if part not in by_part:
            by_part[part] = subscribed_sku(catalog[part], 0, rng)
            tenant["subscribedSkus"].append(by_part[part])
    prerequisites = _prerequisites(tenant["rules"])
    holders = {part: 0 for part in add_ons}
    ems_holders = []
    for user in tenant["users"]:
        disabled = set(p.lower() for p in user["directLicenses"][0]["disabledPlans"])
        wanted = rng.sample(add_ons, rng.randint(1, min(3, len(add_ons))))
        for part in sorted(wanted, key=add_ons.index):
            if not _allowed(by_part[part], disabled, prerequisites):
                continue
            user["directLicenses"].append({"skuId": by_part[part]["skuId"], "disabledPlans": []})
            holders[part] += 1
            if part == "EMS":
                ems_holders.append(user["id"])
    for part, count in holders.items():
        by_part[part]["prepaidUnits"]["enabled"] = count + MARGIN_UNITS
    if "EMS" in by_part:
        tenant["groups"].append(
            {
                "id": new_id(),
                "displayName": MULTI_GROUP_NAME,
                "description": "E3 and EMS E3 through one group; the other add-ons stay direct",
                "securityEnabled": True,
                "mailEnabled": False,
                "mailNickname": "LicensingE3EMS",
                "groupTypes": [],
                "members": ems_holders,
                "assignedLicenses": [
                    {"skuId": tenant["subscribedSkus"][0]["skuId"], "disabledPlans": []},
                    {"skuId": by_part["EMS"]["skuId"], "disabledPlans": []},
                ],
            }
        )
    return tenant
