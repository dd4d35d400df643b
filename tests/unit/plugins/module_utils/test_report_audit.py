# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The report's audit-log section (report_audit) and its place in the HTML report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils import migration_report as mr
from ansible_collections.entraops.licensing.plugins.module_utils.report_audit import audit_finish_rows, readd_rows

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


REMOVE = {
    "phase": "remove",
    "batch": 1,
    "status": "done",
    "readded": [
        {
            "user_principal_name": "a<b>@contoso.com",
            "sku_part_number": "ENTERPRISEPACK",
            "batch": 0,
            "removed_at": "t1",
            "writer_label": "Legacy licensing script (app 3c1d8a52-6b8e-4f0e-9d7a-2f1e5b7c9a01)",
            "written_at": "t2",
        }
    ],
    "readded_total": 1,
    "joiners_not_in_plan": ["new.joiner@contoso.com"],
    "joiners_not_in_plan_total": 1,
}


def test_readds_and_joiners_from_the_newest_remove_result():
    rows, total, joiners, joiners_total = readd_rows([dict(REMOVE, batch=0, readded=[], readded_total=0), REMOVE, {"phase": "remove", "batch": 2}])
    assert total == 1 and rows[0][4].startswith("Legacy licensing script") and joiners == ["new.joiner@contoso.com"] and joiners_total == 1
    assert readd_rows([{"phase": "remove", "batch": 0}]) is None


def test_html_lists_readds_with_their_writer_and_joiners():
    page = mr.render_html(mr.build_report("t", phase_results=[REMOVE], generated="2026-01-01T00:00:00.000Z"))
    assert 'id="readded"' in page and "Legacy licensing script (app 3c1d8a52" in page and "a&lt;b&gt;@contoso.com" in page
    assert 'id="joiners"' in page and "new.joiner@contoso.com" in page
    clean = mr.render_html(mr.build_report("t", phase_results=[dict(REMOVE, readded=[], readded_total=0, joiners_not_in_plan=[], joiners_not_in_plan_total=0)]))
    assert '<p class="ok" id="readded-total">None.</p>' in clean and '<p class="ok" id="joiners-total">None.</p>' in clean


def test_per_sku_figures_and_table():
    from ansible_collections.entraops.licensing.plugins.module_utils.report_skus import SkuFigures, per_sku_rows  # pylint: disable=import-outside-toplevel

    figures = SkuFigures()
    for part, outcome in (("ENTERPRISEPACK", "migrated"), ("ENTERPRISEPACK", "skipped"), ("EMS", "migrated"), ("MCOMEETADV", "skipped"), ("EMS", "failed")):
        figures.add({"sku_part_number": part, "outcome": outcome})
    per_sku = figures.result()
    assert list(per_sku) == ["EMS", "ENTERPRISEPACK", "MCOMEETADV"]
    assert per_sku["EMS"]["migrated"] == 1 and per_sku["EMS"]["failed"] == 1 and per_sku["MCOMEETADV"]["skipped"] == 1
    assert per_sku_rows(per_sku)[0] == ("EMS", 2, 1, 0, 0, 0, 1, 0)
    page = mr.render_html(dict(mr.build_report("t", generated="2026-01-01T00:00:00.000Z"), per_sku=per_sku))
    assert 'id="per-sku"' in page and "MCOMEETADV" in page
    single = mr.render_html(dict(mr.build_report("t", generated="2026-01-01T00:00:00.000Z"), per_sku={"EMS": per_sku["EMS"]}))
    assert 'id="per-sku"' not in page.replace('id="per-sku"', "", 1) and 'id="per-sku"' not in single
