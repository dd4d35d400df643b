# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The report's audit-log sections, from the phase results the role records (plain data in, table rows out).

- ``audit``: the Finish events of the licensing groups the wait phase read (license_audit_info's
  ``finish_events``), the second source beside the processing state.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

FINISH_HEADERS = ("group", "finished at", "users assigned", "users failed", "logged by")


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
    """The HTML of the audit evidence section ('' without an ``audit`` phase result); ``table``/``escape`` are the report's."""
    found = audit_finish_rows(phase_results)
    if found is None:
        return ""
    status, detail, rows = found
    parts = ["<h2>Audit log: group license processing</h2>", '<p class="note" id="audit-status">%s: %s</p>' % (escape(status), escape(detail))]
    if rows:
        parts.append(table(FINISH_HEADERS, rows, "audit-finish"))
    return "".join(parts)
