# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration journal: what was removed, so it can be put back.

Format
------
A journal is a UTF-8 text file in JSON Lines format: one JSON object per line, appended, never
rewritten. Every line is written in one piece and forced to disk (fsync) before the collection
goes on, so a journal survives a crash or a killed process up to the last completed line.
Several runs may append to the same journal; each run starts with a ``run`` line.

Before every license write the collection appends an ``intent`` line, and after Microsoft Graph
answers it appends a ``result`` line with the same ``op_id``. An intent without a result means
the run stopped while the write was in flight: the write may or may not have happened, and the
next restore reads the user again to find out.

``run`` (first line written by a run)::

    {"type": "run", "format": "entraops.licensing/journal", "version": 1,
     "run_id": "<id>", "time": "2025-06-30T12:00:00.000Z",
     "plan_path": "/var/tmp/migration/plan.json", "plan_fingerprint": "sha256:<64 hex digits>"}

``plan_path`` and ``plan_fingerprint`` name the plan a removal run (or a restore from a plan) executed (the
fingerprint of its content as the run read it, see plan.py); a run without a plan (a restore from a journal,
named users) has no such keys.

``intent`` (written before the write is sent)::

    {"type": "intent", "op_id": "<id>", "run_id": "<id>", "time": "2025-06-30T12:00:01.250Z",
     "op": "remove_direct",
     "user_id": "<user GUID>", "user_principal_name": "adele@contoso.com",
     "sku_id": "<SKU GUID>", "sku_part_number": "ENTERPRISEPACK",
     "disabled_plans": ["<service plan GUID>", ...],
     "batch": 1}

``op`` is ``remove_direct`` (remove the user's direct assignment of the SKU) or
``restore_direct`` (put it back). ``disabled_plans`` is the exact ``disabledPlans`` list of the
direct assignment (for a removal, as read just before removing it; for a restore, as written back).
``batch`` is the plan batch number or ``null``. An optional ``extra`` object carries
operation-specific detail (never credentials).

``result`` (written after Graph answered, or after the run gave up on the write)::

    {"type": "result", "op_id": "<id of the intent>", "run_id": "<id>", "time": "...",
     "op": "remove_direct", "user_id": "<user GUID>", "sku_id": "<SKU GUID>",
     "outcome": "ok", "request_id": "<Graph request-id>", "status": 200,
     "error": null, "detail": null}

A result that a later run wrote for an intent a killed run left pending (after reading the user
to see whether the write happened) also has ``"reconciled": true`` and ``"intent_run_id"`` (the
run that wrote the intent); its ``run_id`` is the run that reconciled it.

``outcome`` is one of:

- ``ok``: the write was done;
- ``failed``: Graph refused it, nothing changed (``status``, ``error`` code and ``detail`` say why);
- ``unknown``: no answer (timeout, dropped connection); the write may have happened;
- ``rolled_back``: a removal was done but the check that followed found a lost license or
  service, and the direct assignment was put back at once with the same disabled plans;
- ``skipped``: the write was not sent because it was not needed (for a restore: the direct
  assignment was found in place).

``repair`` lines record that a line was cut short by a killed process and is ignored::

    {"type": "repair", "run_id": "<id>", "time": "...", "ignored_line": 42, "detail": "..."}

GUIDs are lower-case. Times are UTC, ISO 8601 with a ``Z`` suffix. The journal never holds
tokens, secrets or passwords.

What can be restored: for each user and SKU, the latest removal whose outcome is ``ok``,
``unknown`` or missing, unless a later restore of it ended ``ok`` or ``skipped``. Beside the
journal the collection writes a Microsoft Graph PowerShell script (``powershell.write_rollback_script``)
that restores the same list without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import uuid

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX; the journal then works without the lock
    fcntl = None

from ansible_collections.entraops.licensing.plugins.module_utils.guid import canonical_guid, normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.reports import (
    USER_DATA_FILE_MODE,
    RecordsError,
    fsync_directory,
    guid_list,
    resolve_output_path,
    utc_now_iso,
)

JOURNAL_FORMAT = "entraops.licensing/journal"
JOURNAL_VERSION = 1
OPERATIONS = ("remove_direct", "restore_direct")
OUTCOMES = ("ok", "failed", "unknown", "rolled_back", "skipped")
ENTRY_TYPES = ("run", "intent", "result", "repair")

# A removal with one of these outcomes may have taken the direct assignment away.
_REMOVAL_IN_EFFECT = ("ok", "unknown", None)
# A restore with one of these outcomes leaves the direct assignment in place.
_RESTORE_DONE = ("ok", "skipped")
_REMOVAL_FIELDS = ("removal_op_id", "removal_outcome", "removed_disabled_plans", "restorable", "_removal_order")

_SECRET_KEY = re.compile(r"token|secret|passw(or)?d|authori[sz]ation|credential|api[_-]?key|private[_-]?key|cookie|assertion", re.IGNORECASE)
_BEARER = re.compile(r"\bBearer\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_READ_CHUNK = 1 << 20
# What Journal keeps of an intent once its result is written (has_result is all that is asked of it then).
_DONE = {"has_result": True}


def redact(text):
    """Replace anything shaped like a bearer token or JWT in ``text`` (a Graph error may echo a header)."""
    if not isinstance(text, str):
        return text
    return _JWT.sub("[REDACTED]", _BEARER.sub("Bearer [REDACTED]", text))


def _check_no_secret_keys(value, where):
    if isinstance(value, dict):
        for key, item in value.items():
            if _SECRET_KEY.search(str(key)):
                raise RecordsError("%s: key %r looks like a credential; journals never hold credentials" % (where, key))
            _check_no_secret_keys(item, where)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_no_secret_keys(item, where)


def _redact_values(value):
    if isinstance(value, dict):
        return dict((key, _redact_values(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_redact_values(item) for item in value]
    return redact(value)


def _optional_text(value, name):
    if value is not None and not isinstance(value, str):
        raise RecordsError("%s must be a string or None, got %r" % (name, value))
    return value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _scan_tail(fd):
    """(number of complete lines, bytes after the last newline) of an open journal file."""
    os.lseek(fd, 0, os.SEEK_SET)
    newline_count = 0
    tail = b""
    while True:
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            break
        newline_count += chunk.count(b"\n")
        last_newline = chunk.rfind(b"\n")
        tail = chunk[last_newline + 1 :] if last_newline >= 0 else tail + chunk
    return newline_count, tail


def _parses_as_object(data):
    try:
        return isinstance(json.loads(data.decode("utf-8")), dict)
    except ValueError:
        return False


class Journal:
    """Append-only writer of one journal file, used as ``with Journal(path) as journal:``.

    The directory must exist. The file is created if missing, and locked against a second
    concurrent writer. Every line is written with one write call and fsynced.
    """

    def __init__(self, path, run_id=None, run_meta=None):
        self.path = resolve_output_path(path, "journal")
        self.run_id = _optional_text(run_id, "run_id") or uuid.uuid4().hex
        if run_meta is not None:
            if not isinstance(run_meta, dict) or any(key in ("type", "format", "version", "run_id", "time") for key in run_meta):
                raise RecordsError("run_meta must be a dict without the run line's own keys, got %r" % (run_meta,))
            _check_no_secret_keys(run_meta, "journal %s" % self.path)
        self._run_meta = dict(run_meta or {})
        self._intents = {}
        self._file_intents = None  # intents of earlier runs, read from the file on first reconcile()
        self._run_line_written = False
        self._fd = self._open()
        try:
            self._lock()
            self._repair_tail()
        except BaseException:
            self.close()
            raise

    def _open(self):
        existed = os.path.exists(self.path)
        try:
            # The journal names users and their licenses: readable by its owner only (an existing file keeps its mode).
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), USER_DATA_FILE_MODE)
        except OSError as exc:
            raise RecordsError("cannot open journal %s for appending: %s" % (self.path, exc.strerror or exc))
        if not existed:
            fsync_directory(os.path.dirname(self.path))
        return fd

    def _lock(self):
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RecordsError("journal %s is in use by another run (it is locked); wait for that run to finish" % self.path)

    def _repair_tail(self):
        # A process killed mid-line leaves a partial last line; appending behind it would glue
        # two entries into one unreadable line in the middle of the journal.
        line_count, tail = _scan_tail(self._fd)
        if not tail:
            return
        if _parses_as_object(tail):
            self._write_bytes(b"\n")
            return
        self._write_bytes(b"\n")
        self._append(
            {
                "type": "repair",
                "run_id": self.run_id,
                "time": utc_now_iso(),
                "ignored_line": line_count + 1,
                "detail": "line %d was cut short (the process writing it was stopped); it is ignored" % (line_count + 1),
            }
        )

    def _write_bytes(self, data):
        if self._fd is None:
            raise RecordsError("journal %s is closed" % self.path)
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            raise RecordsError("cannot write to journal %s: %s" % (self.path, exc.strerror or exc))

    def _append(self, entry):
        try:
            line = json.dumps(entry, ensure_ascii=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise RecordsError("journal %s: entry cannot be written as JSON: %s" % (self.path, exc))
        self._write_bytes(line.encode("utf-8"))

    def _ensure_run_line(self):
        if not self._run_line_written:
            line = {"type": "run", "format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "run_id": self.run_id, "time": utc_now_iso()}
            line.update(_redact_values(self._run_meta))
            self._append(line)
            self._run_line_written = True

    def intent(self, op, user_id, user_principal_name, sku_id, sku_part_number, disabled_plans, batch=None, extra=None):
        """Journal a write about to be sent; returns its ``op_id``. Call before sending the write."""
        if op not in OPERATIONS:
            raise RecordsError("op must be one of %s, got %r" % (", ".join(OPERATIONS), op))
        if batch is not None and not _is_int(batch):
            raise RecordsError("batch must be a whole number or None, got %r" % (batch,))
        if extra is not None:
            if not isinstance(extra, dict):
                raise RecordsError("extra must be a dict or None, got %r" % (extra,))
            _check_no_secret_keys(extra, "journal %s" % self.path)
        entry = {
            "type": "intent",
            "op_id": uuid.uuid4().hex,
            "run_id": self.run_id,
            "time": utc_now_iso(),
            "op": op,
            "user_id": normalize_guid(user_id, "user_id", error=RecordsError),
            "user_principal_name": _optional_text(user_principal_name, "user_principal_name"),
            "sku_id": normalize_guid(sku_id, "sku_id", error=RecordsError),
            "sku_part_number": _optional_text(sku_part_number, "sku_part_number"),
            "disabled_plans": guid_list(disabled_plans, "disabled_plans"),
            "batch": batch,
        }
        if extra:
            entry["extra"] = _redact_values(extra)
        self._ensure_run_line()
        self._append(entry)
        self._intents[entry["op_id"]] = {"op": op, "user_id": entry["user_id"], "sku_id": entry["sku_id"], "has_result": False}
        return entry["op_id"]

    def result(self, op_id, outcome, request_id=None, status=None, error=None, detail=None):
        """Journal how the write of ``op_id`` ended (see the module documentation for outcomes)."""
        intent = self._intents.get(op_id)
        if intent is None:
            raise RecordsError("journal %s: op_id %r has no intent in this run" % (self.path, op_id))
        self._write_result(op_id, intent, outcome, request_id=request_id, status=status, error=error, detail=detail)

    def reconcile(self, op_id, outcome, detail=None, request_id=None, error=None):
        """Journal the outcome of an intent an earlier (killed) run left without a result.

        The caller decided ``outcome`` from a fresh read of the user. The ``result`` line carries
        ``"reconciled": true``, this run's ``run_id`` and the ``intent_run_id`` of the run that wrote
        the intent; journal_state and restorable read it like any other result.
        """
        intent = self._intents.get(op_id)
        if intent is None:
            intent = self._pending_in_file().get(op_id)
        if intent is None:
            raise RecordsError("journal %s: op_id %r has no intent in this journal" % (self.path, op_id))
        self._write_result(
            op_id,
            intent,
            outcome,
            request_id=request_id,
            error=error,
            detail=detail,
            extra={"reconciled": True, "intent_run_id": intent.get("run_id", self.run_id)},
        )

    def _pending_in_file(self):
        """Intents of earlier runs found in the journal file (read once), by op_id, with has_result."""
        if self._file_intents is None:
            from_file = {}
            for entry in JournalReader(self.path):
                if entry["type"] == "intent":
                    from_file[entry["op_id"]] = {
                        "op": entry["op"],
                        "user_id": entry["user_id"],
                        "sku_id": entry["sku_id"],
                        "run_id": entry.get("run_id"),
                        "has_result": False,
                    }
                elif entry["type"] == "result" and entry["op_id"] in from_file:
                    from_file[entry["op_id"]] = _DONE
            self._file_intents = from_file
        return self._file_intents

    def _write_result(self, op_id, intent, outcome, request_id=None, status=None, error=None, detail=None, extra=None):
        if intent["has_result"]:
            raise RecordsError("journal %s: op_id %r already has a result" % (self.path, op_id))
        if outcome not in OUTCOMES:
            raise RecordsError("outcome must be one of %s, got %r" % (", ".join(OUTCOMES), outcome))
        if outcome == "rolled_back" and intent["op"] != "remove_direct":
            raise RecordsError("outcome rolled_back applies to remove_direct only, not %s" % intent["op"])
        if status is not None and not _is_int(status):
            raise RecordsError("status must be an HTTP status number or None, got %r" % (status,))
        entry = {
            "type": "result",
            "op_id": op_id,
            "run_id": self.run_id,
            "time": utc_now_iso(),
            "op": intent["op"],
            "user_id": intent["user_id"],
            "sku_id": intent["sku_id"],
            "outcome": outcome,
            "request_id": _optional_text(request_id, "request_id"),
            "status": status,
            "error": redact(_optional_text(error, "error")),
            "detail": redact(_optional_text(detail, "detail")),
        }
        if extra:
            entry.update(extra)
        self._ensure_run_line()
        self._append(entry)
        if op_id in self._intents:
            # One shared marker instead of the intent's own dict: a run of 100,000 writes keeps only their op_ids.
            self._intents[op_id] = _DONE
        else:
            intent["has_result"] = True

    def pending_op_ids(self):
        """op_ids of this run whose write has no result yet."""
        return [op_id for op_id, intent in self._intents.items() if not intent["has_result"]]

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()


def _entry_problem(entry):
    """What is wrong with a parsed journal entry, or None. Normalises GUIDs in place."""
    if not isinstance(entry, dict):
        return "is not a JSON object"
    entry_type = entry.get("type")
    if entry_type not in ENTRY_TYPES:
        return "has type %r, expected one of %s" % (entry_type, ", ".join(ENTRY_TYPES))
    if entry_type == "run":
        if entry.get("format") != JOURNAL_FORMAT:
            return "is a run line of format %r, expected %r" % (entry.get("format"), JOURNAL_FORMAT)
        if entry.get("version") != JOURNAL_VERSION:
            return "is a run line of journal version %r; this collection reads version %d" % (entry.get("version"), JOURNAL_VERSION)
        return None
    if entry_type == "repair":
        return None if _is_int(entry.get("ignored_line")) else "is a repair line without ignored_line"
    if not isinstance(entry.get("op_id"), str) or not entry["op_id"]:
        return "has no op_id"
    if entry.get("op") not in OPERATIONS:
        return "has op %r, expected one of %s" % (entry.get("op"), ", ".join(OPERATIONS))
    for field in ("user_id", "sku_id"):
        guid = canonical_guid(entry.get(field))
        if guid is None:
            return "has %s %r, expected a GUID" % (field, entry.get(field))
        entry[field] = guid
    if entry_type == "intent":
        plans = entry.get("disabled_plans")
        canonical_plans = [canonical_guid(plan) for plan in plans] if isinstance(plans, list) else [None]
        if None in canonical_plans:
            return "has disabled_plans %r, expected a list of GUIDs" % (plans,)
        entry["disabled_plans"] = canonical_plans
    elif entry.get("outcome") not in OUTCOMES:
        return "has outcome %r, expected one of %s" % (entry.get("outcome"), ", ".join(OUTCOMES))
    return None


def _parse_line(raw):
    """(entry, None) or (None, problem) for one line of bytes."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except ValueError as exc:
        return None, "is not valid JSON (%s)" % exc
    problem = _entry_problem(entry)
    return (None, problem) if problem else (entry, None)


class JournalReader:
    """Iterates over a journal's entries one at a time (``for entry in JournalReader(path)``).

    Same checks as read_journal (which collects it): after the iteration ``truncated_last_line``,
    ``warnings`` and ``entries`` (the count) are set. Memory stays flat in the journal's length.

    ``new_entries()`` follows a journal that grows: each call yields only the entries appended since the
    previous call (the first from the start), so a run that reads its own journal after every batch parses
    each line once instead of the whole journal each time. It takes complete lines only: a last line without
    its newline waits for the next call (the writer, which holds the journal's lock, ends or repairs it).
    """

    def __init__(self, path):
        if not isinstance(path, str) or not path:
            raise RecordsError("journal path must be a non-empty string, got %r" % (path,))
        self.path = os.path.abspath(os.path.expanduser(path))
        self.warnings = []
        self.truncated_last_line = False
        self.entries = 0
        self.offset = 0  # bytes read so far (new_entries resumes here)
        self._line_number = 0
        self._bad_line = None  # (line number, problem, ended with a newline) awaiting a repair line or the end

    def __iter__(self):
        self.warnings, self.truncated_last_line, self.entries = [], False, 0
        self.offset, self._line_number, self._bad_line = 0, 0, None
        return self._read(complete_lines_only=False)

    def new_entries(self):
        """The entries appended since the last call (the first call: all), complete lines only."""
        return self._read(complete_lines_only=True)

    def _read(self, complete_lines_only):
        absolute_path = self.path
        try:
            with open(absolute_path, "rb") as stream:
                stream.seek(self.offset)
                for raw in stream:
                    if complete_lines_only and not raw.endswith(b"\n"):
                        break  # still being written: read again from its start next time
                    self.offset += len(raw)
                    self._line_number += 1
                    if not raw.strip():
                        continue
                    entry, problem = _parse_line(raw)
                    bad_line = self._bad_line
                    if bad_line is not None:
                        if entry is not None and entry["type"] == "repair" and entry["ignored_line"] == bad_line[0]:
                            self.warnings.append("journal %s line %d was cut short by a stopped run and is ignored" % (absolute_path, bad_line[0]))
                            self._bad_line = None
                        else:
                            raise RecordsError("journal %s line %d %s" % (absolute_path, bad_line[0], bad_line[1]))
                    if problem:
                        self._bad_line = (self._line_number, problem, raw.endswith(b"\n"))
                        continue
                    self.entries += 1
                    yield entry
        except FileNotFoundError:
            raise RecordsError("journal %s does not exist" % absolute_path)
        except IsADirectoryError:
            raise RecordsError("journal path %s is a directory, not a journal file" % absolute_path)
        except OSError as exc:
            raise RecordsError("cannot read journal %s: %s" % (absolute_path, exc.strerror or exc))
        bad_line = self._bad_line
        if bad_line is not None:
            # A bad line with its newline is followed by its repair line (the writer appends both at once).
            if bad_line[2]:
                raise RecordsError("journal %s line %d %s" % (absolute_path, bad_line[0], bad_line[1]))
            self.truncated_last_line = True
            self.warnings.append("journal %s: the last line (%d) was cut short, probably by a stopped run, and is ignored" % (absolute_path, bad_line[0]))


def read_journal(path):
    """Read a journal; return ``{"path", "entries", "truncated_last_line", "warnings"}``.

    A last line cut short by a killed process is ignored (``truncated_last_line`` true and a
    warning), as is a cut line the journal itself marked with a ``repair`` line. Any other
    malformed line raises RecordsError naming the file and the line number. For a large journal
    iterate over JournalReader(path) instead, which holds one entry at a time.
    """
    reader = JournalReader(path)
    entries = list(reader)
    return {"path": reader.path, "entries": entries, "truncated_last_line": reader.truncated_last_line, "warnings": reader.warnings}


class _State:
    """Where the journal leaves one user's direct assignment of one SKU, as journal_state describes it.

    A slotted object read and written like a dict (``state['op']``, ``update``, ``pop``): a journal of
    100,000 removals holds 100,000 of these while it is folded, and a dict of 15 keys is several times larger.
    """

    __slots__ = (
        "user_id",
        "user_principal_name",
        "sku_id",
        "sku_part_number",
        "op",
        "op_id",
        "outcome",
        "pending",
        "reconciled",
        "removal_op_id",
        "removal_outcome",
        "removed_disabled_plans",
        "restorable",
        "_removal_order",
        "_previous_removal",
    )

    def __init__(self, user_id, sku_id):
        self.user_id, self.sku_id = user_id, sku_id
        self.user_principal_name = self.sku_part_number = self.op = self.op_id = self.outcome = None
        self.pending = self.reconciled = self.restorable = False
        self.removal_op_id = self.removal_outcome = self.removed_disabled_plans = self._removal_order = self._previous_removal = None

    def __getitem__(self, name):
        return getattr(self, name)

    def __setitem__(self, name, value):
        setattr(self, name, value)

    def update(self, values=None, **more):
        for name, value in list((values or {}).items()) + list(more.items()):
            setattr(self, name, value)

    def pop(self, name, default=None):
        value = getattr(self, name)
        setattr(self, name, None)
        return default if value is None else value

    def items(self):
        return ((name, getattr(self, name)) for name in self.__slots__)


# Strings that repeat on every journal line, shared instead of one copy per state (see _State).
_SHARED = dict((value, value) for value in OPERATIONS + OUTCOMES + ("pending",))


def _shared(value, pool):
    if not isinstance(value, str):
        return value
    return pool.setdefault(value, value)


def _new_state(entry):
    return _State(entry["user_id"], entry["sku_id"])


def _apply_intent(state, entry, order, pool=None):
    pool = _SHARED if pool is None else pool
    state["user_principal_name"] = entry.get("user_principal_name") or state["user_principal_name"]
    state["sku_part_number"] = _shared(entry.get("sku_part_number"), pool) or state["sku_part_number"]
    state.update(op=_SHARED.get(entry["op"], entry["op"]), op_id=entry["op_id"], outcome=None, pending=True, reconciled=False)
    if entry["op"] == "remove_direct":
        # An earlier removal still in effect comes back if this one turns out not to have happened
        # (a re-run that journals "skipped" for a row it already removed must not hide it).
        state["_previous_removal"] = _removal_fields(state) if state["restorable"] else None
        # From here the direct assignment may be gone, until a result says otherwise.
        plans = entry["disabled_plans"]
        state.update(
            removal_op_id=entry["op_id"],
            removal_outcome="pending",
            removed_disabled_plans=tuple(_shared(plan, pool) for plan in plans) if plans else (),
            restorable=True,
            _removal_order=order,
        )


def _removal_fields(state):
    return dict((key, state[key]) for key in _REMOVAL_FIELDS)


def _apply_result(state, entry):
    outcome = _SHARED.get(entry["outcome"], entry["outcome"])
    if entry["op_id"] == state["op_id"]:
        state.update(outcome=outcome, pending=False, reconciled=bool(entry.get("reconciled")))
    if entry["op"] == "remove_direct" and entry["op_id"] == state["removal_op_id"]:
        state["removal_outcome"] = outcome
        if entry["outcome"] not in _REMOVAL_IN_EFFECT:
            previous = state.pop("_previous_removal", None)
            if previous:
                state.update(previous)
            else:
                state["restorable"] = False
    elif entry["op"] == "restore_direct" and entry["outcome"] in _RESTORE_DONE:
        state["restorable"] = False


def _operations(entries, pool):
    """``(order, entry, key)`` for each intent and result line, in journal order: the lines a fold reads.

    ``key`` is ``(user_id, sku_id)``, the SKU id shared through ``pool`` (one string per SKU, not one per line).
    """
    for order, entry in enumerate(entries):
        if entry.get("type") in ("intent", "result"):
            yield order, entry, (entry["user_id"], _shared(entry["sku_id"], pool))


def _states(entries):
    """Fold entries (any iterable, e.g. a JournalReader) into one _State per (user_id, sku_id)."""
    states = {}
    pool = dict(_SHARED)
    for order, entry, key in _operations(entries, pool):
        state = states.get(key)
        if state is None:
            state = states[key] = _State(*key)
        if entry["type"] == "intent":
            _apply_intent(state, entry, order, pool)
        else:
            _apply_result(state, entry)
    return states


# The fields of latest_outcomes' lists, in order; each list has one more slot, False, left to the caller.
_NO_INTENT = object()
OUTCOME_FIELDS = ("op", "outcome", "batch", "user_principal_name", "sku_part_number", "error", "detail")


def latest_outcomes(entries, pool=None):
    """Per ``(user_id, sku_id)``: the latest operation and its outcome, compact, as a report reads them.

    Each value is a list ``[op, outcome, batch, user_principal_name, sku_part_number, error, detail, False]``
    (OUTCOME_FIELDS, then a slot the caller may use). The reading is journal_state's: the latest intent,
    its outcome None until the result with its ``op_id`` arrives; with one more rule, that a removal
    rolled back by the put-back journaled inside it (a ``restore_direct`` intent and result before the
    removal's ``rolled_back`` result) is again the latest operation, with the removal's batch.

    One small list per (user, SKU) and the intents still waiting for their result are kept (no op ids
    once answered), so a journal of 100,000 removals read with a JournalReader is never in memory as a
    whole. ``pool`` shares repeated strings (SKU ids, part numbers, operations, outcomes) with the caller.
    """
    pool = {} if pool is None else pool
    waiting = {}  # op_id -> batch of an intent until its result line
    latest = {}  # key -> op_id of its latest intent while that waits for its result
    states = {}
    for dummy, entry, key in _operations(entries, pool):
        op_id = entry.get("op_id")
        if entry["type"] == "intent":
            waiting[op_id] = entry.get("batch")
            latest[key] = op_id
            states[key] = [
                _shared(entry.get("op"), pool),
                None,
                entry.get("batch"),
                entry.get("user_principal_name"),
                _shared(entry.get("sku_part_number"), pool),
                None,
                None,
                False,
            ]
            continue
        batch = waiting.pop(op_id, _NO_INTENT)
        state = states.get(key)
        if state is None:  # a result whose intent this journal does not hold
            state = states[key] = [_shared(entry.get("op"), pool), None, None, None, None, None, None, False]
        elif latest.get(key) != op_id:
            if entry.get("op") == "remove_direct" and entry.get("outcome") == "rolled_back":
                state[0], state[1] = "remove_direct", "rolled_back"
                state[2] = state[2] if batch is _NO_INTENT else batch
                state[5], state[6] = entry.get("error"), entry.get("detail")
            continue
        latest.pop(key, None)
        state[1], state[5], state[6] = _shared(entry.get("outcome"), pool), entry.get("error"), entry.get("detail")
    return states


def _public(state):
    public = dict((name, value) for name, value in state.items() if not name.startswith("_"))
    if public["removed_disabled_plans"] is not None:
        public["removed_disabled_plans"] = list(public["removed_disabled_plans"])
    return public


def journal_state(entries):
    """Per ``(user_id, sku_id)``: where the journal leaves that user's direct assignment.

    Each value holds ``user_id``, ``user_principal_name``, ``sku_id``, ``sku_part_number``;
    ``op``, ``op_id`` and ``outcome`` of the latest operation (``outcome`` None and ``pending``
    true when its intent has no result: the caller must read the user from Graph to know what
    happened, then record it with ``Journal.reconcile``; ``reconciled`` true when the result was
    so recorded by a later run); ``removal_op_id``, ``removal_outcome`` and ``removed_disabled_plans`` of the latest
    removal; and ``restorable``: the direct assignment was, or may have been, removed and has not
    been restored since. Pass the entries of several journals oldest first.
    """
    return dict((key, _public(state)) for key, state in _states(entries).items())


def pending_states(entries):
    """The journal_state() values whose ``pending`` is true (an intent without a result), in journal order.

    ``entries`` may be a JournalReader; only those states are built as dicts, so a run that starts
    on a journal of 100,000 removals does not hold a dict for each of them.
    """
    return [_public(state) for state in _states(entries).values() if state["pending"]]


def restorable(entries):
    """The direct assignments to put back, in the order they were removed.

    Each item: ``user_id``, ``user_principal_name``, ``sku_id``, ``sku_part_number``,
    ``disabled_plans`` (as before the removal), ``removal_op_id`` and ``removal_outcome`` (``ok``,
    ``unknown`` or ``pending``: for the last two, reading the user decides whether a restore is
    needed). Journal each restore (``restore_direct``) with outcome ``ok``, or ``skipped`` when the
    assignment was found in place, and the next call no longer lists it.
    """
    count, rows = iter_restorable(entries)
    return list(rows)


def iter_restorable(entries):
    """``(count, rows)``: how many direct assignments restorable() lists and an iterator over them.

    ``entries`` may be a JournalReader: the journal is read once, one entry at a time, and only a
    compact state per user and SKU is kept; each row dict is built when the iterator reaches it
    (write_rollback_script takes them this way for journals of 100,000 removals).
    """
    states = [state for state in _states(entries).values() if state["restorable"]]
    states.sort(key=lambda state: state["_removal_order"])
    return len(states), (_restorable_item(state) for state in states)


def _restorable_item(state):
    return {
        "user_id": state["user_id"],
        "user_principal_name": state["user_principal_name"],
        "sku_id": state["sku_id"],
        "sku_part_number": state["sku_part_number"],
        "disabled_plans": list(state["removed_disabled_plans"]),
        "removal_op_id": state["removal_op_id"],
        "removal_outcome": state["removal_outcome"],
    }
