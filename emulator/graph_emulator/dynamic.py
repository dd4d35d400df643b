"""Dynamic membership groups: members computed from ``membershipRule`` in the background (docs/tenant-format.md 5).

``DynamicMembership`` is a part of ``Directory`` (engine.py). Evaluations are (group, user) pairs in their own
``ProcessingQueue`` run at ``dynamic_rate`` users per emulated second, before group licensing in ``advance()``:
a member the rule gains starts group licensing like any member, a member it loses gives the group's licenses
back (the loss ledger names the rule: cause ``dynamic_membership``).
"""

from __future__ import annotations

import json

from .audit import group_target, user_target
from .records import RequestContext, _now_iso
from .rules import parse_rule
from .views import USER_PROPERTY_DEFAULTS, _USER_VIEW_ATTRIBUTES

# The first-party app Entra's audit log names for dynamic membership changes (COMMUNITY: jasonfritts.me,
# "What is Microsoft Approval Management", 2020-08: dynamic groups, self-service groups, group expiration).
DYNAMIC_APP_ID = "65d91a3d-ab74-42e6-8a2f-0add61688c74"
DYNAMIC_APP_NAME = "Microsoft Approval Management"
DYNAMIC_CAUSE = "dynamic_membership"
NOT_STARTED, RUNNING, SUCCEEDED = "NotStarted", "Running", "Succeeded"


def dynamic_context(group) -> RequestContext:
    """Who changes a dynamic group's members: the rule (named in the ledger's request path and the audit's app)."""
    return RequestContext(
        method="DYNAMIC",
        path=f"/groups/{group.id} membershipRule: {group.membership_rule}",
        app_id=DYNAMIC_APP_ID,
        app_display_name=DYNAMIC_APP_NAME,
        cause=DYNAMIC_CAUSE,
    )


def rule_value(user, name):
    """A user's value of the Graph property ``name`` as a rule reads it (rules.PROPERTIES)."""
    if name == "id":
        return user.id
    extra = user.extra or {}
    if name.startswith("onPremisesExtensionAttributes."):
        return (extra.get("onPremisesExtensionAttributes") or {}).get(name.split(".", 1)[1])
    if name in extra:
        return extra[name]
    attribute = _USER_VIEW_ATTRIBUTES.get(name)
    if attribute is not None:
        return getattr(user, attribute)
    return USER_PROPERTY_DEFAULTS.get(name)


class DynamicMembership:
    """The dynamic-membership part of ``Directory``: rules, their evaluation queue (``self._dynamic``), status."""

    def _matches(self, group, user) -> bool:
        return group.rule.matches(lambda name: rule_value(user, name))

    def _load_dynamic(self, group, doc, loaded_at):
        """A dynamic group of a tenant file: recorded status kept (NotStarted/Running queue a round), else evaluated now."""
        group.membership_rule = doc["membershipRule"]
        group.rule = parse_rule(doc["membershipRule"])
        group.rule_state = doc["membershipRuleProcessingState"]
        status = doc.get("membershipRuleProcessingStatus")
        if status is None:
            for member_id in list(group.members):
                self._unlink_member(group, member_id)
            for user in self._user_order:
                if user is not None and self._matches(group, user):
                    self._link_member(group, user.id)
            group.rule_status, group.rule_updated = SUCCEEDED, loaded_at
            return
        group.rule_status, group.rule_updated = status["status"], status["lastMembershipUpdated"]
        if group.rule_status in (NOT_STARTED, RUNNING) and group.rule_state == "On":
            self._queue_rule(group, keep_status=True)

    def _queue_rule(self, group, keep_status=False):
        """Evaluate the rule for every user (a new rule, a rule switched On, a static group made dynamic)."""
        ctx = dynamic_context(group)
        if not keep_status:
            group.rule_status = NOT_STARTED
        users = [u.id for u in self._user_order if u is not None]
        for user_id in users or [None]:
            if self._dynamic.push((group.id, user_id), ctx):
                group.rule_pending += 1

    def _queue_user_rules(self, user):
        """A user was created or its attributes changed: every dynamic group that is On evaluates it again."""
        for group in self._group_order:
            if group is not None and group.dynamic and group.rule_state == "On":
                if self._dynamic.push((group.id, user.id), dynamic_context(group)):
                    group.rule_pending += 1
                    if group.rule_status == SUCCEEDED:
                        group.rule_status = RUNNING

    def _advance_dynamic(self):
        for _ in range(self._dynamic.due()):
            self._evaluate_one()
        self._dynamic.settle()

    def _finish_dynamic(self):
        while self._dynamic.keys:
            self._evaluate_one()
        self._dynamic.restart()

    def _evaluate_one(self):
        (group_id, user_id), ctx = self._dynamic.pop()
        group = self._groups.get(group_id)
        if group is None or not group.dynamic:
            return
        group.rule_pending -= 1
        if group.rule_state != "On":
            return  # Paused: queued evaluations are dropped, the status stays where it was
        if group.rule_status == NOT_STARTED:
            group.rule_status = RUNNING
        user = self._users.get(user_id) if user_id is not None else None
        if user is not None:
            wanted = self._matches(group, user)
            if wanted and user.id not in group.members:
                self._link_member(group, user.id)
                self._record_member_change(group, "user", user.id, True, ctx)
                self._membership_changed(group, user.id, ctx)
            elif not wanted and user.id in group.members:
                self._unlink_member(group, user.id)
                self._record_member_change(group, "user", user.id, False, ctx)
                self._membership_changed(group, user.id, ctx)
        if group.rule_pending == 0:
            group.rule_status, group.rule_updated = SUCCEEDED, _now_iso()

    def _record_member_change(self, group, kind, member_id, added, ctx):
        target = user_target(self._users[member_id]) if kind == "user" else group_target(self._groups[member_id])
        name = json.dumps(group.display_name)
        if added:
            self._trail.record("Add member to group", "GroupManagement", "Assign", ctx, target, [("Group.DisplayName", "", name)])
        else:
            self._trail.record("Remove member from group", "GroupManagement", "Unassign", ctx, target, [("Group.DisplayName", name, "")])

    def _set_dynamic(self, group, body, creating):
        """Apply groupTypes/membershipRule/membershipRuleProcessingState of a checked create or update body."""
        was_dynamic, old_rule, old_state = group.dynamic, group.membership_rule, group.rule_state
        dynamic = "DynamicMembership" in group.group_types
        if not dynamic:
            group.membership_rule = group.rule = group.rule_state = group.rule_status = group.rule_updated = None
            return  # dynamic -> static keeps the members the rule last computed
        group.membership_rule = body.get("membershipRule", old_rule)
        group.rule = parse_rule(group.membership_rule)
        group.rule_state = body.get("membershipRuleProcessingState") or old_state or "On"
        if not was_dynamic and not creating:
            # a static group made dynamic: Graph removes every member first, then the rule adds them back (L§2)
            ctx = dynamic_context(group)
            for member_id, kind in list(group.members.items()):
                self._unlink_member(group, member_id)
                self._record_member_change(group, kind, member_id, False, ctx)
                if kind == "user":
                    self._membership_changed(group, member_id, ctx)
        if not was_dynamic:
            group.rule_status = NOT_STARTED
        rule_changed = group.membership_rule != old_rule or not was_dynamic
        switched_on = group.rule_state == "On" and old_state != "On"
        if group.rule_state == "On" and (rule_changed or switched_on):
            self._queue_rule(group)

    def dynamic_pending(self) -> int:
        return len(self._dynamic.pending)
