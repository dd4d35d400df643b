# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""direct_license's verified batches (option ``verify_batches``): the approved batches of a plan run one after
the other in one process, each checked on a fresh reading of the tenant before the next one starts.

Before the first batch and after each one, the assignment paths of every holder of the SKUs are read
(license_assignment_info's classification, written to ``reading_path``), the journal is compared with the
reading (direct assignments this migration removed that are direct again: another writer re-licensing,
named from the audit log; direct assignments new since the plan's baseline: joiners, reported only), and
the batch is verified. The run stops, before the next batch, at the first of:

* re-added direct assignments above ``readd_threshold``;
* a service loss (a removal that took a service away and was put back);
* a reading that does not verify the batch: a holder dropped out of the SKUs, an inherited copy fell into
  error, or a removal does not show as inherited only (allowing for the re-adds new since the last reading).

The decisions are the pure functions below; ``VerifiedBatches`` runs them over the removal engine and Graph.
The migrate_direct_to_group role used to make them in Jinja, one task per check and a module process per
reading; in one process a batch costs one reading and no module start (benchmarks/README.md, many tenants).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import MembershipIndex, iter_records
from ansible_collections.entraops.licensing.plugins.module_utils.audit_log import AuditInputError, summarise, time_window
from ansible_collections.entraops.licensing.plugins.module_utils.audit_reader import FORBIDDEN_MESSAGE, read_window
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.journal import JournalReader
from ansible_collections.entraops.licensing.plugins.module_utils.migration_report import iter_assignment_records
from ansible_collections.entraops.licensing.plugins.module_utils.readds import (
    compare_reading,
    direct_keys,
    earliest_removal,
    name_writers,
    JournalRemovals,
    writers_summary,
)
from ansible_collections.entraops.licensing.plugins.module_utils.removal import max_failures_message
from ansible_collections.entraops.licensing.plugins.module_utils.reports import write_report
from ansible_collections.entraops.licensing.plugins.module_utils.verification import Collector, plan_names

# A batch record keeps the first re-added rows, with these fields.
READDED_SAMPLE = 50
READDED_FIELDS = ("user_principal_name", "sku_part_number", "batch", "removed_at", "writer_label", "written_at")
# What compare_reading needs of a record that holds the SKU directly (the rest of the reading is only counted).
DIRECT_FIELDS = ("user_id", "user_principal_name", "sku_id", "sku_part_number", "direct", "direct_disabled_plans", "inherited_from", "healthy_inherited_from")
AUDIT_RETENTION_DAYS = 30
# Writes the pacer may bank while a reading runs (no write goes out then): Graph's bucket refills at the same 20 per second
# meanwhile (3,000 per 150 s, reference graph-api.md 7.2), so the next batch may spend what the reading did not. The bank
# only fills while this run sends nothing, from a first second's worth: it never holds more than Graph refilled for
# this application meanwhile. A third of Graph's bucket (50 s of writes, a reading of about 100,000 users); near Graph's
# limit or after a 429 the pacer goes back to one second's worth on its own.
READING_REFILL = 1000
BEFORE_FIRST = "before the first batch of this run"


# ---- pure decisions ------------------------------------------------------------------------------------


def utc_now_text(now=None):
    """The record time: ISO 8601 UTC with a Z, as the role's records have it."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.isoformat() + "Z"


def readded_rows(named):
    """The re-added rows as a record keeps them: the first READDED_SAMPLE, with READDED_FIELDS only."""
    return [dict((field, row[field]) for field in READDED_FIELDS if field in row) for row in named[:READDED_SAMPLE]]


def readds_evidence(named, joiners, joiners_total):
    """The record keys that say what came back and who joined since the plan."""
    return {
        "readded": readded_rows(named),
        "readded_total": len(named),
        "readded_writers": writers_summary(named),
        "joiners_not_in_plan": [row.get("user_principal_name") or row["user_id"] for row in joiners],
        "joiners_not_in_plan_total": joiners_total,
    }


def readds_stop_message(count, threshold, when, writers):
    """Why the run stops when more removed direct assignments came back than ``threshold``; None when it goes on."""
    if count <= threshold:
        return None
    named = "; ".join("%s: %d" % (writer, number) for writer, number in writers.items())
    return (
        "%d direct assignment(s) this migration removed are direct again %s (threshold %d), written by: %s. Another automation "
        "(the legacy licensing script) is still assigning these licenses directly: switch it to group membership (add its joiners "
        "to the licensing group instead of licensing them) before the next batch. Nobody lost a license; the users are listed in "
        "batch_results. Once the script licenses through the group, raise readd_threshold (the role's "
        "migrate_direct_to_group_readd_threshold) to %d to go on: the batches approved again remove the copies that came back, "
        "journaled and under the same safety rule." % (count, when, threshold, named or "unknown", count)
    )


def service_loss_message(batch, failures):
    """Why the run stops when a removal of ``batch`` took a service away (and was put back); None otherwise."""
    losses = [failure for failure in failures if failure.get("kind") == "service_loss"]
    if not losses:
        return None
    return "Batch %s: a removal took a service away and was put back; stopping. %s" % (batch, "; ".join(str(loss.get("reason")) for loss in losses))


def verification_message(batch, before, after, removed, readds_new):
    """Why the reading ``after`` does not verify ``batch`` against ``before``; None when it does.

    ``before``/``after``: ``{"summary": verdict counts, "records_total": n}``. Nobody may drop out of the SKUs,
    no inherited copy may fall into error, and every removal must show as inherited only, less the removed
    direct assignments that came back since ``before`` (``readds_new``: they are direct again, so not inherited only).
    """
    ok = (
        after["records_total"] >= before["records_total"]
        and after["summary"].get("inherited_in_error", 0) <= before["summary"].get("inherited_in_error", 0)
        and after["summary"].get("inherited_only", 0) >= before["summary"].get("inherited_only", 0) + removed - readds_new
    )
    if ok:
        return None
    return "Verification after batch %s failed: before %s (%d records), after %s (%d records), %d removed" % (
        batch,
        json.dumps(before["summary"], sort_keys=True),
        before["records_total"],
        json.dumps(after["summary"], sort_keys=True),
        after["records_total"],
        removed,
    )


def batch_detail(removed, skipped_by_verdict, failures):
    """The one-line detail of a batch record."""
    return "%d removed, %d skipped %s, %d failed" % (removed, sum(skipped_by_verdict.values()), json.dumps(skipped_by_verdict, sort_keys=True), len(failures))


def batch_status(failures, check_mode):
    return "failed" if failures else ("dry run" if check_mode else "done")


def counts_delta(after, before):
    """``{verdict: count}`` of ``after`` less ``before`` (engine counters), zero counts left out."""
    delta = {}
    for key, value in after.items():
        if value - before.get(key, 0):
            delta[key] = value - before.get(key, 0)
    return delta


def rows_by_batch(rows, batches=()):
    """``[(batch, rows)]`` in batch order, every batch of ``batches`` included; rows keep their order within a batch."""
    grouped = dict((batch, []) for batch in batches)
    for row in rows:
        grouped.setdefault(row.get("batch"), []).append(row)
    return sorted(grouped.items(), key=lambda item: (item[0] is None, item[0] if item[0] is not None else 0))


# ---- the run -------------------------------------------------------------------------------------------


class BatchesStopped(Exception):
    """The run stopped before the next batch; the message says why, the records are the runner's."""


class VerifiedBatches:
    """Runs the batches of ``rows`` through ``engine``, each checked on a fresh reading, and keeps one record per batch."""

    def __init__(self, client, catalog, engine, options, sku_ids, trusted, journal_path, plan_fingerprint, check_mode, own_app_ids=(), warn=None):
        self.client = client
        self.catalog = catalog
        self.engine = engine
        self.options = options
        self.sku_ids = sku_ids
        self.trusted = trusted
        self.journal_path = journal_path
        self.plan_fingerprint = plan_fingerprint
        self.check_mode = check_mode
        self.own_app_ids = list(own_app_ids)
        self.warn = warn or (lambda message: None)
        self.records = []
        self.stop = None  # why the run stopped before the next batch (set by the caller from BatchesStopped)
        self.reading_before = None
        self.readings = 0
        self._baseline = None
        self._plan_names = None
        self._journal = None  # JournalReader following the journal: each reading parses only the lines since the last one
        self._removals = JournalRemovals()
        pacer = getattr(client, "pacer", None)
        if pacer is not None and getattr(pacer, "rate", 0):
            pacer.ensure_burst(READING_REFILL)

    # -- readings

    def baseline_direct(self):
        """The direct (user, SKU) pairs of the baseline reading written with the plan (joiners are new since), or None."""
        path = self.options.get("baseline_path")
        if self._baseline is None and path and os.path.isfile(path):
            self._baseline = direct_keys(iter_assignment_records(path))
        return self._baseline

    def read(self):
        """A fresh reading of every holder of the SKUs, written to reading_path: ``{"summary", "records_total", "direct",
        "removed"}``. ``removed`` is what the journal says this migration removed (None in check mode or before the journal
        exists); ``direct`` keeps only the direct records that can be a re-add or a joiner (the rest is only counted), so
        memory does not grow with the tenant."""
        removed = None
        if not self.check_mode and self.journal_path and os.path.exists(self.journal_path):
            if self._journal is None:
                self._journal = JournalReader(self.journal_path)
            removed = dict(self._removals.feed(self._journal.new_entries()).removed)
        baseline = self.baseline_direct() if removed is not None else None
        index = MembershipIndex(self.client).start_loading()
        collector = Collector(0, keep_all=False)
        direct = []

        def keep_direct(records):
            for record in records:
                if removed is not None and record.get("direct"):
                    key = ((record.get("user_id") or "").lower(), (record.get("sku_id") or "").lower())
                    if key in removed or (baseline is not None and key not in baseline):
                        direct.append(dict((field, record.get(field)) for field in DIRECT_FIELDS))
                yield record

        records = keep_direct(collector.watch(iter_records(self.client, self.catalog, index, sku_ids=self.sku_ids, trusted_groups=self.trusted)))
        if self._plan_names is None:
            self._plan_names = plan_names(self.catalog)
        write_report(self.options["reading_path"], records, report_format="json", plan_name_lookup=self._plan_names)
        index.wait()
        # The next batch's safety rule sees the licensed groups (and their nesting) as they are now, as a new run would.
        self.engine.transitive_of = index.transitive_of
        self.engine.licensed_group_ids = frozenset(index.groups)
        self.readings += 1
        return {"summary": dict(collector.summary), "records_total": collector.total, "direct": direct, "removed": removed}

    def came_back(self, reading):
        """(named re-added rows, joiners, joiners total) of ``reading``; nothing before the journal exists or in check mode."""
        if reading["removed"] is None:
            return [], [], 0
        readded, joiners, joiners_total = compare_reading(reading["direct"], reading["removed"], self.baseline_direct())
        return name_writers(readded, self._audit_users(readded) if readded else []), joiners, joiners_total

    def _audit_users(self, readded):
        """audit_log.summarise's ``users`` for the re-added users since their earliest removal; None when it cannot be read."""
        users = sorted(set(row["user_id"] for row in readded))
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        try:
            window = time_window(earliest_removal(readded), None, now, AUDIT_RETENTION_DAYS)
        except AuditInputError as exc:
            self.warn("the writers of the re-added direct assignments are not named: %s" % exc)
            return None
        try:
            events, dummy, complete = read_window(self.client, window, None, users, self.options["audit_max_requests"])
        except GraphError as exc:
            if exc.status == 403:
                self.warn(FORBIDDEN_MESSAGE)
                return None
            raise
        if not complete:
            self.warn("the audit read stopped after audit_max_requests=%d requests: the writers named are partial" % self.options["audit_max_requests"])
        return summarise(events, users=users, own_app_ids=self.own_app_ids)["users"]

    # -- the run

    def run(self, rows, batches=()):
        """Remove ``rows`` batch by batch (``batches``: every batch to run, also those without a row left); raises
        BatchesStopped (records kept) when a check stops the run."""
        before = self.read()
        self.reading_before = {"summary": before["summary"], "records_total": before["records_total"]}
        named, joiners, joiners_total = self.came_back(before)
        seen = len(named)
        stop = readds_stop_message(len(named), self.options["readd_threshold"], BEFORE_FIRST, writers_summary(named))
        if stop:
            self.records.append(
                dict(
                    phase="remove",
                    batch=None,
                    status="stopped",
                    detail="%d removed direct assignment(s) came back %s" % (len(named), BEFORE_FIRST),
                    removed=0,
                    failures=[],
                    time=utc_now_text(),
                    **readds_evidence(named, joiners, joiners_total),
                )
            )
            raise BatchesStopped(stop)
        for batch, batch_rows in rows_by_batch(rows, batches):
            after, named, joiners, joiners_total = self._one_batch(batch, batch_rows)
            readds_new = max(len(named) - seen, 0)
            seen = len(named)
            if self.check_mode:
                before = after
                continue
            record = self.records[-1]
            stop = (
                readds_stop_message(len(named), self.options["readd_threshold"], "after batch %s" % batch, writers_summary(named))
                or service_loss_message(batch, record["failures"])
                or verification_message(batch, before, after, record["removed"], readds_new)
            )
            if stop:
                raise BatchesStopped(stop)
            before = after
        return self.records

    def _one_batch(self, batch, batch_rows):
        engine = self.engine
        removed_before = engine.removed_total
        skipped_before = dict(engine.skipped_by_verdict)
        failures_before = len(engine.failures)
        try:
            engine.remove(batch_rows)
        except GraphError as exc:
            self._stopped(batch, removed_before, failures_before, "Stopped: a Graph read or write failed: %s" % exc)
            raise
        failures = engine.failures[failures_before:]
        removed = engine.removed_total - removed_before
        if engine.stopped:
            self._stopped(batch, removed_before, failures_before, max_failures_message(engine.failures, engine.max_failures))
            raise BatchesStopped(self.records[-1]["detail"])
        skipped = counts_delta(engine.skipped_by_verdict, skipped_before)
        try:
            after = self.read()
            named, joiners, joiners_total = self.came_back(after)
        except GraphError as exc:
            self._stopped(batch, removed_before, failures_before, "Stopped: the reading after the batch (or its audit read) failed: %s" % exc)
            raise
        self.records.append(
            dict(
                phase="remove",
                batch=batch,
                status=batch_status(failures, self.check_mode),
                detail=batch_detail(removed, skipped, failures),
                removed=removed,
                plan_fingerprint=self.plan_fingerprint,
                skipped_by_verdict=skipped,
                failures=failures,
                reading_after=after["summary"],
                time=utc_now_text(),
                **readds_evidence(named, joiners, joiners_total),
            )
        )
        return after, named, joiners, joiners_total

    def _stopped(self, batch, removed_before, failures_before, detail):
        self.records.append(
            dict(
                phase="remove",
                batch=batch,
                status="stopped",
                detail=detail,
                removed=self.engine.removed_total - removed_before,
                failures=self.engine.failures[failures_before:],
                time=utc_now_text(),
            )
        )
