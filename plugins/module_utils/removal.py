# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The removal engine: take direct assignments away only where the safety rule holds, and put them back.

Per chunk of rows (one row per user per chunk):

1. fresh read of every user (licenseAssignmentStates + direct memberOf) and of every group
   involved, in $batch; re-classify with licensing.classify (a plan file is never trusted);
2. for each ``safe_to_remove`` row: journal intent (fsynced), then one $batch of
   ``assignLicense {addLicenses: [], removeLicenses: [sku]}``;
3. journal each result; items whose outcome is unknown (5xx, lost connection) are never re-sent:
   the re-read decides whether they were applied;
4. re-read users and groups; if any plan the user had before is no longer durably provided
   (healthy, direct-member, still-assigned sources), put the direct assignment back at once
   with the same disabledPlans and report the row as failed.

Restores (``restore``) add the direct assignment back with the journaled disabledPlans, after a
read shows it is missing, and journal ``ok`` or ``skipped``.
"""

from __future__ import absolute_import, division, print_function

import time

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.directory import GROUP_SELECT, PAGE_SIZE, USER_SELECT
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    INHERITED_ONLY,
    SAFE_TO_REMOVE,
    VERDICTS,
    GroupFacts,
    classify,
    direct_entry,
    effective_enabled_plans,
    is_healthy_entry,
    lost_plans,
    sorted_plan_names,
    user_assignment_states,
    user_not_found_record,
)

# skipped_by_verdict key for a row whose user holds the SKU in no way (not a DESIGN verdict: nothing to classify).
NOT_HELD = "not_held"
# failures[].kind: what went wrong, for callers that must not parse the reason text.
SERVICE_LOSS = "service_loss"  # the removal was applied and the user lacked a plan afterwards (put back, or not)
GRAPH_ERROR = "graph_error"  # Graph refused the write with a definite error
OUTCOME_UNKNOWN = "outcome_unknown"  # no definite answer and the re-read shows the write not applied
USAGE_LOCATION_MISSING = "usage_location_missing"  # a restore of a user without usage location, none to give them
FAILURE_KINDS = (SERVICE_LOSS, GRAPH_ERROR, OUTCOME_UNKNOWN, USAGE_LOCATION_MISSING)
ROWS_PER_CHUNK = 10  # two reads per user: 20 items, one $batch request
# Removal chunks grow from ROWS_PER_CHUNK to MAX_ROWS_PER_CHUNK while chunks go clean, and fall back to
# ROWS_PER_CHUNK after any failure. Each chunk costs about five round trips (read, groups, write,
# re-read, groups): with 10 rows at ~100 ms per trip the engine cannot reach Graph's 20 writes/s, with
# 50 it can (benchmarks/README.md). Starting small keeps the first writes of a run, and those after a
# failure, to 10 users; the fresh read stays a couple of seconds at most before the write it checks.
MAX_ROWS_PER_CHUNK = 50
SAMPLE_SIZE = 100
# Graph's directory is eventually consistent (graph-api.md 5): a read right after a write may not show it yet. A
# removal Graph accepted (2xx) is judged on a read that shows it, re-read with a growing wait for at most this long.
SETTLE_SECONDS = 30.0
# A removal without a definite answer may or may not have been applied: a read that still shows the direct
# assignment is believed after this long (the row then fails as "not applied", never re-sent).
UNKNOWN_SETTLE_SECONDS = 3.0
SETTLE_FIRST_WAIT = 0.1
SETTLE_MAX_WAIT = 2.0


def max_failures_message(failures, max_failures):
    """Why a run stopped: more failed rows than ``max_failures`` (the engine's ``failures``, the first one named)."""
    return (
        "Stopped after %d failure(s), more than max_failures=%d; the direct assignments of failed rows are in place "
        "(or listed in the journal to restore). First: %s" % (len(failures), max_failures, failures[0]["reason"])
    )


class MaxFailuresExceeded(Exception):
    """Raised internally to stop the run once failures exceed max_failures."""


def durable_enabled_plans(user, catalog, groups, direct_member_of):
    """``{sku_id: plan ids}`` the user keeps once Entra has processed every pending change.

    Direct healthy entries count; an inherited entry counts only while the user is a direct
    member of its group and the group still assigns the SKU (with the group's current disabled
    plans added), because Entra removes the others at its next processing.
    """
    durable = {}
    for entry in user_assignment_states(user):
        if not is_healthy_entry(entry) or entry["sku_id"] not in catalog:
            continue
        disabled = entry["disabled_plans"]
        if entry["group_id"] is not None:
            group = groups.get(entry["group_id"])
            if group is None or entry["group_id"] not in direct_member_of or not group.carries(entry["sku_id"]):
                continue
            disabled = disabled | group.assigned_licenses[entry["sku_id"]]
        enabled = catalog.user_plan_ids(entry["sku_id"]) - disabled
        durable[entry["sku_id"]] = durable.get(entry["sku_id"], frozenset()) | enabled
    return durable


class Snapshot:
    """One fresh read: users by id, their direct group ids, and facts of the groups involved."""

    def __init__(self):
        self.users = {}
        self.direct_member_of = {}
        self.groups = {}
        self.missing = set()


class RemovalEngine:
    """Runs removals and restores for one module run; accumulates the module's result fields.

    ``removed`` and ``restored`` hold the first SAMPLE_SIZE entries (all of them with ``keep_all``);
    ``removed_total`` and ``restored_total`` count them all.
    """

    def __init__(
        self,
        client,
        catalog,
        journal=None,
        trusted_groups=None,
        allow_service_loss=False,
        max_failures=0,
        check_mode=False,
        transitive_of=None,
        licensed_group_ids=None,
        restore_usage_location=None,
        keep_all=False,
    ):
        self.client = client
        # Country code given to a user without usage location before a direct assignment is put back (None: never).
        self.restore_usage_location = restore_usage_location
        self.catalog = catalog
        self.journal = journal
        self.trusted_groups = frozenset(trusted_groups) if trusted_groups is not None else None
        self.allow_service_loss = allow_service_loss
        self.max_failures = max_failures
        self.check_mode = check_mode
        self.transitive_of = transitive_of or (lambda user_id: frozenset())
        self.licensed_group_ids = frozenset(licensed_group_ids or ())
        # Counts, and the first SAMPLE_SIZE entries (every entry with keep_all, for a diff): memory stays flat in
        # the number of rows a run removes (100,000 in one task) instead of holding an entry per removal.
        self.keep_all = keep_all
        self.removed = []
        self.removed_total = 0
        self.restored = []
        self.restored_total = 0
        self.failures = []
        self.skipped_by_verdict = dict((verdict, 0) for verdict in VERDICTS)
        self.skipped_sample = []
        self.reconciled = []
        self.stopped = False
        pacer = getattr(client, "pacer", None)
        if pacer is not None and getattr(pacer, "rate", 0):
            # the refill earned while a chunk is read and re-read is spent on the next chunk's writes
            pacer.ensure_burst(MAX_ROWS_PER_CHUNK)

    # ------------------------------------------------------------------ reads

    def read(self, user_ids, extra_group_ids=()):
        """Fresh Snapshot of users (+ memberOf) and of the groups their entries or memberships name."""
        snapshot = Snapshot()
        requests = []
        for user_id in user_ids:
            requests.append({"method": "GET", "url": "/users/%s?$select=%s" % (user_id, ",".join(USER_SELECT))})
            requests.append({"method": "GET", "url": "/users/%s/memberOf?$select=id&$top=%d" % (user_id, PAGE_SIZE)})
        results = self.client.batch(requests)
        for position, user_id in enumerate(user_ids):
            user_result, member_result = results[2 * position], results[2 * position + 1]
            if user_result.status == 404:
                snapshot.missing.add(user_id)
                continue
            for result in (user_result, member_result):
                if not result.ok:
                    raise result.error()
            snapshot.users[user_id] = user_result.body
            snapshot.direct_member_of[user_id] = self._member_group_ids(user_id, member_result.body)
        group_ids = set(extra_group_ids)
        for user_id, user in snapshot.users.items():
            group_ids.update(entry["group_id"] for entry in user_assignment_states(user) if entry["group_id"])
            group_ids.update(snapshot.direct_member_of[user_id] & self.licensed_group_ids)
        group_ids = sorted(group_ids)
        group_results = self.client.batch([{"method": "GET", "url": "/groups/%s?$select=%s" % (group_id, GROUP_SELECT)} for group_id in group_ids])
        for group_id, result in zip(group_ids, group_results):
            if result.ok:
                snapshot.groups[group_id] = GroupFacts.from_graph(result.body)
            elif result.status != 404:
                raise result.error()
        return snapshot

    def read_settled(self, user_ids, removed):
        """read(), re-reading the users of ``removed`` ({user_id: (sku_id, seconds)}, removals sent) until a read shows
        the direct assignment gone, waiting longer each time, for at most their seconds: a read from a replica that
        has not seen the write yet must not be taken for the state after it (the loss check compares with it)."""
        snapshot = self.read(user_ids)
        started, wait = time.monotonic(), SETTLE_FIRST_WAIT

        def lagging(ids, seen):
            return [
                user_id
                for user_id in ids
                if user_id not in seen.missing
                and direct_entry(seen.users[user_id], removed[user_id][0]) is not None
                and time.monotonic() - started + wait <= removed[user_id][1]
            ]

        waiting = lagging([user_id for user_id in user_ids if user_id in removed], snapshot)
        while waiting:
            time.sleep(wait)
            wait = min(wait * 2, SETTLE_MAX_WAIT)
            again = self.read(waiting)
            for user_id in waiting:
                if user_id in again.missing:
                    snapshot.users.pop(user_id, None)
                    snapshot.missing.add(user_id)
                else:
                    snapshot.users[user_id] = again.users[user_id]
                    snapshot.direct_member_of[user_id] = again.direct_member_of[user_id]
            snapshot.groups.update(again.groups)
            waiting = lagging(waiting, again)
        return snapshot

    def _member_group_ids(self, user_id, page):
        ids = set()
        while True:
            for item in (page or {}).get("value") or []:
                if str(item.get("@odata.type") or "").lower().endswith(".group"):
                    ids.add(item["id"].lower())
            next_link = (page or {}).get("@odata.nextLink")
            if not next_link:
                return frozenset(ids)
            page = self.client.get(next_link)

    def classify_row(self, row, snapshot):
        user_id = row["user_id"]
        if user_id in snapshot.missing:
            return user_not_found_record(user_id, row["sku_id"], row.get("sku_part_number"))
        return classify(
            snapshot.users[user_id],
            row["sku_id"],
            self.catalog,
            snapshot.groups,
            snapshot.direct_member_of[user_id],
            self.transitive_of(user_id),
            trusted_groups=self.trusted_groups,
            allow_service_loss=self.allow_service_loss,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _skip(self, row, record):
        # No record: the user holds the SKU in no way (neither directly nor from a group).
        verdict = record["verdict"] if record else NOT_HELD
        self.skipped_by_verdict[verdict] = self.skipped_by_verdict.get(verdict, 0) + 1
        if len(self.skipped_sample) < SAMPLE_SIZE:
            self.skipped_sample.append(
                {
                    "user": _label(row, record),
                    "user_id": row["user_id"],
                    "sku": row.get("sku_part_number") or row["sku_id"],
                    "verdict": verdict,
                    "plans_lost": (record or {}).get("plans_lost", []),
                    "reason": (record or {}).get("reason", "the user no longer holds this SKU"),
                }
            )

    def skip_users_not_found(self, keys):
        """Count, and name every one of, the users a task named that Graph does not know (no row was made for them)."""
        for key in keys:
            self.skipped_by_verdict["user_not_found"] += 1
            self.skipped_sample.append(
                {"user": key, "user_id": None, "sku": None, "verdict": "user_not_found", "plans_lost": [], "reason": "user %r was not found" % key}
            )

    def _removed(self, row, record):
        self.removed_total += 1
        if self.keep_all or len(self.removed) < SAMPLE_SIZE:
            self.removed.append(_removed_entry(row, record))

    def _restored(self, entry):
        self.restored_total += 1
        if self.keep_all or len(self.restored) < SAMPLE_SIZE:
            self.restored.append(entry)

    def _fail(self, row, kind, reason, status=None):
        self.failures.append(
            {
                "user": row.get("user_principal_name") or row["user_id"],
                "user_id": row["user_id"],
                "sku": row.get("sku_part_number") or row["sku_id"],
                "kind": kind,
                "reason": reason,
                "status": status,
            }
        )
        if len(self.failures) > self.max_failures:
            self.stopped = True
            raise MaxFailuresExceeded()

    # ------------------------------------------------------------------ earlier runs

    def reconcile_pending(self, states):
        """Settle the writes an earlier run journaled without a result (it was killed mid-write).

        ``states``: journal.journal_state() values of the run's journal. Each pending removal or
        restore is decided from a fresh read of the user (a removal was applied when the direct
        assignment is gone, a restore when it is in place), reported in ``reconciled`` as
        ``applied`` or ``not_applied`` and, outside check mode, recorded in the journal with
        ``Journal.reconcile`` so no intent stays without a result: ``ok`` when applied; a removal not
        applied (yet) stays ``unknown``, a restore not applied is ``failed``. A removal not applied is
        simply removed again below if still safe.
        """
        pending = [state for state in states if state["pending"] and state["op"] in ("remove_direct", "restore_direct")]
        for offset in range(0, len(pending), ROWS_PER_CHUNK):
            chunk = pending[offset : offset + ROWS_PER_CHUNK]
            snapshot = self.read(sorted(set(state["user_id"] for state in chunk)))
            for state in chunk:
                self._reconcile_one(state, snapshot.users.get(state["user_id"]))
        return self

    def _reconcile_one(self, state, user):
        direct_in_place = user is not None and direct_entry(user, state["sku_id"]) is not None
        applied = not direct_in_place if state["op"] == "remove_direct" else direct_in_place
        if self.journal is not None and not self.check_mode:
            seen = (
                "the user no longer exists" if user is None else ("the direct assignment is in place" if direct_in_place else "the direct assignment is gone")
            )
            detail = "left pending by an earlier run; a fresh read shows %s" % seen
            if applied:
                self.journal.reconcile(state["op_id"], "ok", detail=detail)
            elif state["op"] == "remove_direct":
                # Like a lost answer in this run: a write the killed run sent may still land, so the removal stays
                # "unknown" (restorable); a restore reads the user first and skips it while the assignment is in place.
                self.journal.reconcile(state["op_id"], "unknown", error="NotAppliedByInterruptedRun", detail=detail)
            else:
                self.journal.reconcile(state["op_id"], "failed", error="NotAppliedByInterruptedRun", detail=detail)
        self.reconciled.append(
            {
                "user": state["user_principal_name"] or state["user_id"],
                "user_id": state["user_id"],
                "sku": state["sku_part_number"] or state["sku_id"],
                "op_id": state["op_id"],
                "outcome": "applied" if applied else "not_applied",
            }
        )

    # ------------------------------------------------------------------ removal

    def remove(self, rows):
        """Remove the direct assignments of ``rows`` (dicts with user_id, sku_id, optional batch/UPN/part number) where safe."""
        sizer = ChunkSizer()
        try:
            for chunk in _chunks_one_row_per_user(rows, sizer.next_size):
                failures_before = len(self.failures)
                self._remove_chunk(chunk)
                sizer.after_chunk(clean=len(self.failures) == failures_before)
        except MaxFailuresExceeded:
            pass
        return self

    def _remove_chunk(self, chunk):
        snapshot = self.read([row["user_id"] for row in chunk])
        safe = []
        for row in chunk:
            record = self.classify_row(row, snapshot)
            if record is None or record["verdict"] != SAFE_TO_REMOVE:
                self._skip(row, record)
                continue
            row = dict(row, user_principal_name=record["user_principal_name"] or row.get("user_principal_name"), sku_part_number=record["sku_part_number"])
            safe.append((row, record))
        if not safe:
            return
        if self.check_mode:
            for row, record in safe:
                self._removed(row, record)
            return
        before = dict((row["user_id"], effective_enabled_plans(snapshot.users[row["user_id"]], self.catalog)) for row, dummy in safe)
        op_ids = [
            self.journal.intent(
                "remove_direct",
                row["user_id"],
                row["user_principal_name"],
                row["sku_id"],
                row["sku_part_number"],
                record["direct_disabled_plans"],
                batch=row.get("batch"),
            )
            for row, record in safe
        ]
        results = self.client.batch(
            [
                {"method": "POST", "url": "/users/%s/assignLicense" % row["user_id"], "body": {"addLicenses": [], "removeLicenses": [row["sku_id"]]}}
                for row, dummy in safe
            ]
        )
        # A 400 is re-read too: the read that judged the row may have been older than a removal already applied
        # (an earlier run's), and Graph then refuses this one because the direct assignment is gone.
        sent = dict(
            (row["user_id"], (row["sku_id"], SETTLE_SECONDS if result.ok else UNKNOWN_SETTLE_SECONDS))
            for (row, dummy), result in zip(safe, results)
            if result.ok or result.outcome_unknown or result.status == 400
        )
        try:
            after = self.read_settled([row["user_id"] for row, dummy in safe], sent)
        except Exception:
            # Without the re-read nothing can be verified: journal what Graph said so the journal stays
            # complete (unknown outcomes stay "unknown"; a restore reads the user before acting).
            for op_id, result in zip(op_ids, results):
                self._journal_raw_outcome(op_id, result)
            raise
        # Every row of the chunk is settled (journaled, loss-checked, put back if need be) before the failure
        # budget may stop the run: Graph runs a $batch's items in any order, so a row after a failed one may
        # have been removed, and it must not be left unverified with its intent open.
        exceeded = False
        for (row, record), op_id, result in zip(safe, op_ids, results):
            try:
                self._settle_removal(row, record, op_id, result, before[row["user_id"]], after)
            except MaxFailuresExceeded:
                exceeded = True
        if exceeded:
            raise MaxFailuresExceeded()

    def _journal_raw_outcome(self, op_id, result):
        if result.ok:
            self.journal.result(op_id, "ok", request_id=_request_id(result), status=result.status, detail="not verified: the re-read failed")
        elif result.outcome_unknown:
            self.journal.result(op_id, "unknown", request_id=_request_id(result), status=result.status, detail="the re-read failed")
        else:
            error = result.error()
            self.journal.result(op_id, "failed", request_id=_request_id(result), status=result.status, error=error.code, detail=error.message)

    def _settle_removal(self, row, record, op_id, result, before, after):
        user_id, sku_id = row["user_id"], row["sku_id"]
        request_id = _request_id(result)
        user = after.users.get(user_id)
        still_direct = user is not None and direct_entry(user, sku_id) is not None
        if result.status == 400 and user is not None and not still_direct:
            # Refused, and a read since shows no direct assignment: it was already gone (removed by an earlier run whose
            # removal the judging read did not show yet). The loss check below still decides whether the user is covered.
            error = result.error()
            result = _AlreadyRemoved(result, "Graph refused the removal (%s: %s) and a read since shows it already gone" % (error.code, error.message))
        if not result.ok and not result.outcome_unknown:
            error = result.error()
            self.journal.result(op_id, "failed", request_id=request_id, status=result.status, error=error.code, detail=error.message)
            self._fail(row, GRAPH_ERROR, "Graph refused the removal: %s" % error, status=result.status)
            return
        if still_direct and result.ok:
            # Graph accepted it, yet no read within SETTLE_SECONDS shows it: not verified, so not counted as removed
            # (restorable: a restore reads the user first and puts the assignment back only if it is gone).
            detail = "Graph accepted the removal (%s) but reads still show the direct assignment after %d s" % (result.status, SETTLE_SECONDS)
            self.journal.result(op_id, "unknown", request_id=request_id, status=result.status, error="AcceptedNotVisible", detail=detail)
            self._fail(row, OUTCOME_UNKNOWN, "Graph accepted the removal but it was not visible in reads within %d s; not verified" % SETTLE_SECONDS)
            return
        if still_direct:
            # Unknown outcome and the direct copy is still there: not applied yet. Never re-sent here. A request the
            # client gave up on (timeout, dropped reply) may still land after this re-read, so the journal keeps the
            # removal "unknown" (restorable): a restore reads the user first and puts it back only if it is gone.
            detail = "outcome unknown (%s); the re-read shows the direct assignment still in place (a late write may still land)" % result.status
            self.journal.result(op_id, "unknown", request_id=request_id, status=result.status, error="OutcomeUnknownNotApplied", detail=detail)
            self._fail(
                row, OUTCOME_UNKNOWN, "the removal got no definite answer and was not applied; it was not re-sent (run again to retry)", status=result.status
            )
            return
        lost = self._loss_after(row, record, before, after)
        if not lost and isinstance(result, _AlreadyRemoved):
            # Not this run's removal: counted as already migrated (inherited only), not as removed.
            self.journal.result(op_id, "ok", request_id=request_id, status=result.status, detail=result.detail)
            self._skip(row, dict(record, verdict=INHERITED_ONLY, reason="the direct assignment was already gone (removed by an earlier run)"))
            return
        if not lost:
            detail = None if result.ok else "outcome unknown (%s); the re-read shows the removal applied" % result.status
            self.journal.result(op_id, "ok", request_id=request_id, status=result.status, detail=detail)
            if not result.ok:
                self.reconciled.append(
                    {"user": row["user_principal_name"] or user_id, "user_id": user_id, "sku": row["sku_part_number"], "op_id": op_id, "outcome": "applied"}
                )
            self._removed(row, record)
            return
        names = dict((self.catalog.label(lost_sku), self.catalog.plan_names(lost_sku, plans)) for lost_sku, plans in lost.items())
        restored = self._put_back(row, record["direct_disabled_plans"], after.users.get(user_id))
        if restored:
            self.journal.result(
                op_id, "rolled_back", request_id=request_id, status=result.status, detail="plans lost after the removal: %s; direct assignment put back" % names
            )
        else:
            self.journal.result(
                op_id,
                "ok",
                request_id=request_id,
                status=result.status,
                detail="plans lost after the removal: %s; putting the direct assignment back FAILED" % names,
            )
        self._fail(
            row,
            SERVICE_LOSS,
            "after the removal the user lacked %s; the direct assignment was %s"
            % (names, "put back with the same disabled plans" if restored else "NOT put back: restore it from the journal"),
        )

    def _loss_after(self, row, record, before, after):
        """Plans the user had before the write that are no longer durably provided (``{sku_id: plans}``)."""
        user_id = row["user_id"]
        user = after.users.get(user_id)
        if user is None:
            return {row["sku_id"]: before.get(row["sku_id"], frozenset())}
        durable = durable_enabled_plans(user, self.catalog, after.groups, after.direct_member_of.get(user_id, frozenset()))
        expected = dict(before)
        if self.allow_service_loss and row["sku_id"] in expected:
            # The operator accepted losing exactly the plans the rule reported, nothing more.
            accepted = set(self.catalog.resolve_plans(row["sku_id"], record["plans_lost"])) if record["plans_lost"] else set()
            expected[row["sku_id"]] = frozenset(expected[row["sku_id"]]) - accepted
        return lost_plans(expected, durable)

    def _put_back(self, row, disabled_plans, user=None):
        location = self._location_to_set(user)
        op_id = self.journal.intent(
            "restore_direct",
            row["user_id"],
            row.get("user_principal_name"),
            row["sku_id"],
            row.get("sku_part_number"),
            disabled_plans,
            batch=row.get("batch"),
            extra=_location_extra(location),
        )
        return self._send_restore(row, disabled_plans, op_id, location) is None

    def _location_to_set(self, user):
        """The usage location to give ``user`` before a direct assignment: None when they have one (or none is to be given)."""
        if user is None or user.get("usageLocation"):
            return None
        return self.restore_usage_location

    def _set_usage_location(self, row, location, op_id):
        """PATCH the user's usageLocation; None when done, else the failure kind (the restore's journal line says why)."""
        result = self.client.batch([{"method": "PATCH", "url": "/users/%s" % row["user_id"], "body": {"usageLocation": location}}])[0]
        if result.ok:
            return None
        error = result.error()
        # The license was not sent: the restore did not happen, whatever became of the usage location.
        self.journal.result(
            op_id,
            "failed",
            request_id=_request_id(result),
            status=result.status,
            error=error.code,
            detail="setting the usage location to %s before the restore failed: %s" % (location, error.message),
        )
        return OUTCOME_UNKNOWN if result.outcome_unknown else GRAPH_ERROR

    def _send_restore(self, row, disabled_plans, op_id, usage_location=None):
        """None when the direct assignment is in place afterwards, else the failure kind (GRAPH_ERROR or OUTCOME_UNKNOWN).

        ``usage_location``: first give the user this usage location (they have none; a direct assignment needs one).
        """
        if usage_location:
            kind = self._set_usage_location(row, usage_location, op_id)
            if kind is not None:
                return kind
        body = {"addLicenses": [{"skuId": row["sku_id"], "disabledPlans": list(disabled_plans)}], "removeLicenses": []}
        result = self.client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % row["user_id"], "body": body}])[0]
        request_id = _request_id(result)
        if result.ok:
            self.journal.result(
                op_id, "ok", request_id=request_id, status=result.status, detail="usage location set to %s first" % usage_location if usage_location else None
            )
            return None
        if result.outcome_unknown:
            # Adding is idempotent in effect, but the rule stays "re-read, never re-send blindly".
            check = self.read([row["user_id"]])
            user = check.users.get(row["user_id"])
            if user is not None and direct_entry(user, row["sku_id"]) is not None:
                self.journal.result(
                    op_id, "ok", request_id=request_id, status=result.status, detail="outcome unknown; the re-read shows the direct assignment in place"
                )
                return None
            self.journal.result(op_id, "unknown", request_id=request_id, status=result.status, detail="outcome unknown; the re-read shows no direct assignment")
            return OUTCOME_UNKNOWN
        error = result.error()
        self.journal.result(op_id, "failed", request_id=request_id, status=result.status, error=error.code, detail=error.message)
        return GRAPH_ERROR

    # ------------------------------------------------------------------ restore

    def restore(self, rows):
        """Put back direct assignments: rows with user_id, sku_id, disabled_plans (and labels). Skips those in place."""
        try:
            for chunk in _chunks_one_row_per_user(rows, ROWS_PER_CHUNK):
                self._restore_chunk(chunk)
        except MaxFailuresExceeded:
            pass
        return self

    def _restore_chunk(self, chunk):
        snapshot = self.read([row["user_id"] for row in chunk])
        for row in chunk:
            user = snapshot.users.get(row["user_id"])
            if user is None:
                self._skip(row, user_not_found_record(row["user_id"], row["sku_id"], row.get("sku_part_number")))
                continue
            row = dict(row, user_principal_name=user.get("userPrincipalName") or row.get("user_principal_name"))
            if direct_entry(user, row["sku_id"]) is not None:
                if not self.check_mode and self.journal is not None and row.get("journaled", True):
                    op_id = self.journal.intent(
                        "restore_direct",
                        row["user_id"],
                        row["user_principal_name"],
                        row["sku_id"],
                        row.get("sku_part_number"),
                        row["disabled_plans"],
                        batch=row.get("batch"),
                    )
                    self.journal.result(op_id, "skipped", detail="the direct assignment is already in place")
                self.skipped_by_verdict["already_present"] = self.skipped_by_verdict.get("already_present", 0) + 1
                continue
            location = self._location_to_set(user)
            if not user.get("usageLocation") and location is None:
                self._fail(
                    row,
                    USAGE_LOCATION_MISSING,
                    "the user has no usage location, which a direct assignment needs: set one "
                    "(restore_usage_location=tenant gives the tenant's country); nothing was sent",
                )
                continue
            entry = {
                "user": row["user_principal_name"] or row["user_id"],
                "user_id": row["user_id"],
                "sku": row.get("sku_part_number") or row["sku_id"],
                "sku_id": row["sku_id"],
                "disabled_plans": list(row["disabled_plans"]),
                "enabled_plans": self._enabled_plan_names(row["sku_id"], row["disabled_plans"]),
                "usage_location_set": location,
            }
            if self.check_mode:
                self._restored(entry)
                continue
            op_id = self.journal.intent(
                "restore_direct",
                row["user_id"],
                row["user_principal_name"],
                row["sku_id"],
                row.get("sku_part_number"),
                row["disabled_plans"],
                batch=row.get("batch"),
                extra=_location_extra(location),
            )
            kind = self._send_restore(row, row["disabled_plans"], op_id, location)
            if kind is None:
                self._restored(entry)
            else:
                self._fail(row, kind, "the direct assignment could not be put back (%s; see the journal)" % kind)

    def _enabled_plan_names(self, sku_id, disabled_plans):
        if sku_id not in self.catalog:
            return []
        return self.catalog.plan_names(sku_id, self.catalog.enabled_plans(sku_id, disabled_plans))

    def result(self):
        return {
            "removed": self.removed,
            "removed_total": self.removed_total,
            "restored": self.restored,
            "restored_total": self.restored_total,
            "failures": self.failures,
            "skipped_by_verdict": dict((verdict, count) for verdict, count in self.skipped_by_verdict.items() if count),
            "skipped_sample": self.skipped_sample,
            "reconciled": self.reconciled,
            "stopped": self.stopped,
        }


def _location_extra(location):
    """The restore intent's ``extra`` when a usage location is set first (so the journal says so before the write)."""
    return {"usage_location_set": location} if location else None


def _label(row, record):
    return (record or {}).get("user_principal_name") or row.get("user_principal_name") or row["user_id"]


def _removed_entry(row, record):
    return {
        "user": record["user_principal_name"] or row["user_id"],
        "user_id": row["user_id"],
        "sku": record["sku_part_number"] or row["sku_id"],
        "sku_id": row["sku_id"],
        "disabled_plans": list(record["direct_disabled_plans"]),
        "batch": row.get("batch"),
        "plans_lost": list(record["plans_lost"]),
        "enabled_plans": list(record.get("direct_enabled_plan_names") or ()),
        "inherited_enabled_plans": list(record.get("inherited_enabled_plan_names") or ()),
    }


def run_diff(removed, restored):
    """Ansible's ``diff`` of a run: per user and SKU, the enabled plans before and after (only users that change).

    ``direct_enabled_plans`` is null where the user holds no direct assignment of the SKU; for a removal
    ``inherited_enabled_plans`` is what the healthy group copies give, and ``enabled_plans`` what the user has
    in all (the two sets are equal before and after a removal the rule allows: that is the rule).
    """
    before, after = {}, {}
    for entry in removed:
        inherited = entry.get("inherited_enabled_plans") or []
        direct = entry.get("enabled_plans") or []
        before.setdefault(entry["user"], {})[entry["sku"]] = {
            "direct_enabled_plans": direct,
            "inherited_enabled_plans": inherited,
            "enabled_plans": _union_names(direct, inherited),
        }
        after.setdefault(entry["user"], {})[entry["sku"]] = {
            "direct_enabled_plans": None,
            "inherited_enabled_plans": inherited,
            "enabled_plans": list(inherited),
        }
    for entry in restored:
        before.setdefault(entry["user"], {})[entry["sku"]] = {"direct_enabled_plans": None}
        after.setdefault(entry["user"], {})[entry["sku"]] = {"direct_enabled_plans": list(entry.get("enabled_plans") or [])}
    return {"before": dict(sorted(before.items())), "after": dict(sorted(after.items()))}


def _union_names(first, second):
    return sorted_plan_names(set(first) | set(second))


class _AlreadyRemoved(object):
    """A removal Graph refused because the direct assignment was already gone: settled like an applied one."""

    ok = True
    outcome_unknown = False

    def __init__(self, result, detail):
        self.status = result.status
        self.headers = result.headers
        self.body = result.body
        self.detail = detail


def _request_id(result):
    headers = result.headers or {}
    for key, value in headers.items():
        if key.lower() == "request-id":
            return value
    error = result.error() if not result.ok else None
    return error.request_id if error is not None else None


class ChunkSizer:
    """Removal chunk sizes: ROWS_PER_CHUNK first, doubling after each clean chunk up to MAX_ROWS_PER_CHUNK, back after a failure."""

    def __init__(self, first=ROWS_PER_CHUNK, largest=MAX_ROWS_PER_CHUNK):
        self.first = first
        self.largest = largest
        self.size = first

    def next_size(self):
        return self.size

    def after_chunk(self, clean):
        self.size = min(self.largest, self.size * 2) if clean else self.first


def _chunks_one_row_per_user(rows, size):
    """Chunks of up to ``size`` rows (a number, or a callable asked before each chunk) with no user twice:
    a user's second SKU goes to a later round."""
    next_size = size if callable(size) else (lambda: size)
    rounds = []
    seen = {}
    for row in rows:
        position = seen.get(row["user_id"], 0)
        seen[row["user_id"]] = position + 1
        if position == len(rounds):
            rounds.append([])
        rounds[position].append(row)
    for round_rows in rounds:
        offset = 0
        while offset < len(round_rows):
            count = max(1, next_size())
            yield round_rows[offset : offset + count]
            offset += count
