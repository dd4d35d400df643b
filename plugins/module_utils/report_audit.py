# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The report's audit-log sections, from the phase results the role records (plain data in, table rows out).

- ``audit``: the Finish events of the licensing groups the wait phase read (license_audit_info's
  ``finish_events``), the second source beside the processing state.
- ``remove`` (each batch): ``readded`` (direct assignments this migration removed that came back, with
  their writer) and ``joiners_not_in_plan`` (direct assignments new since the plan: reported, never removed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

FINISH_HEADERS = ("group", "finished at", "users assigned", "users failed", "logged by")
READD_HEADERS = ("user", "SKU", "removed in batch", "removed at", "direct again, written by", "written at")


def readd_rows(phase_results):
    """(re-added rows, joiners, joiners_total) from the newest remove result that read them, or None when none did."""
    removes = [result for result in phase_results if result.get("phase") == "remove" and "readded" in result]
    if not removes:
        return None
    latest = removes[-1]
    rows = [
        (
            row.get("user_principal_name") or "",
            row.get("sku_part_number") or "",
            row.get("batch"),
            row.get("removed_at") or "",
            row.get("writer_label") or "",
            row.get("written_at") or "",
        )
        for row in latest.get("readded") or []
        if isinstance(row, dict)
    ]
    joiners = [str(name) for name in latest.get("joiners_not_in_plan") or []]
    return rows, latest.get("readded_total", len(rows)), joiners, latest.get("joiners_not_in_plan_total", len(joiners))


def _readd_html(phase_results, table, escape):
    found = readd_rows(phase_results)
    if found is None:
        return ""
    rows, total, joiners, joiners_total = found
    parts = ["<h2>Direct assignments that came back</h2>"]
    if rows:
        parts.append('<p class="note" id="readded-total">%s direct assignment(s) removed by this migration are direct again.</p>' % escape(total))
        parts.append(table(READD_HEADERS, rows, "readded"))
    else:
        parts.append('<p class="ok" id="readded-total">None.</p>')
    parts.append("<h2>Direct assignments new since the plan (not removed)</h2>")
    if joiners_total:
        parts.append(
            '<p class="note" id="joiners-total">%s, in no approved plan: add these users to the licensing group, then plan again.</p>' % escape(joiners_total)
        )
        parts.append(table(("user",), [(name,) for name in joiners], "joiners"))
    else:
        parts.append('<p class="ok" id="joiners-total">None.</p>')
    return "".join(parts)


def audit_finish_rows(phase_results):
    """(status, detail, rows) of the newest ``audit`` phase result, or None when the run recorded none."""
    audits = [result for result in phase_results if result.get("phase") == "audit"]
    if not audits:
        return None
    latest = audits[-1]
    rows = [
        (row.get("group") or row.get("group_id") or "", row.get("time") or "", row.get("users_assigned"), row.get("users_failed"), row.get("actor") or "")
        for row in latest.get("finish") or []
        if isinstance(row, dict)
    ]
    return latest.get("status") or "", latest.get("detail") or "", rows


def audit_html(phase_results, table, escape):
    """The HTML of the audit evidence sections ('' without such phase results); ``table``/``escape`` are the report's."""
    return _finish_html(phase_results, table, escape) + _readd_html(phase_results, table, escape)


def _finish_html(phase_results, table, escape):
    found = audit_finish_rows(phase_results)
    if found is None:
        return ""
    status, detail, rows = found
    parts = ["<h2>Audit log: group license processing</h2>", '<p class="note" id="audit-status">%s: %s</p>' % (escape(status), escape(detail))]
    if rows:
        parts.append(table(FINISH_HEADERS, rows, "audit-finish"))
    return "".join(parts)
