# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The report's audit-log section (report_audit) and its place in the HTML report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils import migration_report as mr
from ansible_collections.entraops.licensing.plugins.module_utils.report_audit import audit_finish_rows

AUDIT = {
    "phase": "audit",
    "status": "recorded",
    "detail": "1 group(s), 1 with a Finish event since 2026-03-01T00:00:00Z: 6 user(s) assigned, 1 failed",
    "time": "2026-03-01T10:00:00Z",
    "finish": [
        {
            "group_id": "g1",
            "group": "lic-<e3>",
            "time": "2026-03-01T09:00:00Z",
            "users_assigned": 6,
            "users_failed": 1,
            "actor": "Microsoft Entra group-Based Licensing",
        }
    ],
}


def test_rows_come_from_the_newest_audit_result():
    older = dict(AUDIT, finish=[], time="2026-03-01T08:00:00Z", status="not readable")
    status, detail, rows = audit_finish_rows([older, {"phase": "wait"}, AUDIT])
    assert status == "recorded" and "6 user(s) assigned" in detail
    assert rows == [("lic-<e3>", "2026-03-01T09:00:00Z", 6, 1, "Microsoft Entra group-Based Licensing")]
    assert audit_finish_rows([{"phase": "wait"}]) is None


def test_html_report_shows_the_finish_events_escaped():
    page = mr.render_html(mr.build_report("t", phase_results=[AUDIT], generated="2026-01-01T00:00:00.000Z"))
    assert "Audit log: group license processing" in page and 'id="audit-finish"' in page
    assert "lic-&lt;e3&gt;" in page and "lic-<e3>" not in page
    plain = mr.render_html(mr.build_report("t", phase_results=[{"phase": "wait", "status": "done"}], generated="2026-01-01T00:00:00.000Z"))
    assert "Audit log: group license processing" not in plain


def test_not_readable_is_said():
    page = mr.render_html(mr.build_report("t", phase_results=[dict(AUDIT, status="not readable", detail="the audit log cannot be read", finish=[])]))
    assert "not readable: the audit log cannot be read" in page and 'id="audit-finish"' not in page
