# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting for Entra to apply group-based licenses (kubernetes.core waiter style).

``group_progress`` is the pure predicate part: from one read of a group and its direct user
members it says how far processing is. ``ProcessingWaiter`` polls a reader until every group is
done or the timeout passes, with a growing interval; no HTTP there: the reader is a callable.
``run_license_processing_wait`` is the module's run: it finds the groups, reads them from Graph
through the waiter, reprocesses members in error when asked, and reports.

What "done" means for one group:

* ``licenseProcessingState.state`` is ``ProcessingComplete``, or null. Graph does not guarantee the
  property is set (reference 3.2: null is seen on groups that never carried licenses), so null is
  not evidence either way and the member check below decides alone. Any other value, including
  ``QueuedForProcessing``, ``ProcessingInProgress`` and values Graph does not document (such as
  ``ProcessingFailed``, which Microsoft's own scripts test for), means "not done yet";
* and every direct user member has an entry assigned by the group (``assignedByGroup`` = the
  group) for every SKU the group carries, whether that entry is healthy or in error: a member in
  error has been processed, and is reported as in error.

Members of nested groups are not members here: Entra does not license them (they are counted as
``nested_groups``, never as applied).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    PAGE_SIZE,
    DirectoryInputError,
    direct_sku_holders,
    find_group,
    get_group,
    iter_direct_members,
    iter_user_members,
    iter_users_by_key,
    members_with_license_errors,
    read_sku_catalog,
    reprocess_users,
    resolve_users,
)
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import DYNAMIC, ONPREM_USER_PROPERTIES, SYNCED, group_kind, onprem_join
from ansible_collections.entraops.licensing.plugins.module_utils.membership_wait import (
    GraphMembershipReader,
    MembershipFailed,
    MembershipWaiter,
    describe_unsettled,
    parse_or_none,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    PROCESSING_COMPLETE,
    GroupFacts,
    LicensingInputError,
    entry_error_code,
    is_healthy_entry,
    user_assignment_states,
)

SAMPLE_SIZE = 50
MEMBER_SELECT = ("id", "userPrincipalName", "licenseAssignmentStates")


def processing_state_done(state):
    """True for ProcessingComplete and for null (see the module docstring); False for anything else."""
    return state is None or state == PROCESSING_COMPLETE


def member_status(user, group_id, sku_ids):
    """``'applied'``, ``'error'`` or ``'pending'`` for one direct user member of the group.

    applied: a healthy entry from the group for every SKU; error: entries from the group for every
    SKU and at least one unhealthy (all-or-nothing: Entra records every SKU of the group in error);
    pending: some SKU of the group has no entry from the group yet.
    """
    entries = [entry for entry in user_assignment_states(user) if entry["group_id"] == group_id]
    by_sku = {}
    for entry in entries:
        by_sku.setdefault(entry["sku_id"], []).append(entry)
    if any(sku_id not in by_sku for sku_id in sku_ids):
        # An error may be recorded before every SKU has its entry: count it as error, it will not heal by waiting.
        if any(entry_error_code(entry) for entry in entries):
            return "error"
        return "pending"
    if all(any(is_healthy_entry(entry) for entry in by_sku[sku_id]) for sku_id in sku_ids):
        return "applied"
    return "error"


def member_error_codes(user, group_id):
    """Sorted error codes of the user's entries from the group (``'Error'``-state entries without a code count as ``Other``)."""
    codes = set()
    for entry in user_assignment_states(user):
        if entry["group_id"] != group_id or is_healthy_entry(entry):
            continue
        codes.add(entry_error_code(entry) or "Other")
    return sorted(codes)


def group_progress(facts, user_members, nested_groups=0):
    """Per-group progress (a plain dict) from GroupFacts and the direct user members read with licenseAssignmentStates.

    Keys: ``id``, ``display_name``, ``processing_state``, ``skus`` (ids the group carries),
    ``members``, ``members_applied``, ``members_in_error``, ``members_pending``, ``errors_by_code``
    ({code: members}), ``nested_groups``, ``members_in_error_sample`` (bounded list of
    ``{id, user_principal_name, errors}``), ``members_pending_sample`` (ids), ``done``.
    """
    group_id = facts.group_id
    sku_ids = sorted(facts.assigned_licenses)
    counts = {"applied": 0, "error": 0, "pending": 0}
    errors_by_code = {}
    in_error_sample, pending_sample, error_ids = [], [], []
    for user in user_members:
        status = member_status(user, group_id, sku_ids)
        counts[status] += 1
        user_id = normalize_guid(user["id"], "user id", error=LicensingInputError)
        if status == "error":
            codes = member_error_codes(user, group_id)
            error_ids.append(user_id)
            for code in codes:
                errors_by_code[code] = errors_by_code.get(code, 0) + 1
            if len(in_error_sample) < SAMPLE_SIZE:
                in_error_sample.append({"id": user_id, "user_principal_name": user.get("userPrincipalName"), "errors": codes})
        elif status == "pending" and len(pending_sample) < SAMPLE_SIZE:
            pending_sample.append(user_id)
    members = sum(counts.values())
    done = processing_state_done(facts.processing_state) and counts["pending"] == 0
    return {
        "id": group_id,
        "display_name": facts.display_name,
        "processing_state": facts.processing_state,
        "skus": sku_ids,
        "members": members,
        "members_applied": counts["applied"],
        "members_in_error": counts["error"],
        "members_pending": counts["pending"],
        "errors_by_code": errors_by_code,
        "nested_groups": int(nested_groups),
        "members_in_error_sample": in_error_sample,
        "members_pending_sample": pending_sample,
        "member_ids_in_error": error_ids,
        "done": done,
    }


CONFIRM_WAIT = 1.0  # seconds before the read that confirms a group found done on the first read of a wait


class ProcessingWaiter:
    """Poll ``read_progress(group_id) -> progress dict`` until every group is ``done`` or time runs out.

    The interval starts at ``poll_interval`` and grows by ``backoff`` per round up to
    ``max_interval``; a sleep never runs past the deadline, and the groups are always read at
    least once (also with ``timeout`` 0). Groups already done are not read again.

    ``timeout`` is the whole wait's: it counts from ``started`` (a ``clock()`` value; by default
    when the waiter is made), and every ``wait()`` ends by that one deadline, so a second wait
    (after reprocessing) has only what is left.
    """

    def __init__(self, read_progress, timeout, poll_interval=5.0, max_interval=60.0, backoff=1.5, clock=None, sleep=None, started=None):
        self.read_progress = read_progress
        self.timeout = float(timeout)
        self.poll_interval = max(float(poll_interval), 0.0)
        self.max_interval = max(float(max_interval), self.poll_interval)
        self.backoff = max(float(backoff), 1.0)
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.deadline = (self.clock() if started is None else started) + self.timeout
        self.polls = 0

    def wait(self, group_ids, previous=None):
        """``(progress by group id, timed_out)``; ``previous`` progress of done groups is kept as is."""
        progress = dict(previous or {})
        waiting = [group_id for group_id in group_ids if not (group_id in progress and progress[group_id]["done"])]
        deadline = self.deadline
        interval = self.poll_interval
        unconfirmed = list(waiting)
        while True:
            self.polls += 1
            for group_id in waiting:
                progress[group_id] = self.read_progress(group_id)
            waiting = [group_id for group_id in waiting if not progress[group_id]["done"]]
            if not waiting and unconfirmed:
                # Done on the first read: Graph's reads are eventually consistent, and a read older than a license
                # change just made shows the group as it was (null state, no license: "done"). One more read after
                # a short wait confirms it (graph-api.md 5); a group still waiting is polled as usual.
                confirm = [group_id for group_id in unconfirmed if progress[group_id]["done"]]
                unconfirmed = []
                remaining = deadline - self.clock()
                if confirm and remaining > 0:
                    self.sleep(min(CONFIRM_WAIT, self.poll_interval, remaining))
                    waiting = confirm
                    continue
            unconfirmed = []
            if not waiting:
                return progress, False
            remaining = deadline - self.clock()
            if remaining <= 0:
                return progress, True
            self.sleep(min(interval, remaining))
            interval = min(interval * self.backoff, self.max_interval)


# ------------------------------------------------------------------------- the module's run


def read_progress(client, group_id):
    """One poll of one group: the group's facts and its direct members' license states."""
    group = get_group(client, group_id)
    if group is None:
        raise GraphError("group %s disappeared while waiting for it" % group_id, status=404)
    # One member at a time (a page in memory, not the group): 100,000 members with their states are ~200 MB as a list.
    nested = []
    progress = group_progress(GroupFacts.from_graph(group), iter_user_members(iter_direct_members(client, group_id, select=MEMBER_SELECT), nested))
    progress["nested_groups"] = len(nested)
    return progress


def other_users_in_error(client, progress):
    """Users in membersWithLicenseErrors who are not counted among the members in error."""
    counted = set(progress["member_ids_in_error"])
    return sum(
        1
        for user in members_with_license_errors(client, progress["id"], select=("id",))
        if normalize_guid(user["id"], error=LicensingInputError) not in counted
    )


def public(progress, reprocessed, others):
    shown = dict((key, value) for key, value in progress.items() if key != "member_ids_in_error")
    shown["reprocessed"] = reprocessed
    shown["other_users_in_error"] = others
    return shown


def run_license_processing_wait(module):
    """Run the license_processing_wait task of ``module`` (a GraphModule with its options); exits or fails it."""
    params = module.params
    _check_options(module, params)
    started = time.monotonic()
    client = module.client
    try:
        groups = _groups(module, client, params["groups"])
        group_ids = [group_id for group_id, dummy in groups]
        membership, membership_timed_out, membership_polls = wait_for_membership(module, client, groups)
        if membership_timed_out and params["fail_on_timeout"]:
            module.fail_json(
                msg="timed out after %ss waiting for the membership of the groups before license processing: %s"
                % (params["membership_timeout"], describe_unsettled(membership)),
                membership=membership,
                timed_out=True,
                elapsed=round(time.monotonic() - started, 3),
                polls=membership_polls,
                groups=[],
            )
        waiter = ProcessingWaiter(
            lambda group_id: read_progress(client, group_id),
            timeout=0 if membership_timed_out else params["wait_timeout"],
            poll_interval=params["poll_interval"],
            max_interval=params["max_poll_interval"],
        )
        waiter.polls = membership_polls
        progress, timed_out = waiter.wait(group_ids)
        timed_out = timed_out or membership_timed_out
        kinds = dict((group_id, group_kind(group)) for group_id, group in groups)
        for group_id in group_ids:
            progress[group_id]["kind"] = kinds[group_id]
        reprocessed = dict((group_id, 0) for group_id in group_ids)
        changed = False
        if params["reprocess_errors"] and not timed_out:
            changed, progress, timed_out = _reprocess(module, client, waiter, group_ids, progress, reprocessed)
        others = dict((group_id, other_users_in_error(client, progress[group_id])) for group_id in group_ids)
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot read the license processing of %s" % ", ".join(params["groups"]))
    result = dict(
        changed=changed,
        timed_out=timed_out,
        elapsed=round(time.monotonic() - started, 3),
        polls=waiter.polls,
        groups=[public(progress[group_id], reprocessed[group_id], others[group_id]) for group_id in group_ids],
        membership=membership,
    )
    _fail_unless_done(module, params, [progress[group_id] for group_id in group_ids], timed_out, result)
    module.exit_json(**result)


def _expected_users(module, client):
    """``{id: userPrincipalName}`` of the users expected_members and expected_members_from_direct_sku name (fails on unknown ones)."""
    params = module.params
    expected = {}
    if params["expected_members"]:
        try:
            found, unknown = resolve_users(client, params["expected_members"])
        except DirectoryInputError as exc:
            module.fail_json(msg="expected_members: %s" % exc)
        if unknown:
            module.fail_json(msg="expected_members: %d user(s) not found: %s" % (len(unknown), ", ".join(repr(key) for key in unknown)))
        expected.update((item["id"], item["user_principal_name"]) for item in found.values())
    if params["expected_members_from_direct_sku"]:
        try:
            sku_id = read_sku_catalog(client).resolve_sku(params["expected_members_from_direct_sku"])
        except LicensingInputError as exc:
            module.fail_json(msg="expected_members_from_direct_sku: %s" % exc)
        expected.update((item["id"], item["user_principal_name"]) for item in direct_sku_holders(client, sku_id))
    return expected


def _joinable(client, expected):
    """``(ids of the expected users who can join an on-premises group, cannot_join entries)``."""
    ids = sorted(expected)
    if len(ids) <= 1000:
        users = [user for dummy, user in iter_users_by_key(client, ids, select=ONPREM_USER_PROPERTIES) if user is not None]
    else:
        wanted = set(ids)
        users = [
            user for user in client.get_all("/users", params={"$select": ",".join(ONPREM_USER_PROPERTIES), "$top": PAGE_SIZE}) if user["id"].lower() in wanted
        ]
    joinable, cannot_join = onprem_join(users)
    return set(user["id"].lower() for user in joinable), cannot_join


def wait_for_membership(module, client, groups):
    """Wait for what each kind of group needs before license processing (membership_wait.py): ``(results, timed_out, polls)``.

    Dynamic groups: their rule evaluated. Synced groups: the expected users who can join synced from on-premises.
    """
    params = module.params
    kinds = [group_kind(group) for dummy, group in groups]
    expected, joinable, cannot_join = {}, None, []
    if SYNCED in kinds and (params["expected_members"] or params["expected_members_from_direct_sku"]):
        expected = _expected_users(module, client)
        joinable, cannot_join = _joinable(client, expected)
    specs = []
    for (group_id, group), kind in zip(groups, kinds):
        specs.append(
            {
                "id": group_id,
                "display_name": group.get("displayName"),
                "kind": kind,
                "tree": parse_or_none(group.get("membershipRule")) if kind == DYNAMIC else None,
                "paused": group.get("membershipRuleProcessingState") == "Paused",
                "expected": joinable if kind == SYNCED else None,
            }
        )
    if not any(spec["kind"] == DYNAMIC or spec["expected"] is not None for spec in specs):
        return [], False, 0
    reader = GraphMembershipReader(client, use_beta=params["use_beta"])
    waiter = MembershipWaiter(
        reader, params["membership_timeout"], poll_interval=params["poll_interval"], max_interval=params["max_poll_interval"], labels=expected
    )
    try:
        results, timed_out = waiter.wait(specs)
    except MembershipFailed as exc:
        module.fail_json(msg="Entra could not evaluate the membership rule of a dynamic group: %s" % exc)
    for result in results:
        if result["kind"] == SYNCED and joinable is not None:
            result["cannot_join"] = len(cannot_join)
            result["cannot_join_sample"] = cannot_join[:SAMPLE_SIZE]
        if result.get("source") == "paused":
            module.warn("dynamic group %s has its membership processing paused: its members are taken as they stand" % result["display_name"])
    return results, timed_out, waiter.polls


def _check_options(module, params):
    if params["membership_timeout"] < 0:
        module.fail_json(msg="membership_timeout must be 0 or a positive number of seconds, got %s" % params["membership_timeout"])
    for option in ("wait_timeout", "poll_interval", "max_poll_interval"):
        if params[option] < 0 or (option != "wait_timeout" and params[option] == 0):
            module.fail_json(msg="%s must be a positive number of seconds, got %s" % (option, params[option]))
    if not params["groups"]:
        module.fail_json(msg="groups is empty: expected at least one group name or object id")


def _groups(module, client, names):
    """``[(id, group)]`` of the named groups, each once, in order; fails the task naming a group that does not exist."""
    groups = []
    for name in names:
        try:
            group = find_group(client, name, require_licensable=False)
        except DirectoryInputError as exc:
            module.fail_json(msg=str(exc))
        if group is None:
            module.fail_json(msg="group %r: no group has this object id or display name; expected an existing group" % name)
        group_id = normalize_guid(group["id"], error=LicensingInputError)
        if group_id not in [known for known, dummy in groups]:
            groups.append((group_id, group))
    return groups


def _reprocess(module, client, waiter, group_ids, progress, reprocessed):
    """Reprocess the members in error (``reprocessed`` counts them per group) and wait again: ``(changed, progress, timed_out)``."""
    for group_id in group_ids:
        reprocessed[group_id] = len(progress[group_id]["member_ids_in_error"])
    # Each user once, in order, though in error in several groups.
    in_error = list(dict.fromkeys(user_id for group_id in group_ids for user_id in progress[group_id]["member_ids_in_error"]))
    if not in_error or module.check_mode:
        return False, progress, False
    dummy, errors = reprocess_users(client, in_error)
    if errors:
        module.warn("reprocessLicenseAssignment failed for %d user(s), first: %s" % (len(errors), errors[0]["error"]))
    # Every group is read again: reprocessing re-evaluates all of a user's groups.
    progress, timed_out = waiter.wait(group_ids)
    return True, progress, timed_out


def _fail_unless_done(module, params, groups, timed_out, result):
    if timed_out and params["fail_on_timeout"]:
        pending = [
            "%s: %s, %d of %d member(s) pending" % (item["display_name"], item["processing_state"], item["members_pending"], item["members"])
            for item in groups
            if not item["done"]
        ]
        module.fail_json(msg="timed out after %ss waiting for license processing (%s)" % (params["wait_timeout"], "; ".join(pending)), **result)
    in_error = [item for item in groups if item["members_in_error"]]
    if in_error and params["fail_on_member_errors"] and not timed_out:
        details = "; ".join("%s: %d member(s) in error %s" % (item["display_name"], item["members_in_error"], item["errors_by_code"]) for item in in_error)
        module.fail_json(
            msg="license processing left members in error (%s). Fix the cause (units, usage location, conflicting plans), "
            "then rerun with reprocess_errors=true, or set fail_on_member_errors=false" % details,
            **result,
        )
