# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration report: one run of the role, for the change record.

Pure functions over what the run left on disk: the plan (``plan.py``), the journal
(``journal.py``), the assignment-path reports of ``license_assignment_info`` (JSON) taken before
and after the removals, and the small phase result files the role writes (one JSON object per
phase or batch). ``build_report`` folds them into one dict; ``render_html``, ``render_csv`` and
``render_json`` turn that dict into the three files. The HTML is self-contained (inline CSS and
SVG, no external asset) and every value that came from the tenant is escaped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import os
import tempfile
from html import escape

from ansible_collections.entraops.licensing.plugins.module_utils.journal import OUTCOME_FIELDS, JournalReader, latest_outcomes
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import VERDICT_MEANINGS, VERDICTS
from ansible_collections.entraops.licensing.plugins.module_utils.plan import scan_plan
from ansible_collections.entraops.licensing.plugins.module_utils.report_audit import audit_html
from ansible_collections.entraops.licensing.plugins.module_utils.report_skus import SkuFigures, per_sku_html
from ansible_collections.entraops.licensing.plugins.module_utils.reports import (
    JsonNotAnObject,
    JsonStream,
    RecordsError,
    atomic_text_file,
    neutralize_formula,
    resolve_output_path,
    utc_now_iso,
)

REPORT_FORMAT = "entraops.licensing/migration-report"
REPORT_VERSION = 1

# Per user and SKU, what the run did; also the CSV's outcome column.
MIGRATED = "migrated"
ALREADY_INHERITED = "already_inherited"
PENDING = "pending"
SKIPPED = "skipped"
FAILED = "failed"
RESTORED = "restored"
UNKNOWN = "unknown"
OUTCOMES = (MIGRATED, ALREADY_INHERITED, PENDING, SKIPPED, FAILED, RESTORED, UNKNOWN)

PATHS = ("direct_only", "both", "inherited_only")
PATH_LABELS = {"direct_only": "direct only", "both": "direct and inherited", "inherited_only": "inherited only"}

CSV_COLUMNS = ("user_principal_name", "user_id", "sku_part_number", "sku_id", "outcome", "verdict", "reason", "batch", "plans_lost", "errors")

_COLOURS = {
    MIGRATED: "#2e7d32",
    SKIPPED: "#f9a825",
    FAILED: "#c62828",
    PENDING: "#90a4ae",
    "direct_only": "#ef6c00",
    "both": "#1565c0",
    "inherited_only": "#2e7d32",
}


def load_json_file(path, what):
    """The JSON value of a file, or RecordsError naming the file and what it should hold."""
    try:
        with open(path, "r", encoding="utf-8-sig") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise RecordsError("%s %s does not exist" % (what, path))
    except (OSError, ValueError) as exc:
        raise RecordsError("%s %s cannot be read as JSON: %s" % (what, path, exc))


def iter_assignment_records(path):
    """The records of a JSON report of license_assignment_info, one at a time (the file is never read whole)."""
    records_seen = False
    try:
        with open(path, "r", encoding="utf-8-sig") as stream:
            for event, key, value in JsonStream(stream).events(("records",)):
                if key != "records":
                    continue
                if event == "item":
                    yield value
                elif event == "start":
                    records_seen = True
    except FileNotFoundError:
        raise RecordsError("assignment report %s does not exist" % path)
    except RecordsError:
        raise
    except JsonNotAnObject:
        records_seen = False
    except (OSError, ValueError) as exc:
        raise RecordsError("assignment report %s cannot be read as JSON: %s" % (path, exc))
    if not records_seen:
        raise RecordsError('assignment report %s: expected the JSON report of license_assignment_info (an object with "summary" and "records")' % path)


def load_assignment_report(path):
    """Records of a JSON report of license_assignment_info (``{"summary", "records"}``)."""
    document = load_json_file(path, "assignment report")
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise RecordsError('assignment report %s: expected the JSON report of license_assignment_info (an object with "summary" and "records")' % path)
    return document["records"]


def load_phase_results(paths):
    """Phase result objects, each with at least ``phase``; sorted as the run produced them.

    A file holds one object, or a list of them (the role's remove phase writes one file per run with
    one object per batch).
    """
    results = []
    for path in paths:
        document = load_json_file(path, "phase result file")
        for result in document if isinstance(document, list) else [document]:
            if not isinstance(result, dict) or not isinstance(result.get("phase"), str):
                raise RecordsError('phase result file %s: expected a JSON object with a "phase" name, or a list of them' % path)
            results.append(result)
    return sorted(results, key=lambda item: (str(item.get("time") or ""), item["phase"], _int_or(item.get("batch"), -1)))


def _int_or(value, default):
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _key(user_id, sku_id, pool=None):
    sku = str(sku_id or "").lower()
    if pool is not None:
        sku = pool.setdefault(sku, sku)  # one string per SKU, not one per row
    return (str(user_id or "").lower(), sku)


def assignment_path(record):
    """'direct_only', 'both' or 'inherited_only' (None when the user holds the SKU in no way)."""
    direct = bool(record.get("direct"))
    inherited = bool(record.get("inherited_from"))
    if direct and inherited:
        return "both"
    if direct:
        return "direct_only"
    if inherited:
        return "inherited_only"
    return None


def path_counts(records):
    counts = dict((path, 0) for path in PATHS)
    for record in records or ():
        path = assignment_path(record)
        if path:
            counts[path] += 1
    return counts


def verdict_counts(records):
    counts = dict((verdict, 0) for verdict in VERDICTS)
    for record in records or ():
        verdict = record.get("verdict")
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def fold_journal(entries):
    """Per (user, SKU): the last operation and its outcome, with the batch of its intent.

    A removal whose result line is missing (the run was killed) has outcome None: the write
    may or may not have happened, so it counts as unknown until a restore or re-run settles it.
    """
    return dict((key, dict(zip(OUTCOME_FIELDS, state))) for key, state in latest_outcomes(entries).items())


def _outcome_of(op, outcome):
    if op == "remove_direct":
        if outcome == "ok":
            return MIGRATED
        if outcome in ("failed", "rolled_back"):
            return FAILED
        if outcome == "skipped":
            return None
        return UNKNOWN
    if op == "restore_direct" and outcome in ("ok", "skipped"):
        return RESTORED
    if op == "restore_direct" and outcome == "failed":
        return FAILED
    return UNKNOWN


def journal_outcome(state):
    """The report outcome of one folded journal state."""
    return _outcome_of(state.get("op"), state.get("outcome"))


def _reason(record):
    verdict = record.get("verdict")
    reason = VERDICT_MEANINGS.get(verdict, verdict or "")
    if record.get("plans_lost"):
        reason += ": " + ", ".join(str(plan) for plan in record["plans_lost"])
    if record.get("errors"):
        reason += " (" + ", ".join(str(code) for code in record["errors"]) + ")"
    return reason


def _outcome_rows(records, states, plan_batches, pool=None):
    """One row per user and SKU (a generator): outcome, verdict and reason, batch.

    ``states``: journal.latest_outcomes' result (its last slot is the ``seen`` flag, set on the way);
    ``plan_batches``: ``{key: batch}``. Rows of the journal the records did not name come last.
    """
    pool = {} if pool is None else pool
    for record in records or ():
        key = _key(record.get("user_id"), record.get("sku_id"), pool)
        state = states.get(key)
        if state is not None:
            state[7] = True
        outcome = _outcome_of(state[0], state[1]) if state else None
        verdict = record.get("verdict")
        if outcome is None:
            if verdict == "inherited_only":
                outcome = ALREADY_INHERITED
            elif verdict == "safe_to_remove":
                outcome = PENDING
            else:
                outcome = SKIPPED
        reason = ""
        if outcome == SKIPPED or outcome == PENDING:
            reason = _reason(record)
        elif outcome == FAILED and state:
            reason = " ".join(str(part) for part in (state[1], state[5], state[6]) if part)
        batch = state[2] if state and state[2] is not None else plan_batches.get(key)
        yield {
            "user_principal_name": record.get("user_principal_name"),
            "user_id": record.get("user_id"),
            "sku_part_number": record.get("sku_part_number"),
            "sku_id": record.get("sku_id"),
            "outcome": outcome,
            "verdict": verdict,
            "reason": reason,
            "batch": batch,
            "plans_lost": list(record.get("plans_lost") or ()),
            "errors": list(record.get("errors") or ()),
        }
    # Journal rows the final reading did not see (for example a user deleted meanwhile) stay on record.
    for key in sorted(key for key, state in states.items() if not state[7]):
        state = states[key]
        yield {
            "user_principal_name": state[3],
            "user_id": key[0],
            "sku_part_number": state[4],
            "sku_id": key[1],
            "outcome": _outcome_of(state[0], state[1]) or SKIPPED,
            "verdict": None,
            "reason": "in the journal, not in the final reading",
            "batch": state[2],
            "plans_lost": [],
            "errors": [],
        }


def user_outcomes(records, journal_states, plan_batches):
    """One row per user and SKU: outcome, verdict and reason, batch (``journal_states`` as fold_journal gives them)."""
    states = dict((key, [state.get(field) for field in OUTCOME_FIELDS] + [False]) for key, state in journal_states.items())
    return list(_outcome_rows(records, states, plan_batches))


class _BatchFigures:
    """batch_figures, one outcome row at a time."""

    def __init__(self, plan_sizes):
        self.figures = {}
        for batch, planned in plan_sizes.items():
            self.figures[batch] = {"batch": batch, "planned": planned, MIGRATED: 0, SKIPPED: 0, FAILED: 0, PENDING: 0, "runs": 0}

    def add(self, row):
        batch = row.get("batch")
        if not isinstance(batch, int) or batch not in self.figures:
            return
        outcome = row["outcome"]
        if outcome in (MIGRATED, FAILED, PENDING):
            self.figures[batch][outcome] += 1
        elif outcome in (SKIPPED, ALREADY_INHERITED, UNKNOWN):
            self.figures[batch][SKIPPED] += 1

    def result(self, phase_results):
        for result in phase_results:
            batch = result.get("batch")
            if result.get("phase") == "remove" and batch in self.figures:
                self.figures[batch]["runs"] += 1
        return [self.figures[batch] for batch in sorted(self.figures)]


def batch_figures(plan_sizes, outcome_rows, phase_results):
    """Per plan batch: planned, migrated, skipped, failed (from the journal and the batch results)."""
    figures = _BatchFigures(plan_sizes)
    for row in outcome_rows:
        figures.add(row)
    return figures.result(phase_results)


def _plan_facts(plan_path, pool=None):
    """(facts, batch sizes, ``{key: batch}``): the plan read row by row (plan.scan_plan), only the batch of each row kept."""
    if not plan_path:
        return None, {}, {}
    pool = {} if pool is None else pool
    batches = {}

    def keep(row):
        if row.get("batch") is not None:
            batches[_key(row.get("user_id"), row.get("sku_id"), pool)] = row["batch"]

    plan = scan_plan(plan_path, keep)
    facts = {
        "path": plan_path,
        "created": plan.get("created"),
        "batches": plan["batches"],
        "canary_size": plan.get("canary_size"),
        "batch_size": plan.get("batch_size"),
        "trusted_groups": plan.get("trusted_groups"),
        "summary": plan["summary"],
        "fingerprint": plan["content_fingerprint"],
        "fingerprint_recorded": plan.get("fingerprint"),
    }
    return facts, plan["batch_counts"], batches


def _journal_facts(journal_path, pool=None):
    if not journal_path:
        return None, {}
    reader = JournalReader(journal_path)
    runs = [0]
    plan_fingerprints = set()

    def counted(entries):
        for entry in entries:
            if entry.get("type") == "run":
                runs[0] += 1
                if entry.get("plan_fingerprint"):
                    plan_fingerprints.add(entry["plan_fingerprint"])
            yield entry

    states = latest_outcomes(counted(reader), pool)
    counts = {}
    for state in states.values():
        outcome = _outcome_of(state[0], state[1])
        if outcome:
            counts[outcome] = counts.get(outcome, 0) + 1
    facts = {
        "path": reader.path,
        "entries": reader.entries,
        "warnings": reader.warnings,
        "runs": runs[0],
        "outcomes": counts,
        "plan_fingerprints": sorted(plan_fingerprints),
    }
    return facts, states


def _gains_plans(record):
    """True when the healthy inherited copies enable a plan the direct copy disables.

    Compared on the enabled plan names of the record: a direct copy that disables the same plans as the
    group (a standard disabled set) gains nothing. A record without those names (an older report) is
    counted when its direct copy disabled anything, as this report did before it had them.
    """
    direct_names, inherited_names = record.get("direct_enabled_plan_names"), record.get("inherited_enabled_plan_names")
    if direct_names is None or inherited_names is None:
        return bool(record.get("direct_disabled_plans"))
    return bool(set(inherited_names) - set(direct_names))


def _source(records):
    """A function giving a fresh iterator over ``records`` (a list, None, or already such a function)."""
    if records is None or callable(records):
        return records
    return lambda: iter(records)


class _Counted:
    """Verdict and assignment-path counts of records as they go by."""

    def __init__(self):
        self.verdicts = dict((verdict, 0) for verdict in VERDICTS)
        self.paths = dict((path, 0) for path in PATHS)

    def add(self, record):
        verdict = record.get("verdict")
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        path = assignment_path(record)
        if path:
            self.paths[path] += 1

    def counting(self, records):
        for record in records:
            self.add(record)
            yield record


def fold_report(
    title,
    plan_path=None,
    journal_path=None,
    before_records=None,
    after_records=None,
    phase_results=(),
    check_mode=False,
    generated=None,
    rollback_script_path=None,
    on_row=None,
    sample_size=None,
):
    """build_report without ``users``: each outcome row goes to ``on_row`` as it is made, nothing keeps them all.

    ``before_records`` and ``after_records``: lists, or functions giving a fresh iterator (read
    once each, before twice when there is no after reading). The dict has ``skipped_total`` and,
    when ``sample_size`` is given, ``skipped_sample`` (the first skipped rows) for the HTML page.
    """
    pool = {}
    before, after = _source(before_records), _source(after_records)
    plan_facts, plan_sizes, plan_batches = _plan_facts(plan_path, pool)
    journal_facts, journal_states = _journal_facts(journal_path, pool)
    # Direct assignments that disabled plans the groups enable: the user gains services (the rule allows it).
    had_disabled = set()
    before_counts = after_counts = None
    if before is not None:
        before_counts = _Counted()
        for record in before_counts.counting(before()):
            if _gains_plans(record):
                had_disabled.add(_key(record.get("user_id"), record.get("sku_id"), pool))
    final_records = None
    if after is not None:
        after_counts = _Counted()
        final_records = after_counts.counting(after())
    elif before is not None:
        final_records = before()
    totals = dict((outcome, 0) for outcome in OUTCOMES)
    skipped_by_verdict = {}
    more_plans = 0
    failures = []
    skipped_sample = []
    figures = _BatchFigures(plan_sizes)
    per_sku = SkuFigures()
    for row in _outcome_rows(final_records, journal_states, plan_batches, pool):
        outcome = row["outcome"]
        totals[outcome] += 1
        per_sku.add(row)
        if outcome == SKIPPED:
            skipped_by_verdict[row["verdict"]] = skipped_by_verdict.get(row["verdict"], 0) + 1
            if sample_size is not None and len(skipped_sample) < sample_size:
                skipped_sample.append(row)
        elif outcome == MIGRATED and had_disabled and _key(row["user_id"], row["sku_id"], pool) in had_disabled:
            more_plans += 1
        elif outcome in (FAILED, UNKNOWN):
            failures.append(row)
        figures.add(row)
        if on_row is not None:
            on_row(row)
    phase_results = list(phase_results)
    blockers = []
    for result in phase_results:
        blockers.extend(str(item) for item in result.get("blockers") or ())
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "title": title,
        "generated": generated or utc_now_iso(),
        "check_mode": bool(check_mode),
        "totals": totals,
        "per_sku": per_sku.result(),
        "migrated_with_more_plans": more_plans,
        "skipped_by_verdict": dict(sorted(skipped_by_verdict.items(), key=lambda item: str(item[0]))),
        "verdicts": {"before": before_counts.verdicts if before_counts else None, "after": after_counts.verdicts if after_counts else None},
        "assignment_paths": {"before": before_counts.paths if before_counts else None, "after": after_counts.paths if after_counts else None},
        "plan": plan_facts,
        "journal": journal_facts,
        "rollback_script_path": rollback_script_path,
        "batches": figures.result(phase_results),
        "phases": phase_results,
        "blockers": blockers,
        "failures": failures,
    }
    return report, skipped_sample, totals[SKIPPED]


def build_report(
    title,
    plan_path=None,
    journal_path=None,
    before_records=None,
    after_records=None,
    phase_results=(),
    check_mode=False,
    generated=None,
    rollback_script_path=None,
):
    """Everything the change record needs, as one JSON-serialisable dict (``users``: every outcome row).

    For a large run write_migration_report gives the same files without holding every row.
    """
    users = []
    report, dummy, dummy = fold_report(
        title,
        plan_path=plan_path,
        journal_path=journal_path,
        before_records=before_records,
        after_records=after_records,
        phase_results=phase_results,
        check_mode=check_mode,
        generated=generated,
        rollback_script_path=rollback_script_path,
        on_row=users.append,
    )
    report["users"] = users
    return report


def render_json(report):
    return json.dumps(report, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


_USERS_PLACEHOLDER = '\n "users": []'


def _write_json_streamed(stream, report, rows):
    """Write what render_json(dict(report, users=list(rows))) returns, one row at a time (same bytes)."""
    text = json.dumps(dict(report, users=[]), ensure_ascii=False, indent=1, sort_keys=True)
    # The one top-level member at indent 1: nested keys are indented more, and quotes inside strings are escaped.
    head, tail = text.split(_USERS_PLACEHOLDER)
    stream.write(head)
    stream.write('\n "users": [')
    count = 0
    for row in rows:
        stream.write(",\n  " if count else "\n  ")
        stream.write(json.dumps(row, ensure_ascii=False, indent=1, sort_keys=True).replace("\n", "\n  "))
        count += 1
    stream.write("\n ]" if count else "]")
    stream.write(tail)
    stream.write("\n")


def _csv_cell(value):
    if isinstance(value, (list, tuple)):
        value = ";".join(str(item) for item in value)
    if value is None:
        return ""
    return neutralize_formula(str(value))


def _write_csv(stream, rows):
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in CSV_COLUMNS])


def render_csv(report):
    """One row per user and SKU; cells from the tenant are neutralised against spreadsheet formulas."""
    stream = io.StringIO()
    _write_csv(stream, report["users"])
    return stream.getvalue()


# ---- HTML -----------------------------------------------------------------------------------


def _e(value):
    return escape("" if value is None else str(value), quote=True)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9e2ec;padding-bottom:4px}
.meta{color:#52606d;font-size:13px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #d9e2ec;border-radius:6px;padding:10px 16px;min-width:120px}
.card .n{font-size:26px;font-weight:600}.card .l{font-size:12px;color:#52606d;text-transform:uppercase}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.blocker{color:#c62828}.ok{color:#2e7d32}.note{color:#52606d;font-size:12px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
svg text{font-size:12px;font-family:inherit}
"""

# Records what the browser laid out, so a headless test (and a curious reader) can check the charts rendered.
_SCRIPT = """
window.addEventListener('load',function(){var n=0;document.querySelectorAll('svg rect[data-value]').forEach(function(r){
r.setAttribute('data-rendered-width',String(Math.round(r.getBBox().width)));n++;});
document.body.setAttribute('data-rendered-bars',String(n));});
"""


def _card(label, value, css_id):
    return '<div class="card" id="%s"><div class="n">%s</div><div class="l">%s</div></div>' % (_e(css_id), _e(value), _e(label))


def _legend(keys, labels):
    return '<div class="legend">%s</div>' % "".join('<span><i style="background:%s"></i>%s</span>' % (_COLOURS[key], _e(labels.get(key, key))) for key in keys)


def stacked_bars_svg(svg_id, rows, keys, width=640, bar_height=22, label_width=150):
    """Horizontal stacked bars: rows are (label, {key: count}); each segment's width is proportional to the row's largest total."""
    largest = max([sum(counts.get(key, 0) for key in keys) for _label, counts in rows] + [1])
    scale = float(width - label_width - 60) / largest
    height = len(rows) * (bar_height + 8) + 8
    parts = ['<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">' % (_e(svg_id), width, height)]
    for index, (label, counts) in enumerate(rows):
        y = 4 + index * (bar_height + 8)
        parts.append('<text x="0" y="%d">%s</text>' % (y + bar_height - 6, _e(label)))
        x = float(label_width)
        total = 0
        for key in keys:
            value = counts.get(key, 0)
            total += value
            segment = value * scale
            parts.append(
                '<rect class="bar-%s" data-row="%s" data-key="%s" data-value="%d" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s">'
                "<title>%s: %d</title></rect>" % (_e(key), _e(label), _e(key), value, x, y, segment, bar_height, _COLOURS[key], _e(key), value)
            )
            x += segment
        parts.append('<text x="%.1f" y="%d" data-total="%d">%d</text>' % (x + 6, y + bar_height - 6, total, total))
    parts.append("</svg>")
    return "".join(parts)


def _table(headers, rows, table_id):
    head = "".join("<th>%s</th>" % _e(header) for header in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            css = ' class="num"' if isinstance(value, int) and not isinstance(value, bool) else ""
            cells.append("<td%s>%s</td>" % (css, _e(value)))
        body.append("<tr>%s</tr>" % "".join(cells))
    return '<table id="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (_e(table_id), head, "".join(body))


def _phases_html(report):
    rows = []
    for result in report["phases"]:
        label = result["phase"] + (" batch %s" % result["batch"] if result.get("batch") is not None else "")
        rows.append((label, result.get("status") or "", result.get("time") or "", result.get("detail") or ""))
    return _table(("phase", "status", "time", "detail"), rows, "phases") if rows else '<p class="note">No phase results.</p>'


def _verdicts_html(report):
    before, after = report["verdicts"]["before"], report["verdicts"]["after"]
    rows = []
    for verdict in sorted(set(before or {}) | set(after or {}), key=lambda item: (VERDICTS.index(item) if item in VERDICTS else 99, str(item))):
        rows.append((verdict, (before or {}).get(verdict, ""), (after or {}).get(verdict, ""), VERDICT_MEANINGS.get(verdict, "")))
    return _table(("verdict", "before removal", "after", "meaning"), rows, "verdicts")


def _user_rows_html(rows, table_id, max_rows, total=None):
    shown = rows[:max_rows]
    total = len(rows) if total is None else total
    table = _table(
        ("user", "SKU", "outcome", "verdict", "batch", "reason"),
        [
            (
                row["user_principal_name"] or row["user_id"],
                row["sku_part_number"] or row["sku_id"],
                row["outcome"],
                row["verdict"] or "",
                "" if row["batch"] is None else row["batch"],
                row["reason"],
            )
            for row in shown
        ],
        table_id,
    )
    if total > max_rows:
        table += '<p class="note">%d more in the CSV and JSON files.</p>' % (total - max_rows)
    return table


def render_html(report, max_rows=500, skipped=None):
    """The self-contained HTML page for the change record.

    ``skipped``: ``(first skipped rows, number of skipped rows)`` for a report without ``users``
    (write_migration_report); taken from ``report['users']`` when not given.
    """
    totals = report["totals"]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title><style>%s</style></head><body>" % (_e(report["title"]), _CSS),
        "<h1>%s</h1>" % _e(report["title"]),
        '<div class="meta">Generated %s%s</div>' % (_e(report["generated"]), " &middot; <b>dry run (check mode)</b>" if report["check_mode"] else ""),
    ]
    parts.append(
        '<div class="cards">%s</div>'
        % "".join(
            (
                _card("migrated", totals[MIGRATED], "total-migrated"),
                _card("already inherited", totals[ALREADY_INHERITED], "total-already-inherited"),
                _card("skipped", totals[SKIPPED], "total-skipped"),
                _card("pending (planned)", totals[PENDING], "total-pending"),
                _card("failed", totals[FAILED] + totals[UNKNOWN], "total-failed"),
                _card("restored", totals[RESTORED], "total-restored"),
            )
        )
    )
    if report.get("migrated_with_more_plans"):
        parts.append(
            '<p class="note" id="more-plans">%d migrated user(s) had plans disabled in their direct assignment that the group enables: '
            "they gained those services.</p>" % report["migrated_with_more_plans"]
        )
    if report["blockers"]:
        parts.append('<h2>Blockers</h2><ul id="blockers">%s</ul>' % "".join('<li class="blocker">%s</li>' % _e(item) for item in report["blockers"]))

    parts.append("<h2>Batches</h2>")
    if report["batches"]:
        keys = (MIGRATED, SKIPPED, FAILED, PENDING)
        parts.append(_legend(keys, {}))
        rows = [("canary (0)" if item["batch"] == 0 else "batch %d" % item["batch"], item) for item in report["batches"]]
        parts.append(stacked_bars_svg("batch-chart", rows, keys))
        parts.append(
            _table(
                ("batch", "planned", "migrated", "skipped", "failed", "pending", "runs"),
                [(item["batch"], item["planned"], item[MIGRATED], item[SKIPPED], item[FAILED], item[PENDING], item["runs"]) for item in report["batches"]],
                "batch-table",
            )
        )
    else:
        parts.append('<p class="note">No plan batches.</p>')

    paths = report["assignment_paths"]
    if paths["before"] is not None or paths["after"] is not None:
        parts.append("<h2>Assignment paths before and after</h2>")
        parts.append(_legend(PATHS, PATH_LABELS))
        rows = [(label, paths[key]) for key, label in (("before", "before removal"), ("after", "after")) if paths[key] is not None]
        parts.append(stacked_bars_svg("paths-chart", rows, PATHS))

    parts.append("<h2>Verdicts</h2>")
    parts.append(_verdicts_html(report))
    if report["skipped_by_verdict"]:
        parts.append(_table(("skipped because", "users"), sorted(report["skipped_by_verdict"].items(), key=lambda item: str(item[0])), "skipped-by-verdict"))

    parts.append(per_sku_html(report.get("per_sku"), _table))
    parts.append("<h2>Phases</h2>")
    parts.append(_phases_html(report))
    parts.append(audit_html(report["phases"], _table, _e))

    parts.append("<h2>Failures</h2>")
    parts.append(_user_rows_html(report["failures"], "failures", max_rows) if report["failures"] else '<p class="ok" id="no-failures">None.</p>')
    if skipped is None:
        skipped_rows = [row for row in report["users"] if row["outcome"] == SKIPPED]
        skipped_total = len(skipped_rows)
    else:
        skipped_rows, skipped_total = skipped
    parts.append("<h2>Users skipped and why</h2>")
    parts.append(_user_rows_html(skipped_rows, "skipped", max_rows, skipped_total) if skipped_total else '<p class="ok">None.</p>')

    parts.append("<h2>Files</h2>")
    plan, journal = report["plan"] or {}, report["journal"] or {}
    parts.append(_plan_fingerprint_html(plan, journal))
    parts.append(
        _table(
            ("file", "path", "facts"),
            [
                (
                    "plan",
                    plan.get("path") or "",
                    "batches %s, canary %s, batch size %s; fingerprint %s"
                    % (plan.get("batches"), plan.get("canary_size"), plan.get("batch_size"), plan.get("fingerprint"))
                    if plan
                    else "",
                ),
                (
                    "journal",
                    journal.get("path") or "",
                    "%s entries, %s runs; plans executed: %s"
                    % (journal.get("entries"), journal.get("runs"), ", ".join(journal.get("plan_fingerprints") or ()) or "none recorded")
                    if journal
                    else "",
                ),
                ("rollback script", report.get("rollback_script_path") or "", ""),
            ],
            "files",
        )
    )
    parts.append("<script>%s</script></body></html>\n" % _SCRIPT)
    return "".join(parts)


def _plan_fingerprint_html(plan, journal):
    """The plan's fingerprint for the change record, and what does not match it: an edited plan, runs of another plan."""
    if not plan:
        return ""
    lines = ['<p id="plan-fingerprint">Plan fingerprint (the content the change record approves): <code>%s</code></p>' % _e(str(plan.get("fingerprint")))]
    recorded = plan.get("fingerprint_recorded")
    if recorded and recorded != plan.get("fingerprint"):
        lines.append('<p class="blocker">The plan was edited after it was written: it was written with fingerprint <code>%s</code>.</p>' % _e(recorded))
    others = [value for value in (journal or {}).get("plan_fingerprints") or () if value != plan.get("fingerprint")]
    if others:
        lines.append('<p class="blocker">The journal holds runs of another plan content: <code>%s</code>.</p>' % _e(", ".join(others)))
    return "".join(lines)


def write_report_files(report, html_path=None, json_path=None, csv_path=None, max_rows=500):
    """Write the requested files atomically; every path is checked before the first is written."""
    targets = []
    for path, what, render, newline in (
        (html_path, "HTML report", lambda: render_html(report, max_rows), None),
        (json_path, "JSON report", lambda: render_json(report), None),
        (csv_path, "CSV report", lambda: render_csv(report), ""),
    ):
        if path:
            targets.append((resolve_output_path(path, what), what, render, newline))
    written = {}
    for absolute_path, what, render, newline in targets:
        encoding = "utf-8-sig" if what == "CSV report" else "utf-8"
        with atomic_text_file(absolute_path, what, encoding=encoding, newline=newline) as stream:
            stream.write(render())
        written[what] = absolute_path
    return written


def _spooled_rows(spool):
    spool.seek(0)
    for line in spool:
        yield json.loads(line)


def write_migration_report(
    title,
    plan_path=None,
    journal_path=None,
    before_report_path=None,
    after_report_path=None,
    phase_results=(),
    check_mode=False,
    generated=None,
    rollback_script_path=None,
    html_path=None,
    json_path=None,
    csv_path=None,
    max_rows=500,
):
    """build_report + write_report_files for a run of any size: ``(report without users, written)``.

    The assignment reports, plan and journal are read one record at a time; each outcome row is
    spooled to a temporary file (in the directory of the first output) as it is made and copied
    into the JSON and CSV files from there, so memory does not grow with the users (100,000 and
    more). The files are the same, byte for byte, as write_report_files(build_report(...)) writes.
    Every output path is checked, and every input read, before the first file is written.
    """
    targets = []
    for path, what in ((html_path, "HTML report"), (json_path, "JSON report"), (csv_path, "CSV report")):
        if path:
            targets.append((resolve_output_path(path, what), what))
    before = (lambda: iter_assignment_records(before_report_path)) if before_report_path else None
    after = (lambda: iter_assignment_records(after_report_path)) if after_report_path else None
    spool_dir = os.path.dirname(targets[0][0]) if targets else None
    try:
        spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8", dir=spool_dir)
    except OSError as exc:
        raise RecordsError("cannot write the migration report: %s" % (exc.strerror or exc))
    written = {}
    with spool:

        def on_row(row):
            spool.write(json.dumps(row, ensure_ascii=False))
            spool.write("\n")

        report, skipped_sample, skipped_total = fold_report(
            title,
            plan_path=plan_path,
            journal_path=journal_path,
            before_records=before,
            after_records=after,
            phase_results=phase_results,
            check_mode=check_mode,
            generated=generated,
            rollback_script_path=rollback_script_path,
            on_row=on_row,
            sample_size=max_rows,
        )
        spool.flush()
        for absolute_path, what in targets:
            encoding = "utf-8-sig" if what == "CSV report" else "utf-8"
            with atomic_text_file(absolute_path, what, encoding=encoding, newline="" if what == "CSV report" else None) as stream:
                if what == "HTML report":
                    stream.write(render_html(report, max_rows, skipped=(skipped_sample, skipped_total)))
                elif what == "JSON report":
                    _write_json_streamed(stream, report, _spooled_rows(spool))
                else:
                    _write_csv(stream, _spooled_rows(spool))
            written[what] = absolute_path
    return report, written


def run_migration_report(module):
    """Run the migration_report task of ``module`` (an AnsibleModule with its options); exits or fails it."""
    params = module.params
    if not (params["html_path"] or params["json_path"] or params["csv_path"]):
        module.fail_json(msg="nothing to write: set at least one of html_path, json_path or csv_path")
    if params["max_rows"] < 0:
        module.fail_json(msg="max_rows: got %d, expected 0 or more" % params["max_rows"])
    try:
        # Streamed: the reports, plan and journal are read one record at a time and the user rows go
        # straight to the files, so memory does not grow with the number of users.
        report, written = write_migration_report(
            params["title"],
            plan_path=params["plan_path"],
            journal_path=params["journal_path"],
            before_report_path=params["before_report_path"],
            after_report_path=params["after_report_path"],
            phase_results=load_phase_results(params["phase_results"]),
            check_mode=module.check_mode,
            rollback_script_path=params["rollback_script_path"],
            html_path=params["html_path"],
            json_path=params["json_path"],
            csv_path=params["csv_path"],
            max_rows=params["max_rows"],
        )
    except RecordsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(
        changed=False,
        totals=report["totals"],
        per_sku=report["per_sku"],
        migrated_with_more_plans=report["migrated_with_more_plans"],
        skipped_by_verdict=report["skipped_by_verdict"],
        assignment_paths=report["assignment_paths"],
        batches=report["batches"],
        blockers=report["blockers"],
        failures=report["failures"][:100],
        html_path=written.get("HTML report"),
        json_path=written.get("JSON report"),
        csv_path=written.get("CSV report"),
    )
