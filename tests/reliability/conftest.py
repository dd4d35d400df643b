# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures of the reliability campaign and the figures table printed at the end of every run.

Tests report their figures with ``record_property('reliability', {...})``; xdist carries
user properties from the workers to the controller, where ``pytest_runtest_logreport`` collects
them and ``pytest_terminal_summary`` prints one table (``-s`` is not needed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

import pytest

from ansible_collections.entraops.licensing.tests.reliability.campaign import build_tenant
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS

SCENARIO_USERS = 200
_FIGURES = []
_OUTCOMES = {}


def pytest_addoption(parser):
    group = parser.getgroup("reliability")
    group.addoption(
        "--single-fault-sample", type=int, default=None, help="call indices per fault kind in the single-fault explorer (default 3; 0 = every index)"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "exhaustive: the single-fault explorer over every call index (run by scripts/reliability)")
    config.addinivalue_line("markers", "role: the role end to end through ansible-playbook, minutes each (run by scripts/reliability)")


@pytest.fixture(scope="session")
def scenario_tenant():
    return build_tenant(SCENARIO_USERS)


@pytest.fixture(scope="session")
def campaign_emulator(scenario_tenant):
    """One emulator per xdist worker; each test loads the tenant it needs."""
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    with Emulator(tenant=copy.deepcopy(scenario_tenant), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu


@pytest.fixture
def figures(record_property):
    """Call with a dict (kind + figures) to add a row to the campaign table."""

    def add(**row):
        record_property("reliability", json.dumps(row, sort_keys=True))

    return add


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.nodeid] = report.outcome
        for name, value in report.user_properties:
            if name == "reliability":
                row = json.loads(value)
                row["nodeid"] = report.nodeid
                _FIGURES.append(row)


def _outcome(row):
    return "PASS" if _OUTCOMES.get(row["nodeid"]) == "passed" else "FAIL"


def _format_skips(skips):
    return ", ".join("%s: %d" % (reason, count) for reason, count in sorted((skips or {}).items())) or "-"


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability campaign")
    scenarios = sorted((row for row in _FIGURES if row["kind"] == "scenario"), key=lambda row: row["scenario"])
    if scenarios:
        header = "%-54s %-7s %8s  %-40s %6s %9s %7s" % ("scenario", "outcome", "migrated", "skipped (reason: users)", "losses", "injected", "pending")
        write(header)
        write("-" * len(header))
        for row in scenarios:
            cells = (
                row["scenario"][:54],
                _outcome(row),
                row["migrated"],
                _format_skips(row["skipped"])[:40],
                row["losses"],
                row.get("injected_losses", 0),
                row.get("pending", 0),
            )
            write("%-54s %-7s %8d  %-40s %6d %9s %7d" % cells)
        write("  losses = loss-ledger entries caused by the collection; injected = caused by the scenario's own out-of-band change;")
        write("  pending = journal intents left without a result after the resume")
    explorer = [row for row in _FIGURES if row["kind"] == "single_fault"]
    if explorer:
        by_fault = {}
        for row in explorer:
            total = by_fault.setdefault(row["fault"], dict(runs=0, losses=0, mismatches=0, pending=0, outcome="PASS"))
            for name in ("runs", "losses", "mismatches", "pending"):
                total[name] += row[name]
            if _outcome(row) != "PASS":
                total["outcome"] = "FAIL"
        write("single-fault explorer (fault-free run: %d Graph calls):" % explorer[0]["calls"])
        for fault, total in sorted(by_fault.items()):
            write(
                "  %-11s %-4s %4d run(s), %d loss(es), %d final-state mismatch(es), %d intent(s) left pending"
                % (fault, total["outcome"], total["runs"], total["losses"], total["mismatches"], total["pending"])
            )
    bad = [row for row in _FIGURES if row["kind"] == "bad_input"]
    if bad:
        write(
            "bad input: %d distinct case(s) tried over %d module(s), %d wrote to Graph, %d traceback(s), %d message(s) not naming the value [%s]"
            % (
                sum(row["cases"] for row in bad),
                len(set(row["module"] for row in bad)),
                sum(row["writes"] for row in bad),
                sum(row["tracebacks"] for row in bad),
                sum(row["unnamed"] for row in bad),
                "PASS" if all(_outcome(row) == "PASS" for row in bad) else "FAIL",
            )
        )
    leaks = [row for row in _FIGURES if row["kind"] == "secrets"]
    if leaks:
        write(
            "secrets: %d leak(s) in %d place(s) checked (%s); %d user-data file(s) checked for owner-only mode, %d too open"
            % (
                sum(row["leaks"] for row in leaks),
                sum(row["places"] for row in leaks),
                ", ".join(row["what"] for row in leaks),
                sum(row.get("files", 0) for row in leaks),
                sum(row.get("open_files", 0) for row in leaks),
            )
        )
    transport = [row for row in _FIGURES if row["kind"] == "transport"]
    if transport:
        write("transport and files: %d check(s), %s" % (len(transport), ", ".join("%s %s" % (row["check"], _outcome(row)) for row in transport)))
