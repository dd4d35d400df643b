"""Group-based licensing in the background: the processing queue and how one user's copy from a group is applied.

A group license change, a membership change or a tenant loaded as "queued" puts ``(group, user)`` keys on the
queue; ``advance`` (called before every Graph call) evaluates ``processing_rate`` keys per emulated second, and
``process_all`` evaluates them all. ``_reconcile`` applies a group's licenses to one user all-or-nothing, with
the error Entra would record (entra-licensing.md sections 3-6).
"""

from __future__ import annotations

from collections import deque

from .audit import group_target, user_target
from .records import ACTIVE_STATES, COMPLETE, IN_PROGRESS, QUEUED, _context, _GroupEntry, _locked, _now_iso


class ProcessingQueue:
    """The queued ``(group id, user id or None)`` keys in order, the request behind each, and the pace."""

    def __init__(self, clock, rate, time_scale):
        self.clock = clock
        self.rate = float(rate)
        self.time_scale = float(time_scale)
        self.delay = 0.0  # emulated seconds a key waits before it can be evaluated (strict knob processing_delay_s)
        self.reset()

    def reset(self):
        self.keys = deque()
        self.pending = {}
        self.queued_at = {}
        self.credit = 0.0
        self.last_tick = self.clock()

    def push(self, key, ctx, front=False) -> bool:
        """Queue ``key`` for ``ctx``; False if it was queued already (its request is then replaced)."""
        if key in self.pending:
            self.pending[key] = ctx  # the latest request is the one whose effect processing will apply
            return False
        if not self.keys:
            self.last_tick = self.clock()
            self.credit = 0.0
        self.pending[key] = ctx
        self.queued_at[key] = self.clock()
        if front:
            self.keys.appendleft(key)
        else:
            self.keys.append(key)
        return True

    def due(self) -> int:
        """How many keys are due by now: ``rate`` per emulated second since the last tick."""
        now = self.clock()
        elapsed = max(0.0, now - self.last_tick) * self.time_scale
        self.last_tick = now
        if not self.keys:
            self.credit = 0.0
            return 0
        self.credit += elapsed * self.rate
        due = min(int(self.credit), len(self.keys))
        if self.delay > 0:
            due = self._waited_enough(due, now)
        self.credit -= due
        return due

    def _waited_enough(self, due, now):
        """Of the first ``due`` keys, how many (from the head) have waited ``delay`` emulated seconds."""
        ready = 0
        for key in self.keys:
            if ready >= due or (now - self.queued_at.get(key, now)) * self.time_scale < self.delay:
                break
            ready += 1
        if ready == 0:
            self.credit = min(self.credit, 1.0)  # no burst of saved-up credit once the delay is over
        return ready

    def pop(self):
        """The next key and the request behind it."""
        key = self.keys.popleft()
        self.queued_at.pop(key, None)
        return key, self.pending.pop(key)

    def settle(self):
        """After the due keys ran: an empty queue keeps no credit."""
        if not self.keys:
            self.credit = 0.0

    def restart(self):
        """After everything ran at once: the pace starts again from now."""
        self.credit = 0.0
        self.last_tick = self.clock()


class GroupLicensingProcessing:
    """The group-licensing part of ``Directory`` (engine.py): queueing, background processing, reprocessing.

    Its methods use the directory's records, its effective licensing and rules (``_effective``,
    ``_violation``'s checks, ``_commit``) and ``self._processing``, a ``ProcessingQueue``.
    """

    def _queue_group(self, group, ctx):
        """Queue every DIRECT user member plus users still holding a copy from this group."""
        user_ids = [mid for mid, kind in group.members.items() if kind == "user"]
        member_set = set(user_ids)
        user_ids += sorted((u for u in group.entry_users if u not in member_set), key=lambda u: self._users[u].seq)
        for user_id in user_ids:
            self._enqueue(group, user_id, ctx)
        if not user_ids:
            self._enqueue(group, None, ctx)  # still goes Queued -> InProgress -> Complete in the background

    def _enqueue(self, group, user_id, ctx, front=False):
        ctx = _context(ctx)
        if not self._processing.push((group.id, user_id), ctx, front):
            return
        group.pending += 1
        if group.processing_state not in (IN_PROGRESS, QUEUED):
            self._remember_group(group)
            group.processing_state = QUEUED

    @_locked
    def advance(self) -> None:
        """Run the background work due by now: a sync cycle, dynamic rules (dynamic_rate users per emulated second),
        then group licensing (processing_rate evaluations per emulated second)."""
        self._advance_sync()
        self._advance_dynamic()
        for _ in range(self._processing.due()):
            self._process_one()
        self._processing.settle()

    @_locked
    def process_all(self) -> None:
        self._finish_dynamic()  # pending dynamic evaluations first: the members they change are licensed below
        while self._processing.keys:
            self._process_one()
        self._processing.restart()
        # "process everything now" stands for the time processing takes: by then the replicas caught up too
        self._lagging.clear()

    @_locked
    def pending_work(self) -> int:
        return len(self._processing.pending)

    def _process_one(self):
        (group_id, user_id), ctx = self._processing.pop()
        group = self._groups.get(group_id)
        if group is not None and group.processing_state == QUEUED:
            self._remember_group(group)
            group.processing_state = IN_PROGRESS
            group.batch_ok = group.batch_failed = 0
            self._trail.record("Start applying group based license to users", "GroupManagement", "Update", ctx, group_target(group), system=True)
        user = self._users.get(user_id) if user_id is not None else None
        if user is not None:
            succeeded = self._reconcile(user, group_id, ctx)
            if group is not None:
                if succeeded:
                    group.batch_ok += 1
                else:
                    group.batch_failed += 1
        if group is not None:
            group.pending -= 1
            if group.pending == 0:
                self._remember_group(group)
                group.processing_state = COMPLETE
                result = f"[Users successfully assigned licenses: {group.batch_ok}, Users for whom license assignment failed: {group.batch_failed}.];"
                self._trail.record(
                    "Finish applying group based license to users", "GroupManagement", "Update", ctx, group_target(group), [("Result", "", result)], system=True
                )

    def _set_entry(self, user, group_id, entry):
        self._remember_user(user)
        group = self._groups.get(group_id)
        if entry is None:
            if user.gstates:
                user.gstates.pop(group_id, None)
                if not user.gstates:
                    user.gstates = None
            if group is not None:
                group.entry_users.discard(user.id)
                group.error_users.discard(user.id)
            return
        if user.gstates is None:
            user.gstates = {}
        user.gstates[group_id] = entry
        if group is not None:
            group.entry_users.add(user.id)
            if entry.error != "None":
                group.error_users.add(user.id)
            else:
                group.error_users.discard(user.id)

    def _violation(self, user, entry, desired, others):
        """The error code that blocks applying ``desired`` (all SKUs of one group) to the user, or None."""
        other_plans = self._all_plans(others)
        group_plans = self._all_plans({s: self._skus[s].enabled_plans(d) for s, d in desired.items()})
        for plan in group_plans & self._conflicts.keys():
            if self._conflicts[plan] & (other_plans | group_plans):
                return "MutuallyExclusiveViolation"
        combined = other_plans | group_plans
        if self._unmet_dependencies(combined) - self._unmet_dependencies(other_plans):
            return "DependencyViolation"
        # Group licensing evaluates users without a usage location with the tenant's country.
        location = user.usage_location or self.country_letter_code
        if self._prohibited_plans(group_plans, location):
            return "ProhibitedInUsageLocationViolation"
        holds_active = entry is not None and entry.state in ACTIVE_STATES
        for sku_id in desired:
            already_consumed = sku_id in others or (holds_active and sku_id in entry.licenses)
            if not already_consumed and self._skus[sku_id].free_units() <= 0:
                return "CountViolation"
        return None

    def _reconcile(self, user, group_id, ctx) -> bool:
        """Bring the user's copy from one group in line with the group (all-or-nothing). True unless an error."""
        group = self._groups.get(group_id)
        is_member = group is not None and user.groups is not None and group_id in user.groups
        desired = group.licenses if is_member and group.licenses else None
        entry = user.gstates.get(group_id) if user.gstates else None
        before = self._effective(user)
        now = _now_iso()
        if desired is None:
            if entry is None:
                return True
            if entry.state in ACTIVE_STATES:
                after_plans = self._all_plans(self._effective(user, skip_group=group_id))
                if self._unmet_dependencies(after_plans) - self._unmet_dependencies(self._all_plans(before)):
                    # DependencyViolation on removal: the removal does not happen (entra-licensing.md section 3).
                    if entry.error != "DependencyViolation":
                        self._set_entry(user, group_id, _GroupEntry(entry.licenses, "ActiveWithError", "DependencyViolation", now))
                    return False
            self._set_entry(user, group_id, None)
            self._commit(user, before, _context(ctx).cause or "group_processing", ctx)
            self._trail.record("Change user license", "UserManagement", "Update", ctx, user_target(user), system=True)
            return True
        others = self._effective(user, skip_group=group_id)
        error = self._violation(user, entry, desired, others)
        if error is None and entry is not None and entry.state in ACTIVE_STATES:
            after_plans = self._all_plans(self._effective(user, skip_group=group_id, extra=desired))
            if self._unmet_dependencies(after_plans) - self._unmet_dependencies(self._all_plans(before)):
                if entry.error != "DependencyViolation":
                    self._set_entry(user, group_id, _GroupEntry(entry.licenses, "ActiveWithError", "DependencyViolation", now))
                return False
        state, code = ("Active", "None") if error is None else ("Error", error)
        if entry is not None and entry.licenses == desired and entry.state == state and entry.error == code:
            return error is None
        self._set_entry(user, group_id, _GroupEntry(dict(desired), state, code, now))
        self._commit(user, before, _context(ctx).cause or "group_processing", ctx)
        self._trail.record("Change user license", "UserManagement", "Update", ctx, user_target(user), system=True)
        return error is None

    @_locked
    def reprocess_user(self, key, ctx) -> dict:
        """POST /users/{id}/reprocessLicenseAssignment: re-evaluate the user's groups now, errors included."""
        user = self._user(key)
        group_ids = list(user.groups or ()) + [g for g in (user.gstates or {}) if g not in (user.groups or ())]
        for group_id in sorted(group_ids, key=lambda g: self._groups[g].seq if g in self._groups else -1):
            if self._processing.delay > 0 and group_id in self._groups:
                # strict knob processing_delay_s: reprocessing is queued work like any other, not an instant fix
                self._enqueue(self._groups[group_id], user.id, ctx, front=True)
            else:
                self._reconcile(user, group_id, ctx)
        return self._user_dict(user)
