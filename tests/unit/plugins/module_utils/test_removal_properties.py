# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Property: for any generated user state, a removal the rule allows never shrinks the enabled plan set.

Pure: licensing.classify decides, a small simulation of Entra (independent of the rule's code) says
what the user keeps once every pending change is processed, worst case. No HTTP.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from hypothesis import given, settings, strategies as st

from ansible_collections.entraops.licensing.plugins.module_utils.licensing import SAFE_TO_REMOVE, GroupFacts, SkuCatalog, classify
from ansible_collections.entraops.licensing.plugins.module_utils.removal import durable_enabled_plans

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
USER_PLANS = ["00000000-0000-0000-0000-00000000000%d" % index for index in range(1, 6)]
COMPANY_PLAN = "00000000-0000-0000-0000-000000000009"
GROUP_IDS = ["10000000-0000-0000-0000-00000000000%d" % index for index in range(1, 4)]
USER_ID = "20000000-0000-0000-0000-000000000001"

SERVICE_PLANS = [{"servicePlanId": plan, "servicePlanName": "PLAN_%d" % index, "appliesTo": "User"} for index, plan in enumerate(USER_PLANS)]
SERVICE_PLANS.append({"servicePlanId": COMPANY_PLAN, "servicePlanName": "COMPANY", "appliesTo": "Company"})
CATALOG = SkuCatalog.from_subscribed_skus(
    [{"skuId": SKU, "skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": {"enabled": 10}, "consumedUnits": 1, "servicePlans": SERVICE_PLANS}]
)

plan_subsets = st.lists(st.sampled_from(USER_PLANS + [COMPANY_PLAN]), unique=True, max_size=4)


@st.composite
def situations(draw):
    groups = {}
    for group_id in GROUP_IDS:
        carries = draw(st.booleans())
        groups[group_id] = GroupFacts(
            group_id,
            assigned_licenses={SKU: draw(plan_subsets)} if carries else {},
            processing_state=draw(st.sampled_from(["ProcessingComplete", None, "QueuedForProcessing"])),
        )
    states = []
    if draw(st.booleans()):
        states.append({"skuId": SKU, "assignedByGroup": None, "disabledPlans": draw(plan_subsets), "state": "Active", "error": "None"})
    for group_id in draw(st.lists(st.sampled_from(GROUP_IDS), unique=True)):
        states.append(
            {
                "skuId": SKU,
                "assignedByGroup": group_id,
                "disabledPlans": draw(plan_subsets),
                "state": draw(st.sampled_from(["Active", "Active", "Error", "ActiveWithError", "Disabled"])),
                "error": draw(st.sampled_from(["None", None, "CountViolation", "MutuallyExclusiveViolation"])),
            }
        )
    user = {"id": USER_ID, "userPrincipalName": "u@contoso.com", "licenseAssignmentStates": states}
    direct_member_of = draw(st.lists(st.sampled_from(GROUP_IDS), unique=True))
    trusted = draw(st.one_of(st.none(), st.lists(st.sampled_from(GROUP_IDS), unique=True)))
    return user, groups, direct_member_of, trusted


def entra_keeps(user, groups, direct_member_of, worst_case=True):
    """What the user keeps once Entra has processed everything: only inherited copies that are healthy now, from a
    group the user is a direct member of and that still assigns the SKU, survive, with the group's current disabled
    plans (members are re-evaluated to the group's options); the direct copy survives unless removed.
    ``worst_case`` also drops copies from groups still processing (their evaluation might yet fail)."""
    kept = set()
    for entry in user["licenseAssignmentStates"]:
        error_free = entry["error"] in (None, "None") and entry["state"] == "Active"
        if entry["assignedByGroup"] is None:
            disabled = set(entry["disabledPlans"])
        else:
            group = groups[entry["assignedByGroup"]]
            if (
                not error_free
                or entry["assignedByGroup"] not in direct_member_of
                or SKU not in group.assigned_licenses
                or (worst_case and group.processing_state not in (None, "ProcessingComplete"))
            ):
                continue
            disabled = set(entry["disabledPlans"]) | set(group.assigned_licenses[SKU])
        kept |= set(USER_PLANS) - disabled
    return kept


def without_direct(user):
    return dict(user, licenseAssignmentStates=[entry for entry in user["licenseAssignmentStates"] if entry["assignedByGroup"] is not None])


@settings(max_examples=300, deadline=None)
@given(situations())
def test_an_allowed_removal_never_shrinks_the_enabled_plans(situation):
    user, groups, direct_member_of, trusted = situation
    record = classify(user, SKU, CATALOG, groups, direct_member_of, trusted_groups=trusted)
    if record is None or record["verdict"] != SAFE_TO_REMOVE:
        return
    with_direct = entra_keeps(user, groups, direct_member_of)
    after_removal = entra_keeps(without_direct(user), groups, direct_member_of)
    assert with_direct <= after_removal, (record, with_direct - after_removal)
    # the engine's post-write check agrees: nothing it would flag as lost
    durable = durable_enabled_plans(without_direct(user), CATALOG, groups, frozenset(direct_member_of)).get(SKU, frozenset())
    direct_enabled = set(USER_PLANS) - set(record["direct_disabled_plans"])
    assert direct_enabled <= durable


@settings(max_examples=400, deadline=None)
@given(situations())
def test_the_post_write_check_flags_every_real_loss(situation):
    # Whatever the verdict, if removing the direct copy would lose a plan, durable_enabled_plans shows it missing,
    # so the engine puts the direct copy back.
    user, groups, direct_member_of, dummy = situation
    direct = [entry for entry in user["licenseAssignmentStates"] if entry["assignedByGroup"] is None]
    if not direct:
        return
    direct_enabled = set(USER_PLANS) - set(direct[0]["disabledPlans"])
    lost = direct_enabled - entra_keeps(without_direct(user), groups, direct_member_of, worst_case=False)
    durable = durable_enabled_plans(without_direct(user), CATALOG, groups, frozenset(direct_member_of)).get(SKU, frozenset())
    assert not (lost & durable), lost & durable
