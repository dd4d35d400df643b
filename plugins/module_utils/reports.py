# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Report files of a migration, and the file-writing primitives the plan and journal share.

Report formats (``write_report``), all UTF-8 and written atomically (a temporary file in the
target directory, fsynced, then renamed over the target, so a reader never sees half a report):

``csv``
    One row per user and SKU, UTF-8 **with** a byte order mark (Excel only recognises UTF-8 CSV
    that starts with a BOM; Python's ``utf-8-sig``, PowerShell ``Import-Csv`` and LibreOffice
    read it transparently), CRLF line endings, RFC 4180 quoting. Columns, in this order:
    ``user_principal_name, user_id, sku_part_number, sku_id, verdict, direct, direct_disabled_plans,
    inherited_from, healthy_inherited_from, plans_lost, errors, batch``.
    ``direct`` is ``true``/``false``; list columns are joined with ``;``; ``direct_disabled_plans``
    holds service plan names when a plan-name lookup is given, GUIDs otherwise; ``batch`` is blank
    when the record has none. A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
    a carriage return gets a leading apostrophe, because user principal names and other values
    come from the tenant and a spreadsheet would otherwise run them as formulas.

``json``
    ``{"summary": {verdict: count, ...}, "records": [record, ...]}`` with
    every record as produced (extra keys kept, one record per line). With a plan-name lookup,
    records that lack ``direct_disabled_plan_names`` get it. UTF-8 without a BOM (RFC 8259).

``powershell`` (alias ``ms_direct_vs_inherited``, its earlier name)
    The column shape of Microsoft's documented PowerShell report "Use PowerShell to see who has
    inherited and direct licenses" (Entra docs, licensing-group-advanced.md, MSOnline version; the
    script selects ``ObjectId``, ``SkuId``, ``AssignedDirectly``, ``AssignedFromGroup`` for every
    user holding one SKU). Columns, in this order: ``ObjectId, SkuId, AssignedDirectly,
    AssignedFromGroup``; one row per user and SKU the user holds (records with neither a direct
    nor an inherited assignment are left out, as the script only lists users holding the SKU);
    booleans as PowerShell prints them (``True``/``False``); every field quoted, as
    ``Export-Csv -NoTypeInformation`` writes them; UTF-8 with BOM.
    UNCONFIRMED: the MSOnline script filled ``SkuId`` with the MSOnline ``AccountSkuId``
    (``tenantprefix:SKUPARTNUMBER``, e.g. ``contoso:EMS``), which Microsoft Graph no longer has;
    this report writes the Graph ``skuId`` GUID there. ``AssignedFromGroup`` is true when any group
    assigns the SKU, healthy or not, which is how ``GroupsAssigningLicense`` was read by the script;
    whether MSOnline listed groups whose assignment was in error is not documented.
    The Graph PowerShell version of that page (licensing-powershell-graph-examples.md) prints a
    different, per-assignment shape (User, AssignedByGroup, GroupName, GroupId) without the SKU;
    it is not used here because it cannot be produced from per-SKU records and drops the SKU.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import csv
import datetime
import json
import os
import tempfile

from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid

# Rows a large record file (plan, script) is given per write(): one write() per row of a text file
# costs about as much as encoding the row, one for the whole file would hold it all in memory.
ROWS_PER_WRITE = 1000


class RecordsError(ValueError):
    """A record file (report, plan, journal, rollback script) cannot be read or written.

    The message names the file and the problem; it never carries a traceback or a secret.
    """

    # The message of guid.normalize_guid(value, what, error=RecordsError): records name the field first.
    guid_message = "{what} must be a GUID like 00000000-0000-0000-0000-000000000000, got {value!r}"


REPORT_FORMATS = ("csv", "json", "ms_direct_vs_inherited")
# User-facing names of formats above: ``powershell`` is what modules document for Microsoft's column shape.
REPORT_FORMAT_ALIASES = {"powershell": "ms_direct_vs_inherited"}
REPORT_EXTENSIONS = {".csv": "csv", ".json": "json"}

CSV_COLUMNS = (
    "user_principal_name",
    "user_id",
    "sku_part_number",
    "sku_id",
    "verdict",
    "direct",
    "direct_disabled_plans",
    "inherited_from",
    "healthy_inherited_from",
    "plans_lost",
    "errors",
    "batch",
)
MS_DIRECT_VS_INHERITED_COLUMNS = ("ObjectId", "SkuId", "AssignedDirectly", "AssignedFromGroup")

# Characters that make Excel, LibreOffice and Google Sheets treat a cell as a formula (OWASP CSV injection).
_FORMULA_TRIGGERS = frozenset(("=", "+", "-", "@", "\t", "\r"))
_LIST_SEPARATOR = ";"


def guid_list(values, name):
    """``values`` (a list or tuple) as canonical GUIDs, or raise RecordsError naming ``name`` and the value."""
    if not isinstance(values, (list, tuple)):
        raise RecordsError("%s must be a list of GUIDs, got %r" % (name, values))
    return [normalize_guid(value, name, error=RecordsError) for value in values]


def utc_now_iso():
    """Current UTC time as ISO 8601 with a ``Z`` suffix, millisecond precision."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_output_path(path, what="file"):
    """Check that ``path`` can be written, before anything is written, and return it absolute.

    A user-supplied path is the user's choice ('..' is allowed); it is resolved so messages and
    return values name the real location. Raises RecordsError naming the path and the problem.
    """
    if not isinstance(path, str) or not path.strip():
        raise RecordsError("%s path must be a non-empty string, got %r" % (what, path))
    absolute_path = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(absolute_path)
    if os.path.isdir(absolute_path):
        raise RecordsError("%s path %s is a directory; give a file name inside it" % (what, absolute_path))
    if not os.path.exists(parent):
        raise RecordsError("cannot write %s %s: directory %s does not exist" % (what, absolute_path, parent))
    if not os.path.isdir(parent):
        raise RecordsError("cannot write %s %s: %s is not a directory" % (what, absolute_path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RecordsError("cannot write %s %s: directory %s is not writable" % (what, absolute_path, parent))
    if os.path.exists(absolute_path) and not os.access(absolute_path, os.W_OK):
        raise RecordsError("cannot write %s %s: the file exists and is not writable" % (what, absolute_path))
    return absolute_path


def _default_file_mode(existing_path):
    # Reports, plans and rollback scripts hold user data: a new file is readable by its owner only
    # (0600, as mkstemp creates it). A file replaced keeps the mode its owner gave it.
    try:
        return os.stat(existing_path).st_mode & 0o7777
    except OSError:
        return USER_DATA_FILE_MODE


# Files holding user data (reports, plans, journals, rollback scripts) are created readable by the owner only.
USER_DATA_FILE_MODE = 0o600


def fsync_directory(directory):
    """Make a rename or file creation in ``directory`` durable (best effort where unsupported)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_text_file(absolute_path, what="file", encoding="utf-8", newline=None):
    """Yield a text stream whose content replaces ``absolute_path`` only if the block completes.

    The content goes to a temporary file in the same directory, is flushed and fsynced, then
    renamed over the target with os.replace (atomic on POSIX and Windows). On any error the
    temporary file is removed and the target is left as it was.
    """
    directory = os.path.dirname(absolute_path)
    mode = _default_file_mode(absolute_path)
    try:
        fd, temp_path = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(absolute_path), suffix=".tmp")
    except OSError as exc:
        raise RecordsError("cannot write %s %s: %s" % (what, absolute_path, exc.strerror or exc))
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_path, mode)
        os.replace(temp_path, absolute_path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        if isinstance(exc, OSError):
            raise RecordsError("cannot write %s %s: %s" % (what, absolute_path, exc.strerror or exc)) from None
        raise
    fsync_directory(directory)


def verdict_summary(verdict_counts):
    """Counts per verdict, sorted by verdict so files and return values are stable."""
    return dict(sorted(verdict_counts.items()))


def _lookup_function(plan_name_lookup):
    if plan_name_lookup is None:
        return None
    if callable(plan_name_lookup):
        return plan_name_lookup
    if isinstance(plan_name_lookup, dict):
        lowered = dict((str(key).lower(), value) for key, value in plan_name_lookup.items())
        return lambda plan_id: lowered.get(str(plan_id).lower())
    raise RecordsError("plan_name_lookup must be a dict of plan GUID to name or a callable, got %s" % type(plan_name_lookup).__name__)


def _plan_names(plan_ids, lookup):
    # An unknown GUID stays a GUID: a report must not hide a plan because the catalog lacks its name.
    return [lookup(plan_id) or plan_id for plan_id in plan_ids or ()]


def neutralize_formula(value):
    """Prefix an apostrophe to a text cell a spreadsheet would otherwise evaluate as a formula."""
    if isinstance(value, str) and value[:1] in _FORMULA_TRIGGERS:
        return "'" + value
    return value


def _join(values):
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    try:
        return _LIST_SEPARATOR.join(values)
    except TypeError:
        return _LIST_SEPARATOR.join(str(value) for value in values)


def _csv_bool(value):
    if value is None:
        return ""
    return "true" if value else "false"


def csv_row(record, lookup=None):
    """The CSV cells of one record, in CSV_COLUMNS order, formula-safe."""
    disabled_plans = record.get("direct_disabled_plans")
    if lookup is not None:
        disabled_plans = _plan_names(disabled_plans, lookup)
    batch = record.get("batch")
    cells = [
        str(record.get("user_principal_name") or ""),
        str(record.get("user_id") or ""),
        str(record.get("sku_part_number") or ""),
        str(record.get("sku_id") or ""),
        str(record.get("verdict") or ""),
        _csv_bool(record.get("direct")),
        _join(disabled_plans),
        _join(record.get("inherited_from")),
        _join(record.get("healthy_inherited_from")),
        _join(record.get("plans_lost")),
        _join(record.get("errors")),
        "" if batch is None else str(batch),
    ]
    return [("'" + cell) if cell[:1] in _FORMULA_TRIGGERS else cell for cell in cells]


def _powershell_bool(value):
    return "True" if value else "False"


def ms_direct_vs_inherited_row(record):
    """The row of Microsoft's direct-vs-inherited report for one record, or None if the user holds no copy."""
    assigned_directly = bool(record.get("direct"))
    assigned_from_group = bool(record.get("inherited_from"))
    if not assigned_directly and not assigned_from_group:
        return None
    cells = [record.get("user_id") or "", record.get("sku_id") or "", _powershell_bool(assigned_directly), _powershell_bool(assigned_from_group)]
    return [neutralize_formula(cell) for cell in cells]


def _checked_record(record, index, absolute_path):
    if not isinstance(record, dict):
        raise RecordsError("cannot write report %s: record number %d is a %s, expected a dict" % (absolute_path, index + 1, type(record).__name__))
    return record


def report_format_for(path, report_format=None):
    """The report format named by ``report_format``, or else by the extension of ``path``."""
    if report_format is not None:
        report_format = REPORT_FORMAT_ALIASES.get(report_format, report_format)
        if report_format not in REPORT_FORMATS:
            raise RecordsError(
                "report_format %r is not supported; use one of %s (or %s)"
                % (report_format, ", ".join(REPORT_FORMATS), ", ".join(sorted(REPORT_FORMAT_ALIASES)))
            )
        return report_format
    extension = os.path.splitext(str(path))[1].lower()
    if extension in REPORT_EXTENSIONS:
        return REPORT_EXTENSIONS[extension]
    raise RecordsError(
        "cannot tell the report format of %s from its extension %r: use one of %s, or set report_format to one of %s"
        % (path, extension, ", ".join(sorted(REPORT_EXTENSIONS)), ", ".join(REPORT_FORMATS))
    )


def _write_csv_rows(stream, columns, rows, quoting=csv.QUOTE_MINIMAL):
    writer = csv.writer(stream, quoting=quoting, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def _count_verdicts(records, counts):
    for record in records:
        verdict = record.get("verdict") or "no_verdict"
        counts[verdict] = counts.get(verdict, 0) + 1
        yield record


def _write_csv_report(absolute_path, records, lookup, counts, extra_columns=()):
    with atomic_text_file(absolute_path, "report", encoding="utf-8-sig", newline="") as stream:
        rows = (csv_row(record, lookup) + _extra_cells(record, extra_columns) for record in _count_verdicts(records, counts))
        return _write_csv_rows(stream, CSV_COLUMNS + tuple(extra_columns), rows)


def _extra_cells(record, extra_columns):
    cells = []
    for column in extra_columns:
        value = record.get(column)
        cell = "" if value is None else (_join(value) if isinstance(value, (list, tuple)) else str(value))
        cells.append(neutralize_formula(cell))
    return cells


def _write_ms_report(absolute_path, records, counts):
    with atomic_text_file(absolute_path, "report", encoding="utf-8-sig", newline="") as stream:
        rows = (ms_direct_vs_inherited_row(record) for record in _count_verdicts(records, counts))
        return _write_csv_rows(stream, MS_DIRECT_VS_INHERITED_COLUMNS, (row for row in rows if row is not None), quoting=csv.QUOTE_ALL)


def _json_record(record, lookup, number, absolute_path):
    if lookup is not None and "direct_disabled_plan_names" not in record:
        record = dict(record, direct_disabled_plan_names=_plan_names(record.get("direct_disabled_plans"), lookup))
    try:
        return json.dumps(record, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise RecordsError("cannot write report %s: record number %d cannot be written as JSON: %s" % (absolute_path, number, exc))


def _write_json_report(absolute_path, records, lookup, counts):
    # The summary goes first for people who open the file, but is only known at the end: the
    # records are spooled to a temporary file in the same directory and copied behind it.
    directory = os.path.dirname(absolute_path)
    count = 0
    try:
        spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8", dir=directory)
    except OSError as exc:
        raise RecordsError("cannot write report %s: %s" % (absolute_path, exc.strerror or exc))
    with spool:
        for record in _count_verdicts(records, counts):
            spool.write(",\n" if count else "\n")
            spool.write(_json_record(record, lookup, count + 1, absolute_path))
            count += 1
        spool.seek(0)
        with atomic_text_file(absolute_path, "report", encoding="utf-8") as stream:
            stream.write('{"summary": %s,\n"records": [' % json.dumps(verdict_summary(counts)))
            while True:
                chunk = spool.read(1 << 16)
                if not chunk:
                    break
                stream.write(chunk)
            stream.write("\n]}\n" if count else "]}\n")
    return count


def write_report(path, records, report_format=None, plan_name_lookup=None, extra_columns=()):
    """Write ``records`` (any iterable of record dicts, e.g. a generator) to ``path``.

    Memory stays constant whatever the number of records. ``plan_name_lookup`` is a dict of
    service plan GUID to name or a callable taking a GUID and returning a name (or None).
    ``extra_columns``: record keys added after CSV_COLUMNS in the ``csv`` format (lists joined with ``;``).
    Returns ``{"path": absolute path, "format": format, "rows": data rows written, "summary": counts}``.
    Raises RecordsError naming the path and the problem; nothing is written when the path or
    format is wrong, and the previous file is untouched if writing fails halfway.
    """
    report_format = report_format_for(path, report_format)
    absolute_path = resolve_output_path(path, "report")
    lookup = _lookup_function(plan_name_lookup)
    counts = {}
    checked = (_checked_record(record, index, absolute_path) for index, record in enumerate(records))
    if report_format == "csv":
        rows = _write_csv_report(absolute_path, checked, lookup, counts, extra_columns)
    elif report_format == "json":
        rows = _write_json_report(absolute_path, checked, lookup, counts)
    else:
        rows = _write_ms_report(absolute_path, checked, counts)
    return {"path": absolute_path, "format": report_format, "rows": rows, "summary": verdict_summary(counts)}


# ---- streaming reads of large JSON documents ---------------------------------------------------

_JSON_WHITESPACE = " \t\n\r"
_JSON_NUMBER_PART = "0123456789+-.eE"


class JsonNotAnObject(ValueError):
    """The document is JSON of another kind (an array, a string ...) where an object was expected."""


class JsonStream:
    """Reads one top-level JSON object from a text stream without holding the whole document.

    ``events(array_keys)`` yields ``('value', key, value)`` for each top-level member, except that
    the elements of a member named in ``array_keys`` whose value is an array come one by one:
    ``('start', key, None)``, ``('item', key, element)`` per element, ``('end', key, None)``.
    Only one element (or one other member) is in memory at a time, plus the read buffer.
    Raises ValueError on anything that is not well-formed JSON (or not an object at the top).
    """

    def __init__(self, stream, chunk_size=1 << 16):
        self.stream = stream
        self.chunk_size = chunk_size
        self.buffer = ""
        self.position = 0
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _fill(self, size=None):
        data = self.stream.read(size or self.chunk_size)
        if not data:
            self.eof = True
            return False
        self.buffer = self.buffer[self.position :] + data
        self.position = 0
        return True

    def _peek(self):
        """The next character that is not whitespace ('' at the end of the document)."""
        while True:
            buffer, position = self.buffer, self.position
            while position < len(buffer) and buffer[position] in _JSON_WHITESPACE:
                position += 1
            self.position = position
            if position < len(buffer) or not self._fill():
                return buffer[position] if position < len(buffer) else ""

    def _expect(self, characters):
        found = self._peek()
        if not found or found not in characters:
            raise ValueError("expected %s at character %r" % (" or ".join(repr(c) for c in characters), found or "end of document"))
        self.position += 1
        return found

    def _value(self):
        self._peek()
        size = self.chunk_size
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.position)
            except ValueError:
                if self.eof or not self._fill(size):
                    raise
                size *= 2  # a value longer than the buffer: read more at a time, not quadratically
                continue
            if not self.eof and self._may_go_on(value, end) and self._fill(size):
                continue  # a number at the end of the buffer ("-1." or "1e") may go on in the next chunk
            self.position = end
            return value

    def _may_go_on(self, value, end):
        if end == len(self.buffer):
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        buffer = self.buffer
        for index in range(end, len(buffer)):
            if buffer[index] not in _JSON_NUMBER_PART:
                return False
        return True

    def events(self, array_keys=()):
        if self._peek() != "{":
            raise JsonNotAnObject("the document is not a JSON object")
        self.position += 1
        if self._peek() == "}":
            self.position += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    raise ValueError("expected an object member name, got %r" % (key,))
                self._expect(":")
                if key in array_keys and self._peek() == "[":
                    self.position += 1
                    yield ("start", key, None)
                    if self._peek() == "]":
                        self.position += 1
                    else:
                        while True:
                            yield ("item", key, self._value())
                            if self._expect(",]") == "]":
                                break
                    yield ("end", key, None)
                else:
                    yield ("value", key, self._value())
                if self._expect(",}") == "}":
                    break
        if self._peek():
            raise ValueError("extra data after the top-level object")
