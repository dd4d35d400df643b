# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""group_license's run: the licenses a group should carry, checked for service loss and units, written once.

The module holds the options and their documentation and calls ``run_group_license`` (the pattern of
kubernetes.core's ``module_utils/k8s/runner.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    DirectoryInputError,
    assign_group_licenses,
    count_members_without_skus,
    find_group,
    read_sku_catalog,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    GroupFacts,
    LicensingInputError,
    format_shortfall,
    group_license_changes,
    resolve_license_specs,
    unit_shortfall,
)


def run_group_license(module):
    """Run the group_license task of ``module`` (a GraphModule with its options); exits or fails it."""
    try:
        result = GroupLicense(module).run()
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot manage the licenses of group %r" % module.params["group"])
    module.exit_json(**result)


class GroupLicense:
    """One run: resolve the inputs, decide, check loss and units, write once."""

    def __init__(self, module):
        self.module = module
        self.client = module.client
        self.params = module.params

    def run(self):
        params = self.params
        if params["exclusive"] and params["state"] == "absent":
            self.module.fail_json(msg="exclusive=true applies only to state=present; with state=absent list the SKUs to remove")
        group = self._group()
        catalog = read_sku_catalog(self.client)
        try:
            desired = resolve_license_specs(catalog, params["licenses"])
            changes = group_license_changes(catalog, group.get("assignedLicenses") or [], desired, state=params["state"], exclusive=params["exclusive"])
        except LicensingInputError as exc:
            self.module.fail_json(msg="group %r: %s" % (params["group"], exc))
        facts = GroupFacts.from_graph(group)
        summary = {"id": facts.group_id, "display_name": facts.display_name}
        new_sku_ids = [license_["skuId"] for license_ in changes["add_licenses"] if not facts.carries(license_["skuId"])]
        members = None
        new_consumers = {}
        if changes["service_loss"] or new_sku_ids:
            missing, members = count_members_without_skus(self.client, facts.group_id, new_sku_ids)
            new_consumers = dict((catalog.label(sku_id), count) for sku_id, count in missing.items())
            self._check_service_loss(changes, members, summary)
            self._check_units(catalog, missing, summary)
        result = dict(
            changed=changes["changed"],
            group=summary,
            licenses={"before": changes["before"], "after": changes["after"]},
            service_loss=changes["service_loss"],
            new_consumers=new_consumers,
            members=members,
            processing_state=facts.processing_state,
        )
        if self.module.diff_mode:
            result["diff"] = {
                "before": {"group": facts.display_name, "licenses": changes["before"]},
                "after": {"group": facts.display_name, "licenses": changes["after"]},
            }
        if changes["changed"] and not self.module.check_mode:
            result["processing_state"] = self._assign(facts.group_id, changes)
        return result

    def _group(self):
        try:
            group = find_group(self.client, self.params["group"], require_licensable=True)
        except DirectoryInputError as exc:
            self.module.fail_json(msg=str(exc))
        if group is None:
            self.module.fail_json(
                msg="group %r: no group has this object id or display name; expected an existing security group "
                "(create it with entraops.licensing.licensing_group)" % self.params["group"]
            )
        return group

    def _check_service_loss(self, changes, members, summary):
        if not changes["service_loss"] or self.params["allow_service_loss"] or not members:
            return
        lost = "; ".join("%s: %s" % (sku, ", ".join(plans) if plans else "the license itself") for sku, plans in sorted(changes["service_loss"].items()))
        self.module.fail_json(
            msg="refusing to change the licenses of group %r: its %d direct member(s) would lose services (%s). "
            "Set allow_service_loss=true if that is intended" % (summary["display_name"], members, lost),
            group=summary,
            service_loss=changes["service_loss"],
            changed=False,
        )

    def _check_units(self, catalog, missing, summary):
        shortfall = unit_shortfall(catalog, sorted(missing), missing)
        if not shortfall:
            return
        message = "group %r: %s" % (summary["display_name"], format_shortfall(catalog, shortfall, missing))
        if self.params["allow_insufficient_units"]:
            self.module.warn(message)
            return
        self.module.fail_json(
            msg=message + ". Set allow_insufficient_units=true to assign anyway",
            group=summary,
            shortfall=dict((catalog.label(sku_id), units) for sku_id, units in shortfall.items()),
            changed=False,
        )

    def _assign(self, group_id, changes):
        group = assign_group_licenses(self.client, group_id, changes["add_licenses"], changes["remove_licenses"])
        return GroupFacts.from_graph(group).processing_state if group else None
