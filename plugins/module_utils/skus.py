# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The subscribed SKUs as sku_info returns them: one record per SKU, chosen by the catalog's rule.

A SKU named by a user is resolved one way everywhere, by SkuCatalog.resolve_sku (a GUID, with or
without braces, or a part number compared case-insensitively); this file only shapes the records
and words the failure the way sku_info documents it (every unknown value in one message).
``run_sku_info`` is the module's run (the module holds the options and their documentation).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError, SkuCatalog
from ansible_collections.entraops.licensing.plugins.module_utils.permissions import missing_permissions


def sku_record(raw):
    """The returned shape of one subscribedSku (Graph's camelCase to snake_case, GUIDs lower case)."""
    units = raw.get("prepaidUnits") or {}
    enabled = int(units.get("enabled") or 0)
    consumed = int(raw.get("consumedUnits") or 0)
    plans = [
        {
            "service_plan_id": (plan.get("servicePlanId") or "").lower(),
            "service_plan_name": plan.get("servicePlanName"),
            "applies_to": plan.get("appliesTo"),
            "provisioning_status": plan.get("provisioningStatus"),
        }
        for plan in raw.get("servicePlans") or []
    ]
    return {
        "sku_id": (raw.get("skuId") or "").lower(),
        "sku_part_number": raw.get("skuPartNumber"),
        "applies_to": raw.get("appliesTo"),
        "capability_status": raw.get("capabilityStatus"),
        "enabled": enabled,
        "consumed": consumed,
        "available": enabled - consumed,
        "suspended": int(units.get("suspended") or 0),
        "warning": int(units.get("warning") or 0),
        "locked_out": int(units.get("lockedOut") or 0),
        "service_plans": plans,
        "user_service_plan_names": sorted(plan["service_plan_name"] for plan in plans if plan["applies_to"] == "User" and plan["service_plan_name"]),
    }


def _catalog(records):
    # Only the identities resolve_sku reads: the records are not checked as a migration's catalog is
    # (sku_info lists a tenant as it is). A SKU without a part number is named by its id, as in SkuCatalog.
    return SkuCatalog(dict((record["sku_id"], dict(record, sku_part_number=record["sku_part_number"] or record["sku_id"])) for record in records))


def select_skus(records, wanted):
    """The records named by ``wanted`` (GUIDs or part numbers), in that order; raises ValueError naming unknown values."""
    if not wanted:
        return sorted(records, key=lambda record: (record["sku_part_number"] or "", record["sku_id"]))
    catalog = _catalog(records)
    by_id = dict((record["sku_id"], record) for record in records)
    chosen, unknown, seen = [], [], set()
    for value in wanted:
        try:
            sku_id = catalog.resolve_sku(value)
        except LicensingInputError:  # not subscribed (SkuNotSubscribedError) or not a SKU at all
            unknown.append(value)
            continue
        if sku_id not in seen:
            seen.add(sku_id)
            chosen.append(by_id[sku_id])
    if unknown:
        subscribed = ", ".join(sorted(record["sku_part_number"] or record["sku_id"] for record in records)) or "none"
        raise ValueError(
            "%s: no subscribed SKU has %s; expected a SKU GUID or part number. Subscribed part numbers: %s"
            % (", ".join(repr(value) for value in unknown), "this GUID or part number" if len(unknown) == 1 else "these GUIDs or part numbers", subscribed)
        )
    return chosen


def run_sku_info(module):
    """Run the sku_info task of ``module`` (a GraphModule with its options); exits or fails it."""
    try:
        records = [sku_record(raw) for raw in module.client.get_all("/subscribedSkus")]
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot read the subscribed SKUs")
    try:
        skus = select_skus(records, module.params["skus"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    # After the read above, so the token is the one Graph just accepted; only its roles claim leaves this function.
    granted = module.client.granted_permissions()
    missing = missing_permissions(granted, module.params["permissions_for"]) if granted is not None else []
    module.exit_json(changed=False, skus=skus, granted_permissions=granted or [], permissions_known=granted is not None, missing_permissions=missing)
