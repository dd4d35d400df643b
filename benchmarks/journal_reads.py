#!/usr/bin/env python3
"""The journal reads of direct_license's verified batches: the whole journal at every reading, or only its new lines.

    .venv/bin/python benchmarks/journal_reads.py [--users 100000] [--batch-size 500] [--out FILE.json]

``verify_batches`` reads the tenant again after every batch and compares the reading with what the journal
says this migration removed. Until 0.3 each reading folded the whole journal again
(``removed_by_journal(JournalReader(path))``): two lines per removal, so a run of B batches parsed about
B x journal / 2 lines, quadratic in the tenant. It now follows the journal (``JournalReader.new_entries`` and
``readds.JournalRemovals``): each line is parsed once.

The journal is written batch by batch with the collection's own ``Journal`` writer (a run line, then an intent
and an ``ok`` result per removal), in a temporary directory on ``/dev/shm`` when there is one so that the
writer's fsync per line does not dominate the figures. After each batch both reads run and must give the same
removals; only the reads are timed (CPU of this process, ``time.process_time``). No HTTP, no emulator: the
readings' Graph side is the same either way and is measured by many_tenants.py.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, HERE)

from ansible_collections.entraops.licensing.plugins.module_utils.journal import Journal, JournalReader  # noqa: E402
from ansible_collections.entraops.licensing.plugins.module_utils.readds import JournalRemovals, removed_by_journal  # noqa: E402
from results_file import emit  # noqa: E402

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # Office 365 E3 (shared/fixtures/skus.json)


def user_id(number):
    return "00000000-0000-4000-8000-%012d" % number


def measure(users, batch_size, directory):
    """Figures of one run: journal lines, lines parsed and read CPU for each way of reading."""
    path = os.path.join(directory, "journal.jsonl")
    follower = JournalReader(path)
    removals = JournalRemovals()
    whole = {"lines_parsed": 0, "cpu_s": 0.0}
    follow = {"lines_parsed": 0, "cpu_s": 0.0}
    readings = 0
    with Journal(path, run_id="journal-reads-benchmark") as journal:
        for start in range(0, users, batch_size):
            batch = start // batch_size + 1
            for number in range(start, min(start + batch_size, users)):
                op_id = journal.intent("remove_direct", user_id(number), "u%d@contoso.com" % number, E3, "ENTERPRISEPACK", [], batch=batch)
                journal.result(op_id, "ok", status=200)
            began = time.process_time()
            reader = JournalReader(path)
            by_whole = removed_by_journal(reader)
            whole["cpu_s"] += time.process_time() - began
            whole["lines_parsed"] += reader.entries
            began = time.process_time()
            parsed_before = follower.entries
            by_follow = dict(removals.feed(follower.new_entries()).removed)
            follow["cpu_s"] += time.process_time() - began
            follow["lines_parsed"] += follower.entries - parsed_before
            if by_follow != by_whole:
                raise SystemExit("after batch %d the two reads disagree: %d against %d removals" % (batch, len(by_follow), len(by_whole)))
            readings += 1
    lines = JournalReader(path)
    journal_lines = sum(1 for _entry in lines)
    for figures in (whole, follow):
        figures["cpu_s"] = round(figures["cpu_s"], 3)
    return {
        "users": users,
        "batch_size": batch_size,
        "readings": readings,
        "journal_lines": journal_lines,
        "removals": len(by_follow),
        "whole_journal_each_reading": whole,
        "new_lines_only": follow,
        "cpu_ratio": round(whole["cpu_s"] / follow["cpu_s"], 1) if follow["cpu_s"] else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=100000, help="removals in the journal (default 100000)")
    parser.add_argument("--batch-size", type=int, default=500, help="removals per batch, one reading after each (default 500, the role's)")
    parser.add_argument("--out", help="JSON output (default: print only)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.batch_size < 1:
        parser.error("--users and --batch-size must be at least 1, got %d and %d" % (args.users, args.batch_size))
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="entraops-journal-reads-", dir=base) as directory:
        figures = measure(args.users, args.batch_size, directory)
    figures["command"] = "journal_reads.py --users %d --batch-size %d" % (args.users, args.batch_size)
    emit(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
