# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""licensing_group's runs for the group kinds whose members Graph does not write (group_kinds.py).

* ``DynamicGroupRun``: creates a dynamic group from ``membership_rule``, changes its rule or processing state
  (a rule change on a licensed group only with ``accept_membership_loss``, after naming who would leave),
  reports the users the options name that the rule leaves out, and waits for the evaluation.
* ``SyncedGroupRun``: never writes to Graph. Reports the users to add on-premises, names those who cannot
  join (cloud-only users), and writes the ``Add-ADGroupMember`` script for the AD administrators.

Every decision is taken from the group's properties before any write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    PAGE_SIZE,
    create_security_group,
    iter_users_by_key,
    update_group,
)
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import (
    DYNAMIC,
    ONPREM_USER_PROPERTIES,
    SYNCED,
    ad_member_script,
    group_kind_summary,
    onprem_join,
    write_ad_member_script,
)
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.membership_rules import MembershipRuleSyntaxError, normalize_rule, parse
from ansible_collections.entraops.licensing.plugins.module_utils.membership_wait import (
    GraphMembershipReader,
    MembershipFailed,
    MembershipWaiter,
    describe_unsettled,
    parse_or_none,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError

SAMPLE_SIZE = 50
# Above this many users, the on-premises facts are read with one paged read of the directory rather than by key.
BY_KEY_LIMIT = 1000


def _sample(labels, ids):
    return [labels.get(user_id) or user_id for user_id in sorted(ids)[:SAMPLE_SIZE]]


def _base_result(group, name, kind):
    summary = group_kind_summary(group)
    summary["kind"] = kind
    return dict(
        changed=False,
        created=group is None,
        kind=kind,
        group={
            "id": normalize_guid(group["id"], error=LicensingInputError) if group else None,
            "display_name": group.get("displayName") if group else name,
        },
        group_kind=summary,
        members_added=0,
        members_added_sample=[],
        members_removed=0,
        members_removed_sample=[],
        nested_groups=0,
    )


def check_rule(module, rule):
    """Fail the task on a rule that cannot be a rule (position named), before any write."""
    if rule is None:
        return
    if not rule.strip():
        module.fail_json(msg="membership_rule is empty: expected a rule such as 'user.objectId -ne null'")
    try:
        parse(rule)
    except MembershipRuleSyntaxError as exc:
        module.fail_json(msg="membership_rule %r is not a valid rule: %s" % (rule, exc))
    except ValueError:
        return  # outside the client-side subset: Graph decides


class _GroupKindRun:
    """What every kind's run of licensing_group holds: the module, its client and options, the group and the wanted members."""

    def __init__(self, owner, name, group, wanted):
        self.module = owner.module
        self.client = owner.client
        self.params = owner.params
        self.name = name
        self.group = group
        self.wanted = wanted


class DynamicGroupRun(_GroupKindRun):
    def __init__(self, owner, name, group, wanted):
        super(DynamicGroupRun, self).__init__(owner, name, group, wanted)
        self.reader = GraphMembershipReader(self.client, use_beta=self.params["use_beta"])

    def _changes(self):
        group, params = self.group, self.params
        changes = {}
        if group is None:
            return changes
        rule = params["membership_rule"]
        if rule is not None and normalize_rule(rule) != normalize_rule(group.get("membershipRule")):
            changes["membershipRule"] = rule
        state = params["membership_rule_processing_state"]
        if state is not None and state != group.get("membershipRuleProcessingState"):
            changes["membershipRuleProcessingState"] = state
        if params["description"] is not None and (group.get("description") or "") != params["description"]:
            changes["description"] = params["description"]
        return changes

    def run(self):
        params, group = self.params, self.group
        rule = params["membership_rule"] if params["membership_rule"] is not None else (group or {}).get("membershipRule")
        tree = parse_or_none(rule)
        changes = self._changes()
        current = self.reader.member_ids(group["id"]) if group else set()
        rule_changes = group is None or "membershipRule" in changes
        # The directory is read only when a prediction is asked for: a new or changed rule, or users the rule must cover.
        predicted = self.reader.rule_result(tree) if tree is not None and (rule_changes or self.wanted) else None
        result = _base_result(group, self.name, DYNAMIC)
        result.update(changed=group is None or bool(changes), membership_rule=rule, members_total=len(current))
        labels = dict(self.wanted)
        self._predict(result, current, predicted, rule_changes, labels)
        if self.wanted and predicted is None and rule_changes:
            # A new or changed rule that cannot be evaluated here: who it will cover is unknown.
            result.update(members_wanted=len(self.wanted), members_not_covered=None, members_not_covered_sample=[])
        elif self.wanted:
            base = predicted if predicted is not None else current
            missing = set(self.wanted) - base
            result["members_wanted"] = len(self.wanted)
            result["members_not_covered"] = len(missing)
            result["members_not_covered_sample"] = _sample(labels, missing)
            if missing:
                self.module.warn(
                    "%d user(s) the options name are not matched by the rule of %r (%s): the group gives them no license, "
                    "so their direct assignment is kept" % (len(missing), self.name, ", ".join(result["members_not_covered_sample"][:10]))
                )
        else:
            result.update(members_wanted=0, members_not_covered=0, members_not_covered_sample=[])
        self._refuse_loss(result, group, changes)
        self._diff(result, group, changes, rule)
        if self.module.check_mode:
            result["membership"] = {"done": False, "source": "check_mode", "members": len(current)}
            return result
        if group is None:
            group = create_security_group(
                self.client, self.name, params["description"], membership_rule=rule, processing_state=params["membership_rule_processing_state"] or "On"
            )
            self.group = group
            result["group"] = {"id": normalize_guid(group["id"], error=LicensingInputError), "display_name": group.get("displayName")}
            result["group_kind"] = dict(group_kind_summary(group), kind=DYNAMIC)
        elif changes:
            update_group(self.client, group["id"], changes)
        result["membership"] = self._wait(group, tree, confirm=result["changed"])
        return result

    def _predict(self, result, current, predicted, rule_changes, labels):
        result["membership_prediction"] = "rule_evaluation" if predicted is not None else "unknown"
        if predicted is None and not rule_changes:
            result.update(members_leaving=0, members_leaving_sample=[], members_joining=0)
            return
        if predicted is None:
            result.update(members_leaving=None, members_leaving_sample=[], members_joining=None)
            if rule_changes:
                result["membership_prediction_reason"] = (
                    "the rule is outside the subset evaluated client-side (see membership_rule): who would leave or join cannot be told"
                )
            return
        leaving = current - predicted if rule_changes else set()
        joining = predicted - current if rule_changes else set()
        if leaving:
            for user in self._users(sorted(leaving)[:SAMPLE_SIZE]):
                labels[user["id"].lower()] = user.get("userPrincipalName")
        result.update(
            members_leaving=len(leaving),
            members_leaving_sample=_sample(labels, leaving),
            members_joining=len(joining),
            members_predicted=len(predicted),
        )

    def _users(self, ids):
        return [user for dummy, user in iter_users_by_key(self.client, sorted(ids), select=("id", "userPrincipalName")) if user is not None]

    def _refuse_loss(self, result, group, changes):
        if group is None or "membershipRule" not in changes or not group.get("assignedLicenses"):
            return
        if result["members_leaving"] is None:
            who = "who would leave cannot be told (%s)" % result["membership_prediction_reason"]
        elif result["members_leaving"]:
            who = "%d member(s) would leave and lose its licenses: %s%s" % (
                result["members_leaving"],
                ", ".join(result["members_leaving_sample"]),
                ", ..." if result["members_leaving"] > len(result["members_leaving_sample"]) else "",
            )
        else:
            who = "by the rule evaluated against the directory no member would leave, but Entra re-evaluates every member"
        if self.params["accept_membership_loss"]:
            self.module.warn("changing the rule of licensed group %r (accept_membership_loss=true): %s" % (self.name, who))
            return
        self.module.fail_json(
            msg="refusing to change the membership rule of %r: it carries %d license(s) and %s. Members who leave a licensed group "
            "lose its licenses (and may lose data); set accept_membership_loss=true to accept it" % (self.name, len(group["assignedLicenses"]), who),
            **result,
        )

    def _diff(self, result, group, changes, rule):
        if not self.module.diff_mode:
            return
        before = {"group": self.name, "state": "present" if group else "absent", "kind": DYNAMIC if group else None}
        after = {"group": self.name, "state": "present", "kind": DYNAMIC}
        for key, prop in (
            ("membership_rule", "membershipRule"),
            ("membership_rule_processing_state", "membershipRuleProcessingState"),
            ("description", "description"),
        ):
            before[key] = (group or {}).get(prop)
            after[key] = changes.get(prop, before[key]) if group else None
        if group is None:
            after.update(
                membership_rule=rule,
                membership_rule_processing_state=self.params["membership_rule_processing_state"] or "On",
                description=self.params["description"],
            )
        if result.get("members_leaving"):
            before["members_leaving"] = result["members_leaving_sample"]
        result["diff"] = {"before": before, "after": after}

    def _wait(self, group, tree, confirm):
        params = self.params
        spec = {
            "id": normalize_guid(group["id"], error=LicensingInputError),
            "display_name": group.get("displayName"),
            "kind": DYNAMIC,
            "tree": tree,
            "paused": (params["membership_rule_processing_state"] or group.get("membershipRuleProcessingState")) == "Paused",
            "confirm": confirm,
        }
        timeout = params["membership_timeout"] if params["wait_for_membership"] else 0
        waiter = MembershipWaiter(self.reader, timeout, poll_interval=params["membership_poll_interval"])
        try:
            results, timed_out = waiter.wait([spec])
        except MembershipFailed as exc:
            self.module.fail_json(msg="Entra could not evaluate the membership rule of %r: %s" % (self.name, exc))
        membership = dict(results[0], polls=waiter.polls, timed_out=timed_out and params["wait_for_membership"])
        if timed_out and params["wait_for_membership"]:
            self.module.fail_json(
                msg="timed out after %ss waiting for the membership of %s" % (params["membership_timeout"], describe_unsettled(results)),
                membership=membership,
            )
        return membership


class SyncedGroupRun(_GroupKindRun):
    def _onprem_users(self, ids):
        if len(ids) <= BY_KEY_LIMIT:
            return [user for dummy, user in iter_users_by_key(self.client, sorted(ids), select=ONPREM_USER_PROPERTIES) if user is not None]
        users = self.client.get_all("/users", params={"$select": ",".join(ONPREM_USER_PROPERTIES), "$top": PAGE_SIZE})
        return sorted((user for user in users if user["id"].lower() in ids), key=lambda user: user["id"].lower())

    def run(self):
        group, params = self.group, self.params
        current = GraphMembershipReader(self.client, use_beta=False).member_ids(group["id"])
        to_add = set(self.wanted) - current
        joinable, cannot_join = onprem_join(self._onprem_users(to_add))
        labels = dict(self.wanted)
        result = _base_result(group, self.name, SYNCED)
        result.update(
            members_total=len(current),
            members_wanted=len(self.wanted),
            members_on_premises=len(joinable),
            members_on_premises_sample=_sample(labels, [user["id"].lower() for user in joinable]),
            cannot_join=len(cannot_join),
            cannot_join_sample=cannot_join[:SAMPLE_SIZE],
            on_premises_script=None,
        )
        if params["description"] is not None and (group.get("description") or "") != params["description"]:
            self.module.warn("group %r is synced from on-premises AD: its description is mastered there and is not changed" % self.name)
        if cannot_join:
            self.module.warn(
                "%d user(s) cannot join the synced group %r and get no license from it (they keep their direct assignment): %s"
                % (len(cannot_join), self.name, "; ".join("%s: %s" % (item["user_principal_name"] or item["id"], item["reason"]) for item in cannot_join[:5]))
            )
        if joinable:
            self._script(result, joinable)
        if self.module.diff_mode:
            result["diff"] = {
                "before": {"group": self.name, "kind": SYNCED, "members_total": len(current)},
                "after": {"group": self.name, "kind": SYNCED, "members_to_add_on_premises": result["members_on_premises_sample"]},
            }
        return result

    def _script(self, result, joinable):
        path = self.params["on_premises_script_path"]
        if not path:
            self.module.warn(
                "%d user(s) must be added to %r on-premises; set on_premises_script_path to get the Add-ADGroupMember script" % (len(joinable), self.name)
            )
            return
        try:
            text = ad_member_script(self.group, joinable)
            written, changed = write_ad_member_script(path, text, check_mode=self.module.check_mode)
        except (RecordsError, ValueError) as exc:
            self.module.fail_json(msg=str(exc), **result)
        result["on_premises_script"] = written
        result["changed"] = changed
