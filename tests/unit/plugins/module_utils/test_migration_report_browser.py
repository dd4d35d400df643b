# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The HTML report opened in headless Chromium: the figures render (cards, SVG bars laid out to scale).

Needs Debian's ``chromium`` package (scripts/setup installs it). The page records, after load,
the width the browser gave each bar (``data-rendered-width``); the DOM Chromium dumps is checked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import migration_report as mr

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
GROUP = "4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0001"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def records(count, verdict, direct, inherited, start):
    return [
        {
            "user_id": "00000000-0000-4000-8000-%012d" % (start + index),
            "user_principal_name": "u%d@contoso.com" % (start + index),
            "sku_id": SKU,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": verdict,
            "direct": direct,
            "inherited_from": [GROUP] if inherited else [],
            "plans_lost": [],
            "errors": [],
        }
        for index in range(count)
    ]


def report():
    before = records(90, "safe_to_remove", True, True, 0) + records(10, "direct_only", True, False, 90)
    after = records(60, "inherited_only", False, True, 0) + records(30, "safe_to_remove", True, True, 60) + before[90:]
    built = mr.build_report("Browser check <script>alert(1)</script>", before_records=before, after_records=after)
    # Batch figures as a run leaves them: the canary and batch 1 done, batch 2 not yet.
    built["batches"] = [
        {"batch": 0, "planned": 10, "migrated": 10, "skipped": 0, "failed": 0, "pending": 0, "runs": 1},
        {"batch": 1, "planned": 50, "migrated": 48, "skipped": 0, "failed": 2, "pending": 0, "runs": 2},
        {"batch": 2, "planned": 30, "migrated": 0, "skipped": 0, "failed": 0, "pending": 30, "runs": 0},
    ]
    return built


def chromium(tmp_path, *arguments):
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--user-data-dir=%s" % (tmp_path / "profile"),
    ] + list(arguments)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: scripts/setup installs it (apt-get install chromium)")
    tmp_path = tmp_path_factory.mktemp("browser")
    html_path = str(tmp_path / "report.html")
    mr.write_report_files(report(), html_path=html_path)
    dom = chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", "file://" + html_path)
    screenshot = str(tmp_path / "report.png")
    chromium(tmp_path, "--window-size=1000,1400", "--screenshot=%s" % screenshot, "file://" + html_path)
    return {"dom": dom, "screenshot": screenshot}


def bars(dom, row):
    found = {}
    for tag in re.findall(r'<rect [^>]*data-row="%s"[^>]*>' % re.escape(row), dom):
        attributes = dict(re.findall(r'([a-z-]+)="([^"]*)"', tag))
        found[attributes["data-key"]] = (int(attributes["data-value"]), int(attributes["data-rendered-width"]))
    return found


def test_every_bar_was_laid_out(page):
    total = len(re.findall(r"<rect [^>]*data-value=", page["dom"]))
    assert total == 3 * 4 + 2 * 3
    assert 'data-rendered-bars="%d"' % total in page["dom"]


def test_batch_bars_show_their_numbers_to_scale(page):
    batch1 = bars(page["dom"], "batch 1")
    assert batch1["migrated"][0] == 48 and batch1["failed"][0] == 2
    # 48 and 2 migrated/failed on a scale where 50 is the widest bar: widths keep the ratio (within rounding).
    assert abs(batch1["migrated"][1] - 24 * batch1["failed"][1]) <= 24
    assert bars(page["dom"], "batch 2")["pending"][0] == 30 and bars(page["dom"], "batch 2")["migrated"][1] == 0
    assert bars(page["dom"], "canary (0)")["migrated"][0] == 10


def test_before_and_after_paths(page):
    before, after = bars(page["dom"], "before removal"), bars(page["dom"], "after")
    assert before["both"][0] == 90 and before["direct_only"][0] == 10 and before["inherited_only"] == (0, 0)
    assert after["inherited_only"][0] == 60 and after["both"][0] == 30
    assert after["inherited_only"][1] == pytest.approx(2 * after["both"][1], abs=2)


def test_cards_and_escaped_title(page):
    assert re.search(r'id="total-already-inherited"><div class="n">60</div>', page["dom"])
    assert re.search(r'id="total-pending"><div class="n">30</div>', page["dom"])
    assert "<script>alert(1)</script>" not in page["dom"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page["dom"]


def test_screenshot_is_an_image(page):
    with open(page["screenshot"], "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(page["screenshot"]) > 10000
