# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration plan file: which direct assignments to remove, and in which batch.

``license_assignment_info`` writes it (``plan_path``), ``direct_license`` reads it
(``plan_path`` + ``batches``), and the change record names its batches. Format (UTF-8 JSON, one
row per line so it can be read, grepped and diffed)::

    {"format": "entraops.licensing/plan",
     "version": 1,
     "created": "2025-06-30T12:00:00.000Z",
     "tenant_id": "contoso.onmicrosoft.com",
     "trusted_groups": ["<group id>", ...],
     "canary_size": 10,
     "batch_size": 500,
     "batches": 3,
     "summary": {"<verdict>": <count>, ...},
     "rows": [
      {"user_id": "...", "user_principal_name": "...", "sku_id": "...", "sku_part_number": "...",
       "verdict": "safe_to_remove", "direct": true, "direct_disabled_plans": ["<plan id>", ...],
       "inherited_from": [...], "healthy_inherited_from": [...], "plans_lost": [...], "errors": [...],
       "batch": 0},
      ...
     ]}

``fingerprint`` (``"sha256:<64 hex digits>"``) identifies the plan's content, what a change record
approves: the SHA-256 of one line per row, in file order, each row as
``json.dumps(row, ensure_ascii=False, sort_keys=True)`` after its GUIDs are lower-cased, then a last
line ``{"tenant_id": ..., "trusted_groups": [...]}`` in the same encoding (trusted groups sorted,
lower-case GUIDs, null when the plan has none), every line ending in ``\n``. Whitespace, key order, GUID case and the header's other keys (``created``,
``summary`` ...) do not count; a changed, added or removed row, a changed batch number, another
tenant or other trusted groups do. Readers recompute it from the content (``content_fingerprint``)
and compare it with the one recorded.

``batches`` is the number of distinct batch numbers; ``summary`` counts rows per verdict. Batch 0
is the canary (``canary_size`` rows), then 1, 2, ... of ``batch_size`` rows; rows that are not to
be removed (any verdict other than ``safe_to_remove``) are kept for the record with ``batch: null``.
Other keys in ``rows`` and at the top level are kept. GUIDs are lower-case.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import json
import os
import re

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX; plans are then not locked
    fcntl = None

from ansible_collections.entraops.licensing.plugins.module_utils.guid import canonical_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    SAFE_TO_REMOVE,
    batch_number,
    batch_sort_key,
    check_batch_sizes,
    plan_row,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import (
    ROWS_PER_WRITE,
    JsonStream,
    RecordsError,
    atomic_text_file,
    resolve_output_path,
    utc_now_iso,
    verdict_summary,
)

PLAN_FORMAT = "entraops.licensing/plan"
PLAN_VERSION = 1

# Keys the writer computes; a caller's meta cannot override them.
_COMPUTED_KEYS = ("format", "version", "batches", "summary", "rows", "fingerprint")
FINGERPRINT_PREFIX = "sha256:"
_FINGERPRINT_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_GUID_LIST_FIELDS = ("direct_disabled_plans", "inherited_from", "healthy_inherited_from")
_STRING_LIST_FIELDS = ("plans_lost", "errors")
# How a plan row is written: what json.dumps(row, ensure_ascii=False, sort_keys=True) gives, without
# making an encoder for every row.
_ROW_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _is_int(value):
    # bool is an int subclass; a batch of true is a mistake, not batch 1.
    return isinstance(value, int) and not isinstance(value, bool)


class _GuidNormaliser(dict):
    """Lower-cased GUID for a value, or None; remembered, as plan and group GUIDs repeat on every row."""

    def __missing__(self, value):
        normalised = canonical_guid(value)
        if isinstance(value, str):
            self[value] = normalised
        return normalised


def _row_problem(row, guids):
    """What is wrong with one plan row, or None. Normalises the row's GUIDs in place."""
    if not isinstance(row, dict):
        return "is a %s, expected an object" % type(row).__name__
    for field in ("user_id", "sku_id"):
        if field not in row:
            return "is missing %s" % field
        # A plan's SKU ids repeat (remembered); its user ids do not (a cache would only grow).
        value = row[field]
        guid = (guids[value] if isinstance(value, str) else None) if field == "sku_id" else canonical_guid(value)
        if guid is None:
            return "%s %r is not a GUID" % (field, row[field])
        row[field] = guid
    if not isinstance(row.get("verdict"), str) or not row["verdict"]:
        return "verdict must be a non-empty string, got %r" % (row.get("verdict"),)
    if "direct" in row and not isinstance(row["direct"], bool):
        return "direct must be true or false, got %r" % (row["direct"],)
    for field in _GUID_LIST_FIELDS:
        values = row.get(field)
        if values is None:
            continue
        normalised = [guids[value] if isinstance(value, str) else None for value in values] if isinstance(values, list) else [None]
        if None in normalised:
            return "%s must be a list of GUIDs, got %r" % (field, values)
        row[field] = normalised
    for field in _STRING_LIST_FIELDS:
        values = row.get(field)
        if values is not None and (not isinstance(values, list) or (values and not all(isinstance(value, str) for value in values))):
            return "%s must be a list of strings, got %r" % (field, values)
    batch = row.get("batch")
    if batch is not None and (not _is_int(batch) or batch < 0):
        return "batch must be a whole number >= 0 or null, got %r" % (batch,)
    return None


def _check_rows(rows, where):
    """Validate rows; return (verdict counts, sorted distinct batch numbers). Raises RecordsError."""
    counts = {}
    batch_numbers = set()
    seen = {}
    guids = _GuidNormaliser()
    for index, row in enumerate(rows):
        problem = _row_problem(row, guids)
        if problem:
            raise RecordsError("%s: row %d (rows[%d]) %s" % (where, index + 1, index, problem))
        key = (row["user_id"], row["sku_id"])
        if key in seen:
            raise RecordsError("%s: row %d (rows[%d]) repeats user %s and SKU %s of row %d" % (where, index + 1, index, key[0], key[1], seen[key] + 1))
        seen[key] = index
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        if row.get("batch") is not None:
            batch_numbers.add(row["batch"])
    return counts, sorted(batch_numbers)


def _check_size(name, value, minimum):
    if not _is_int(value) or value < minimum:
        raise RecordsError("%s must be a whole number >= %d, got %r" % (name, minimum, value))
    return value


def _checked_meta(meta):
    meta = dict(meta or {})
    reserved = sorted(key for key in meta if key in _COMPUTED_KEYS)
    if reserved:
        raise RecordsError("plan meta cannot set %s: the plan writer computes them" % ", ".join(reserved))
    if meta.get("canary_size") is not None:
        _check_size("canary_size", meta["canary_size"], 0)
    if meta.get("batch_size") is not None:
        _check_size("batch_size", meta["batch_size"], 1)
    if meta.get("tenant_id") is not None and not isinstance(meta["tenant_id"], str):
        raise RecordsError("tenant_id must be a string, got %r" % (meta["tenant_id"],))
    trusted_groups = meta.get("trusted_groups")
    if trusted_groups is not None:
        canonical_groups = [canonical_guid(group) for group in trusted_groups] if isinstance(trusted_groups, (list, tuple)) else [None]
        if None in canonical_groups:
            raise RecordsError("trusted_groups must be a list of group GUIDs, got %r" % (trusted_groups,))
        meta["trusted_groups"] = canonical_groups
    return meta


class PlanFingerprint:
    """The SHA-256 fingerprint of a plan's content, fed the encoded rows as they come (see the module docstring).

    The header's part comes last, so a plan is fingerprinted in one pass whatever the order of its keys.
    """

    def __init__(self):
        self._hash = hashlib.sha256()

    def add(self, encoded_row):
        """``encoded_row``: the row as _ROW_ENCODER writes it (GUIDs canonical)."""
        self._hash.update(encoded_row.encode("utf-8") + b"\n")

    def add_lines(self, encoded_rows):
        self._hash.update("".join(row + "\n" for row in encoded_rows).encode("utf-8"))

    def value(self, header):
        """The fingerprint, given the plan header (or meta) that holds ``tenant_id`` and ``trusted_groups``."""
        tenant_id = header.get("tenant_id")
        trusted_groups = header.get("trusted_groups")
        basis = {
            "tenant_id": (canonical_guid(tenant_id) or tenant_id) if isinstance(tenant_id, str) else tenant_id,
            "trusted_groups": _sorted_group_ids(trusted_groups) if isinstance(trusted_groups, list) else None,
        }
        final = self._hash.copy()
        final.update(_ROW_ENCODER.encode(basis).encode("utf-8") + b"\n")
        return FINGERPRINT_PREFIX + final.hexdigest()


def normalize_fingerprint(value, what="plan_fingerprint"):
    """``value`` as ``sha256:<lower-case hex>``; RecordsError naming the value and the expected form otherwise."""
    match = _FINGERPRINT_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise RecordsError(
            '%s %r is not a plan fingerprint: expected "sha256:" and 64 hexadecimal digits, as '
            "license_assignment_info returns it in plan_fingerprint" % (what, value)
        )
    return FINGERPRINT_PREFIX + match.group(1).lower()


def check_fingerprint(plan, approved, path):
    """Raise RecordsError unless the plan's content (``plan['content_fingerprint']``) is the ``approved`` one."""
    approved = normalize_fingerprint(approved)
    actual = plan["content_fingerprint"]
    if actual != approved:
        recorded = plan.get("fingerprint")
        how = (
            "it was edited after it was written (it was written as %s)" % recorded
            if recorded and recorded != actual
            else "it is another plan (regenerated, or made for another tenant or scope)"
        )
        raise RecordsError(
            "plan %s is not the approved plan: its content has fingerprint %s, the approved fingerprint is %s; "
            "%s. Nothing was sent to Graph." % (path, actual, approved, how)
        )
    return actual


@contextlib.contextmanager
def locked_plan(path, purpose):
    """Hold an exclusive lock on the plan file at ``path`` (if it exists) for the block.

    Two runs that write from the same plan at once (a relaunched job while the first still runs), or
    a new plan written over one a run is executing, fail here with a clear message instead of both
    going on. The lock is advisory (flock) and ends with the process.
    """
    if fcntl is None or not os.path.exists(path):
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RecordsError("cannot open plan %s to lock it: %s" % (path, exc.strerror or exc))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RecordsError("plan %s is in use by another run (it is locked); wait for that run to finish before %s" % (path, purpose))
        yield
    finally:
        os.close(fd)


def _header(meta, rows_summary, batch_count):
    header = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "created": meta.get("created") or utc_now_iso()}
    for key in ("tenant_id", "trusted_groups", "canary_size", "batch_size"):
        header[key] = meta.get(key)
    for key, value in meta.items():
        if key not in header:
            header[key] = value
    header["batches"] = batch_count
    header["summary"] = verdict_summary(rows_summary)
    header["fingerprint"] = None  # set by the writer once the rows are encoded
    return header


def _fingerprint_of(meta, encoded_chunks):
    fingerprint = PlanFingerprint()
    for chunk in encoded_chunks:
        fingerprint.add_lines(chunk)
    return fingerprint.value(meta)


def write_plan(path, rows, meta=None):
    """Write a plan file atomically and return ``{"path", "rows", "batches", "summary"}``.

    ``rows`` are plan rows (``licensing.assign_batches`` numbers them: the collection's one batching
    order); they are validated first, so a plan that cannot be read back is never written. ``meta`` holds ``tenant_id``, ``trusted_groups``,
    ``canary_size``, ``batch_size`` and optionally ``created`` (ISO 8601) and other
    JSON-serialisable keys; ``format``, ``version``, ``batches``, ``summary`` and ``rows`` are
    computed. Rows are written one per line, never as one big string.
    """
    meta = _checked_meta(meta)
    rows = rows if isinstance(rows, list) else list(rows)
    absolute_path = resolve_output_path(path, "plan")
    counts, batch_numbers = _check_rows(rows, "plan %s" % absolute_path)
    header = _header(meta, counts, len(batch_numbers))
    chunks = [[_ROW_ENCODER.encode(row) for row in rows[start : start + ROWS_PER_WRITE]] for start in range(0, len(rows), ROWS_PER_WRITE)]
    header["fingerprint"] = _fingerprint_of(meta, chunks)
    _write_plan_file(absolute_path, header, chunks)
    return {"path": absolute_path, "rows": len(rows), "batches": len(batch_numbers), "summary": header["summary"], "fingerprint": header["fingerprint"]}


def _write_plan_file(absolute_path, header, row_chunks):
    """Write the header, then the encoded rows one per line; ``row_chunks`` gives them a list at a time.

    Never the plan as one string, nor a write() per row (a text file's write costs about as much as
    encoding the row).
    """
    try:
        header_text = json.dumps(header, ensure_ascii=False, indent=1)
    except (TypeError, ValueError) as exc:
        raise RecordsError("plan %s: meta is not JSON-serialisable: %s" % (absolute_path, exc))
    with atomic_text_file(absolute_path, "plan", encoding="utf-8") as stream:
        # The header is written without its closing brace so the rows can stream after it.
        stream.write(header_text[:-2])
        stream.write(',\n "rows": [')
        separator = "\n  "
        for chunk in row_chunks:
            if chunk:
                stream.write(separator + ",\n  ".join(chunk))
                separator = ",\n  "
        stream.write("\n ]\n}\n" if separator != "\n  " else "]\n}\n")


class PlanBuilder:
    """A plan built while its records arrive, so that little is left to do after the last one.

    ``write_plan(path, licensing.assign_batches(records))`` needs every record before it can sort
    them into batches, then validates and encodes every row. Here each ``safe_to_remove`` record is
    turned into its plan row, validated, normalised and encoded as it arrives (``add``); ``write``
    then sorts the rows' keys, numbers the batches and writes text that is ready. The file is the
    one ``write_plan(path, assign_batches(records), meta)`` writes, byte for byte, and a bad row
    fails ``write`` with the same message (both checked in tests/unit/plugins/module_utils/test_plan_builder.py).

    ``companion``: an optional function of a validated, normalised row (its ``user_id`` and ``sku_id``
    canonical GUIDs) whose result is kept beside it, for example
    ``powershell.PlannedRowText(names, ids_checked=True)``; ``companions()`` gives ``(batch, result)``
    in plan order after ``write``.
    """

    def __init__(self, canary_size=10, batch_size=500, companion=None):
        check_batch_sizes(canary_size, batch_size)
        self.canary_size = canary_size
        self.batch_size = batch_size
        self.companion = companion
        # One tuple per row: (batch_sort_key, encoded row without its opening brace, companion result).
        # A row that failed validation keeps (key, None, problem) and fails write() at its place in the order.
        self._entries = []
        self._guids = _GuidNormaliser()
        self._seen = set()  # hashes of (user id, SKU id): a repeat sends write() to the exact check
        self._suspect = False  # a row failed validation or may repeat another: write() checks in plan order
        self._batches = None

    def add(self, record):
        """Take one classification record; any verdict but ``safe_to_remove`` is ignored (as assign_batches does)."""
        if record.get("verdict") != SAFE_TO_REMOVE:
            return
        row = plan_row(record)
        key = batch_sort_key(row)
        problem = _row_problem(row, self._guids)
        if problem:
            self._suspect = True
            self._entries.append((key, None, problem))
            return
        identity = hash((row["user_id"], row["sku_id"]))
        if identity in self._seen:
            self._suspect = True
        self._seen.add(identity)
        # sort_keys puts "batch" first (every plan row field sorts after it, a unit test checks): write() prefixes it.
        self._entries.append((key, _ROW_ENCODER.encode(row)[1:], self.companion(row) if self.companion is not None else None))

    def write(self, path, meta=None):
        """Write the plan file atomically; ``{"path", "rows", "batches", "summary", "batch_sizes", "fingerprint"}``.

        ``meta`` as for write_plan. ``batch_sizes`` is ``{batch: rows}`` in batch order.
        """
        meta = _checked_meta(meta)
        absolute_path = resolve_output_path(path, "plan")
        self._entries.sort(key=_first)
        if self._suspect:
            self._check_in_order("plan %s" % absolute_path)
        self._batches = [batch_number(position, self.canary_size, self.batch_size) for position in range(len(self._entries))]
        batch_sizes = {}
        for batch in self._batches:
            batch_sizes[batch] = batch_sizes.get(batch, 0) + 1
        header = _header(meta, {SAFE_TO_REMOVE: len(self._entries)} if self._entries else {}, len(batch_sizes))
        header["fingerprint"] = _fingerprint_of(meta, self._row_chunks(batch_sizes))
        _write_plan_file(absolute_path, header, self._row_chunks(batch_sizes))
        return {
            "path": absolute_path,
            "rows": len(self._entries),
            "batches": len(batch_sizes),
            "summary": header["summary"],
            "batch_sizes": batch_sizes,
            "fingerprint": header["fingerprint"],
        }

    def _row_chunks(self, batch_sizes):
        entries, batches = self._entries, self._batches
        opening = dict((batch, '{"batch": %d, ' % batch) for batch in batch_sizes)
        for start in range(0, len(entries), ROWS_PER_WRITE):
            end = start + ROWS_PER_WRITE
            yield [opening[batch] + entry[1] for batch, entry in zip(batches[start:end], entries[start:end])]

    def companions(self):
        """``(batch, companion result)`` per row in plan order; only after write()."""
        if self._batches is None:
            raise RuntimeError("PlanBuilder.companions() before write()")
        return ((batch, entry[2]) for batch, entry in zip(self._batches, self._entries))

    def _check_in_order(self, where):
        # Rare: the first bad or repeated row in plan order fails the plan with _check_rows' message.
        seen = {}
        for index, entry in enumerate(self._entries):
            if entry[1] is None:
                raise RecordsError("%s: row %d (rows[%d]) %s" % (where, index + 1, index, entry[2]))
            row = json.loads("{" + entry[1])
            key = (row["user_id"], row["sku_id"])
            if key in seen:
                raise RecordsError("%s: row %d (rows[%d]) repeats user %s and SKU %s of row %d" % (where, index + 1, index, key[0], key[1], seen[key] + 1))
            seen[key] = index


def _first(entry):
    return entry[0]


@contextlib.contextmanager
def _reading_plan_file(path):
    """Turn what reading the file at ``path`` raises into a RecordsError naming it (a RecordsError passes)."""
    try:
        yield
    except RecordsError:
        raise
    except FileNotFoundError:
        raise RecordsError("plan file %s does not exist" % path)
    except IsADirectoryError:
        raise RecordsError("plan path %s is a directory, not a plan file" % path)
    except UnicodeDecodeError:
        raise RecordsError("%s is not a plan file: it is not UTF-8 text" % path)
    except ValueError as exc:
        raise RecordsError("%s is not a plan file: it is not valid JSON (%s)" % (path, exc))
    except OSError as exc:
        raise RecordsError("cannot read plan file %s: %s" % (path, exc.strerror or exc))


def _load_json(path):
    with _reading_plan_file(path):
        with open(path, "r", encoding="utf-8-sig") as stream:
            return json.load(stream)


def read_plan(path):
    """Read and validate a plan file; return the plan dict (GUIDs lower-case).

    Raises RecordsError naming the file and the problem: not a plan file, unsupported version,
    a row missing ``user_id``, a batch that is not a whole number, ...
    """
    if not isinstance(path, str) or not path:
        raise RecordsError("plan path must be a non-empty string, got %r" % (path,))
    plan = _load_json(path)
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        found = plan.get("format") if isinstance(plan, dict) else type(plan).__name__
        raise RecordsError("%s is not a plan file: format is %r, expected %r" % (path, found, PLAN_FORMAT))
    if plan.get("version") != PLAN_VERSION:
        raise RecordsError("plan %s has version %r; this collection reads version %d" % (path, plan.get("version"), PLAN_VERSION))
    rows = plan.get("rows")
    if not isinstance(rows, list):
        raise RecordsError("plan %s: rows must be a list, got %s" % (path, type(rows).__name__))
    counts, batch_numbers = _check_rows(rows, "plan %s" % path)
    # What the rows say wins over the header: an operator may have edited rows out of a batch.
    plan["batches"] = len(batch_numbers)
    plan["summary"] = verdict_summary(counts)
    fingerprint = PlanFingerprint()
    for row in rows:
        fingerprint.add(_ROW_ENCODER.encode(row))
    plan["content_fingerprint"] = fingerprint.value(plan)
    return plan


def batch_counts(plan):
    """Rows per batch number, as ``{batch: count}`` in batch order."""
    counts = {}
    for row in plan["rows"]:
        batch = row.get("batch")
        if batch is not None:
            counts[batch] = counts.get(batch, 0) + 1
    return dict(sorted(counts.items()))


def _describe_numbers(numbers):
    """'0-3, 7' for [0, 1, 2, 3, 7]: a plan of 200 batches stays readable in a message."""
    ranges = []
    for number in sorted(numbers):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    if not ranges:
        return "none"
    return ", ".join(str(first) if first == last else "%d-%d" % (first, last) for first, last in ranges)


def _check_batch_numbers(batches):
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__iter__"):
        raise RecordsError("batches must be a list of batch numbers, got %r" % (batches,))
    batches = list(batches)
    not_numbers = [batch for batch in batches if not _is_int(batch)]
    if not_numbers:
        raise RecordsError("batches must be whole numbers, got %s" % ", ".join(repr(batch) for batch in not_numbers))
    return batches


def select_batches(plan, batches=None):
    """Rows of the given batch numbers (all batched rows when ``batches`` is None), batch by batch.

    Raises RecordsError naming batch numbers the plan does not have and the ones it has. A plan with
    no batch at all (nothing was safe to remove when it was written) has nothing to run, whichever
    batches are asked for: an empty list, not an error.
    """
    existing = batch_counts(plan)
    if batches is None or not existing:
        wanted = set(existing)
        if batches is not None:
            _check_batch_numbers(batches)
    else:
        wanted = set(_check_batch_numbers(batches))
        unknown = sorted(wanted - set(existing))
        if unknown:
            named = ("batch %d is" % unknown[0]) if len(unknown) == 1 else ("batches %s are" % ", ".join(str(number) for number in unknown))
            raise RecordsError("%s not in the plan; the plan has batches %s" % (named, _describe_numbers(existing)))
    selected = [row for row in plan["rows"] if row.get("batch") in wanted]
    selected.sort(key=lambda row: row["batch"])
    return selected


def scan_plan(path, on_row):
    """Read and validate a plan file row by row, without holding its rows: for large plans.

    Calls ``on_row(row)`` for every valid row (GUIDs lower-case, as ``read_plan`` gives them), in
    file order, and returns the plan's other keys with ``batches`` and ``summary`` computed from the
    rows, plus ``batch_counts`` (``{batch: rows}`` in batch order) and ``content_fingerprint`` (the
    fingerprint of the content as read; ``fingerprint`` is the one recorded when it was written). Validates as ``read_plan`` does
    (a duplicate user and SKU, a bad GUID or batch ... raise RecordsError naming the row); a file
    that turns out not to be a plan (format or version) raises too, after its rows were passed on
    when the header comes after them. Memory: one row at a time plus a key per row.
    """
    if not isinstance(path, str) or not path:
        raise RecordsError("plan path must be a non-empty string, got %r" % (path,))
    header = {}
    rows = _RowScan(path)
    rows_seen = False
    rows_type = "NoneType"

    def check_header():
        if header.get("format") != PLAN_FORMAT:
            raise RecordsError("%s is not a plan file: format is %r, expected %r" % (path, header.get("format"), PLAN_FORMAT))
        if header.get("version") != PLAN_VERSION:
            raise RecordsError("plan %s has version %r; this collection reads version %d" % (path, header.get("version"), PLAN_VERSION))

    with _reading_plan_file(path):
        with open(path, "r", encoding="utf-8-sig") as stream:
            for event, key, value in JsonStream(stream).events(("rows",)):
                if key != "rows":
                    header[key] = value
                elif event == "value":
                    rows_type = type(value).__name__ if value is not None else "NoneType"
                elif event == "start":
                    rows_seen = True
                    if "format" in header:
                        check_header()
                elif event == "item":
                    on_row(rows.add(value))
    check_header()
    if not rows_seen:
        raise RecordsError("plan %s: rows must be a list, got %s" % (path, rows_type))
    header["batches"] = len(rows.batch_sizes)
    header["summary"] = verdict_summary(rows.counts)
    header["batch_counts"] = dict(sorted(rows.batch_sizes.items()))
    header["content_fingerprint"] = rows.fingerprint(header)
    return header


class _RowScan:
    """scan_plan's per-row work: validate and normalise a row, count it, and feed the fingerprint."""

    def __init__(self, path):
        self.path = path
        self.counts, self.batch_sizes, self._seen = {}, {}, {}
        self._guids = _GuidNormaliser()
        self._skus = {}
        self._fingerprint = PlanFingerprint()
        self._encoded = []

    def add(self, value):
        """The row, validated and normalised; raises RecordsError naming it."""
        index = sum(self.counts.values())
        problem = _row_problem(value, self._guids)
        if problem:
            raise RecordsError("plan %s: row %d (rows[%d]) %s" % (self.path, index + 1, index, problem))
        value["sku_id"] = self._skus.setdefault(value["sku_id"], value["sku_id"])
        row_key = (value["user_id"], value["sku_id"])
        if row_key in self._seen:
            raise RecordsError(
                "plan %s: row %d (rows[%d]) repeats user %s and SKU %s of row %d"
                % (self.path, index + 1, index, row_key[0], row_key[1], self._seen[row_key] + 1)
            )
        self._seen[row_key] = index
        self.counts[value["verdict"]] = self.counts.get(value["verdict"], 0) + 1
        if value.get("batch") is not None:
            self.batch_sizes[value["batch"]] = self.batch_sizes.get(value["batch"], 0) + 1
        self._encoded.append(_ROW_ENCODER.encode(value))
        if len(self._encoded) >= ROWS_PER_WRITE:
            self._fingerprint.add_lines(self._encoded)
            self._encoded = []
        return value

    def fingerprint(self, header):
        self._fingerprint.add_lines(self._encoded)
        self._encoded = []
        return self._fingerprint.value(header)


# What the removal engine reads of a plan row; the rest of the row (plan lists, reasons) is not kept.
REMOVAL_ROW_FIELDS = ("user_id", "user_principal_name", "sku_id", "sku_part_number", "batch")


def read_removal_rows(path, batches=None, approved_fingerprint=None, for_restore=False):
    """(rows, plan header) of the chosen batches of the plan at ``path``, for direct_license.

    The plan is read row by row (scan_plan) and only the fields the engine needs are kept, so a
    100,000-row plan is never in memory as a whole. Rows come batch by batch, in plan order within a
    batch. With ``approved_fingerprint``, a plan whose content has another fingerprint is refused
    (RecordsError naming both); nothing here talks to Graph, so that happens before any call. The
    header carries ``content_fingerprint`` (and ``batch_counts``) for the run's result and journal.

    ``for_restore``: each row also carries ``disabled_plans``, the row's ``direct_disabled_plans`` (the
    direct assignment's disabled plans when the plan was written: what a restore from the plan puts back).
    """
    if approved_fingerprint is not None:
        normalize_fingerprint(approved_fingerprint)  # a malformed value fails before the file is read
    if isinstance(path, str) and path and not os.path.exists(path):
        raise RecordsError(missing_plan_message(path, approved_fingerprint))
    rows = []
    shared = {}  # one string per SKU id and part number, not one per row

    def keep(row):
        if row.get("verdict") == SAFE_TO_REMOVE and row.get("batch") is not None:
            kept = dict((field, row.get(field)) for field in REMOVAL_ROW_FIELDS)
            for field in ("sku_id", "sku_part_number"):
                if isinstance(kept[field], str):
                    kept[field] = shared.setdefault(kept[field], kept[field])
            if for_restore:
                kept["disabled_plans"] = list(row.get("direct_disabled_plans") or [])
            rows.append(kept)

    header = scan_plan(path, keep)
    if approved_fingerprint is not None:
        check_fingerprint(header, approved_fingerprint, path)
    # The batch numbers are checked against the plan's (every batched row's), as select_batches does.
    select_batches({"rows": [{"batch": batch} for batch in header["batch_counts"]]}, batches)
    if batches is not None:
        wanted = set(batches)
        rows = [row for row in rows if row["batch"] in wanted]
    rows.sort(key=lambda row: row["batch"])
    return rows, header


def missing_plan_message(path, approved_fingerprint=None):
    """Why a run that needs the plan at ``path`` (the approved one, when its fingerprint is given) stops when it is not there."""
    expected = (
        "the approved plan (fingerprint %s)" % normalize_fingerprint(approved_fingerprint)
        if approved_fingerprint
        else "the plan the batches were approved with"
    )
    return (
        "plan file %s does not exist: %s is expected there. A plan is the change artifact: it must be on durable storage "
        "(in an execution environment, a volume mounted at that path) and is not written again for a run, since a new plan "
        "has other batches and another fingerprint. Nothing was sent to Graph." % (path, expected)
    )


def earlier_batches(header, batches):
    """The plan's batch numbers that come before the first of ``batches`` and are not among them (batches already run, in order).

    None of them when ``batches`` is None (the whole plan) or empty.
    """
    if not batches:
        return []
    first = min(batches)
    return [batch for batch in header.get("batch_counts", {}) if batch < first and batch not in batches]


def check_earlier_batches_journaled(header, batches, journal_path, plan_path):
    """Refuse (RecordsError) to run ``batches`` of a plan on a new journal when earlier batches of the plan came before them.

    Batches run in order (the canary, then 1, 2, ...): a run of batch N > the plan's first holds the journal of the
    earlier ones. When that journal is not at ``journal_path`` (a container without the volume, a wrong path), a run
    would start an empty journal, and the earlier removals could no longer be put back from it: refused before any
    Graph call. A run that includes the first batch (the canary, or the earlier batches with this one) starts a journal.
    """
    if not journal_path or os.path.exists(journal_path):
        return
    earlier = earlier_batches(header, batches)
    if not earlier:
        return
    first = min(batches)
    raise RecordsError(
        "journal %s does not exist, but batch %d of plan %s (fingerprint %s) comes after batch(es) %s, which this run does not "
        "include: the journal of those earlier batches is expected at that path. Refusing to start an empty journal, which could "
        "not put their removals back. Mount the durable storage that holds it (in an execution environment, the volume of the "
        "migration files) or give its path; if it is lost, restore from the plan (state=present with plan_path), or run the "
        "earlier batches with this one (batches: [%s]) to start a new journal (rows already done are skipped on the fresh read). "
        "Nothing was sent to Graph."
        % (
            journal_path,
            first,
            plan_path,
            header.get("content_fingerprint"),
            _describe_numbers(earlier),
            ", ".join(str(b) for b in sorted(set(earlier) | set(batches))),
        )
    )


def check_plan_tenant(header, tenant_id, path):
    """Refuse a plan made for another tenant than ``tenant_id`` (RecordsError naming both)."""
    planned_tenant = header.get("tenant_id")
    if planned_tenant and tenant_id and planned_tenant.lower() != tenant_id.lower():
        raise RecordsError("plan %s was made for tenant %s, not for tenant %s" % (path, planned_tenant, tenant_id))


def existing_plan(path, replacing=False):
    """The header of the plan already at ``path`` (rows counted, not kept), or None when there is none.

    A file there that is not a plan this collection can read is an error: it is never replaced silently.
    When ``replacing`` (the task asked for a new plan), such a file is what gets replaced: None.
    """
    if not isinstance(path, str) or not os.path.exists(path):
        return None
    try:
        return scan_plan(path, lambda row: None)
    except RecordsError as exc:
        if replacing:
            return None
        raise RecordsError(
            "plan_path %s holds a file that is not a plan this collection can keep (%s); move it away, or set "
            "replace_plan to write a new plan over it" % (path, exc)
        )


# Settings a kept plan must share with the task that keeps it: the task asks for this plan, not another.
_KEPT_SETTINGS = ("tenant_id", "trusted_groups", "canary_size", "batch_size", "scope")


def kept_plan_conflicts(header, wanted):
    """What ``wanted`` (the task's plan settings, as the header records them) asks differently from the kept plan.

    A list of ``"<setting>: the plan has X, this task asks for Y"``; settings a plan does not record
    (written by an older collection) are not compared.
    """
    conflicts = []
    for key in _KEPT_SETTINGS:
        if key not in header or key not in wanted:
            continue
        have, want = _comparable(key, header[key]), _comparable(key, wanted[key])
        if have != want:
            conflicts.append("%s: the plan has %s, this task asks for %s" % (key, json.dumps(have, sort_keys=True), json.dumps(want, sort_keys=True)))
    return conflicts


def _comparable(key, value):
    if key == "tenant_id" and isinstance(value, str):
        return value.lower()
    if key == "trusted_groups" and isinstance(value, list):
        return _sorted_group_ids(value)
    return value


def _sorted_group_ids(groups):
    """Trusted groups as the fingerprint and the kept-plan check see them: lower-case GUIDs, in order."""
    return sorted(canonical_guid(group) or str(group) for group in groups)
