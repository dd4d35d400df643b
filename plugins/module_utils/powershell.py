# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PowerShell interop: read the legacy automation's license exports, write PowerShell for the change record.

Reading (``read_expected_state``)
---------------------------------
The legacy automation's export names, per user and SKU, the direct assignment it applies. It is
read in the shapes PowerShell produces:

* ``Export-Csv``: with or without the ``#TYPE ...`` first line (Windows PowerShell 5.1 writes it
  unless ``-NoTypeInformation``), comma or the locale's semicolon delimiter (``-UseCulture``;
  detected from the header line), every field quoted or not, CRLF or LF.
* ``ConvertTo-Json``: an array, or a single object when there was one row; also the
  ``{"value": [...], "Count": n}`` wrapper Windows PowerShell 5.1 writes for some arrays.
* Encodings: UTF-8 with or without BOM, UTF-16 LE and BE with BOM (Windows PowerShell 5.1
  ``Out-File``, ``>`` and ``-Encoding Unicode``), UTF-16 without BOM when the NUL bytes show it.

Columns / keys (case-insensitive): a user as ``UserPrincipalName`` (``UPN``, ``User``) and/or
``UserId`` (``Id``, ``ObjectId``); a SKU as ``SkuId`` and/or ``SkuPartNumber`` (``Sku``,
``License``, or MSOnline's ``AccountSkuId`` ``tenant:PART``); the plans as ``DisabledPlans``
(``DisabledPlanIds``) and/or ``DisabledPlanNames``, or ``EnabledPlans`` / ``EnabledPlanNames``.
Plan cells hold GUIDs or service plan names joined with ``;`` (JSON: an array or such a string).
A JSON user object may instead carry ``AssignedLicenses`` (all of them count) or
``LicenseAssignmentStates`` (only the direct entries, ``AssignedByGroup`` null, count), each a
list of ``{SkuId, DisabledPlans}``.

What is refused, with the file, the line (CSV) or record number (JSON), the value and the fix:
a cell holding ``System.String[]``/``System.Object[]`` or ``@{...}`` (``Export-Csv`` of an array
or object property: join it with ``-join ';'``), a JSON value cut to such a string by
``ConvertTo-Json``'s default ``-Depth 2`` (re-export with ``-Depth 5``), text that is neither UTF-8
nor UTF-16 (``-Encoding Default`` / ANSI), unknown users' key shapes, SKUs and plans the tenant does
not have, and the same user and SKU given twice with different plans. Nothing is guessed.

Writing (``write_planned_script``, ``write_rollback_script``)
-------------------------------------------------------------
The "what this run will do" script: every planned removal of a plan as a commented-out
``Set-MgUserLicense`` statement, by batch, for the change record. Running it changes nothing.

The rollback script: the restorable rows of a journal (``journal.iter_restorable``) as
``Set-MgUserLicense`` statements that put the direct assignments back without Ansible, written
beside the journal (``rollback_script_path``). Every value is quoted by ``powershell_quote``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import csv
import io
import json
import os
import re
import unicodedata

from ansible_collections.entraops.licensing.plugins.module_utils.guid import is_guid, normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.reports import (
    ROWS_PER_WRITE,
    RecordsError,
    atomic_text_file,
    guid_list,
    resolve_output_path,
    utc_now_iso,
)


class ExportFormatError(ValueError):
    """The legacy export cannot be read as it is; the message names the file, the place, the value and the fix."""


FIX_JOIN = (
    "export multi-valued properties as text joined with ';', for example Select-Object @{Name='DisabledPlans'; "
    "Expression={$_.DisabledPlans -join ';'}}, or use files/Export-LicenseState.ps1 of this collection"
)
FIX_DEPTH = "ConvertTo-Json cut the nesting at its default -Depth 2; export again with ConvertTo-Json -Depth 5"
FIX_ENCODING = (
    "save it as UTF-8 (Export-Csv -Encoding utf8, Out-File -Encoding utf8) or UTF-16 (-Encoding Unicode); "
    "-Encoding Default writes the Windows ANSI code page, which cannot be read reliably"
)

# What PowerShell writes in place of an array or object it did not serialise: "System.String[]",
# "System.Collections.Hashtable", "@{SkuId=...; DisabledPlans=System.Object[]}", or a .NET type
# name such as "Microsoft.Graph.PowerShell.Models.MicrosoftGraphAssignedLicense".
_UNSERIALISED = re.compile(r"^(@\{.*\}|System\.[\w.`]+(\[\])?(\[[\w.,` \[\]]*\])?|Microsoft\.Graph\.[\w.`]+(\[\])?)$", re.DOTALL)

_USER_NAME_KEYS = ("userprincipalname", "upn", "user")
_USER_ID_KEYS = ("userid", "id", "objectid")
_SKU_ID_KEYS = ("skuid",)
_SKU_NAME_KEYS = ("skupartnumber", "sku", "license", "accountskuid")
_DISABLED_KEYS = ("disabledplans", "disabledplanids", "disabledplannames")
_ENABLED_KEYS = ("enabledplans", "enabledplanids", "enabledplannames")
_NESTED_DIRECT_KEYS = ("licenseassignmentstates",)
_NESTED_ALL_KEYS = ("assignedlicenses", "licenses")
_KNOWN_KEYS = frozenset(
    _USER_NAME_KEYS + _USER_ID_KEYS + _SKU_ID_KEYS + _SKU_NAME_KEYS + _DISABLED_KEYS + _ENABLED_KEYS + _NESTED_DIRECT_KEYS + _NESTED_ALL_KEYS
)
_LIST_SEPARATOR = ";"


# --------------------------------------------------------------------------------------------
# Bytes -> text
# --------------------------------------------------------------------------------------------


def decode_export(data, path):
    """``(text, encoding name)`` of an export's bytes; BOM first, then UTF-16 by its NULs, then strict UTF-8."""
    for bom, codec, label in (
        (codecs.BOM_UTF8, "utf-8", "utf-8 with BOM"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le with BOM"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be with BOM"),
    ):
        if data.startswith(bom):
            return _decode(data[len(bom) :], codec, path, label)
    sample = data[:200]
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 and sample[0::2].count(0) == 0:
        return _decode(data, "utf-16-le", path, "utf-16-le without BOM")
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4 and sample[1::2].count(0) == 0:
        return _decode(data, "utf-16-be", path, "utf-16-be without BOM")
    return _decode(data, "utf-8", path, "utf-8")


def _decode(data, codec, path, label):
    try:
        return data.decode(codec), label
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ExportFormatError(
            "%s line %d: byte 0x%02x at offset %d is not %s text: %s" % (path, line, data[exc.start], exc.start, codec.upper(), FIX_ENCODING)
        )


# --------------------------------------------------------------------------------------------
# Text -> raw rows: [(place, {lower-cased key: value})]
# --------------------------------------------------------------------------------------------


def _csv_rows(text, path):
    lines = text.splitlines(True)
    skipped = 0
    while skipped < len(lines) and (not lines[skipped].strip() or lines[skipped].lstrip().upper().startswith("#TYPE")):
        skipped += 1
    if skipped >= len(lines):
        raise ExportFormatError("%s has no header line: expected an Export-Csv file with columns such as UserPrincipalName, SkuId, DisabledPlans" % path)
    body = "".join(lines[skipped:])
    header_line = lines[skipped]
    delimiter = _detect_delimiter(header_line, path, skipped + 1)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    header = [cell.strip().lower() for cell in next(reader)]
    rows = []
    for cells in reader:
        line = skipped + reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise ExportFormatError(
                "%s line %d has %d fields, the header has %d (delimiter %r): a value holding the delimiter must be quoted; "
                "Export-Csv quotes every field" % (path, line, len(cells), len(header), delimiter)
            )
        rows.append(("%s line %d" % (path, line), dict(zip(header, cells)), FIX_JOIN))
    return rows, delimiter


def _detect_delimiter(header_line, path, line):
    best = None
    for delimiter in (",", ";", "\t"):
        cells = [cell.strip().lower() for cell in next(csv.reader([header_line], delimiter=delimiter))]
        known = len([cell for cell in cells if cell in _KNOWN_KEYS])
        if known and (best is None or known > best[1]):
            best = (delimiter, known)
    if best is None:
        raise ExportFormatError(
            "%s line %d: header %r names none of the expected columns (UserPrincipalName or UserId, SkuId or SkuPartNumber, "
            "DisabledPlans or DisabledPlanNames)" % (path, line, header_line.strip()[:200])
        )
    return best[0]


def _json_rows(text, path):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ExportFormatError("%s is not valid JSON: %s" % (path, exc))
    if isinstance(data, dict) and "value" in data and not (set(key.lower() for key in data) & _KNOWN_KEYS):
        # Windows PowerShell 5.1 {"value": [...], "Count": n}, or a raw Graph page
        if not isinstance(data["value"], list):
            raise ExportFormatError(
                '%s holds {"value": %r} where the rows should be: expected an array of objects; %s' % (path, _short(data["value"]), FIX_DEPTH)
            )
        data = data["value"]
    if isinstance(data, dict):
        data = [data]  # ConvertTo-Json writes a single object for a single row
    if not isinstance(data, list):
        raise ExportFormatError("%s holds a JSON %s: expected an array of objects (ConvertTo-Json output)" % (path, type(data).__name__))
    rows = []
    for number, item in enumerate(data, start=1):
        place = "%s record %d" % (path, number)
        if isinstance(item, str) and _UNSERIALISED.match(item.strip()):
            raise ExportFormatError("%s holds %r instead of an object: %s" % (place, _short(item), FIX_DEPTH))
        if not isinstance(item, dict):
            raise ExportFormatError("%s is a JSON %s: expected an object" % (place, type(item).__name__))
        rows.extend(_json_item_rows(item, place))
    return rows


def _json_item_rows(item, place):
    fields = dict((str(key).lower(), value) for key, value in item.items())
    for keys, direct_only in ((_NESTED_DIRECT_KEYS, True), (_NESTED_ALL_KEYS, False)):
        nested_key = next((key for key in keys if key in fields), None)
        if nested_key is None:
            continue
        nested = fields.pop(nested_key)
        if isinstance(nested, dict):
            nested = [nested]
        if isinstance(nested, str):
            if _UNSERIALISED.match(nested.strip()):
                raise ExportFormatError("%s field %r holds %r: %s" % (place, nested_key, _short(nested), FIX_DEPTH))
            raise ExportFormatError("%s field %r holds the text %r: expected a list of {SkuId, DisabledPlans}" % (place, nested_key, _short(nested)))
        rows = []
        for position, entry in enumerate(nested or [], start=1):
            entry_place = "%s %s[%d]" % (place, nested_key, position)
            if isinstance(entry, str) and _UNSERIALISED.match(entry.strip()):
                raise ExportFormatError("%s holds %r: %s" % (entry_place, _short(entry), FIX_DEPTH))
            if not isinstance(entry, dict):
                raise ExportFormatError("%s is a JSON %s: expected an object {SkuId, DisabledPlans}" % (entry_place, type(entry).__name__))
            entry_fields = dict((str(key).lower(), value) for key, value in entry.items())
            if direct_only and entry_fields.get("assignedbygroup") not in (None, ""):
                continue
            rows.append((entry_place, dict(fields, **entry_fields), FIX_DEPTH))
        return rows
    return [(place, fields, FIX_DEPTH)]


# --------------------------------------------------------------------------------------------
# Raw rows -> expected assignments
# --------------------------------------------------------------------------------------------


def _short(value):
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _first(fields, keys):
    for key in keys:
        if key in fields and fields[key] not in (None, ""):
            return key, fields[key]
    return None, None


def _scalar(place, key, value, fix=FIX_JOIN):
    if isinstance(value, (dict, list)):
        raise ExportFormatError("%s field %r holds a JSON %s: expected a single value" % (place, key, type(value).__name__))
    text = str(value).strip()
    if _UNSERIALISED.match(text):
        raise ExportFormatError("%s field %r holds %r, which PowerShell writes for an object it did not serialise: %s" % (place, key, _short(text), fix))
    return text


def _plan_values(place, key, value, fix=FIX_JOIN):
    """The items of a plan cell: a JSON list, or text joined with ';' (commas accepted too when unambiguous)."""
    if value is None:
        return []
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, str) and _UNSERIALISED.match(item.strip()):
                raise ExportFormatError("%s field %r holds %r: %s" % (place, key, _short(item), FIX_DEPTH))
            if isinstance(item, (dict, list)):
                raise ExportFormatError("%s field %r holds a nested JSON %s: expected plan GUIDs or names" % (place, key, type(item).__name__))
            items.append(str(item).strip())
        return [item for item in items if item]
    if isinstance(value, dict):
        raise ExportFormatError("%s field %r holds a JSON object: expected a list of plan GUIDs or names" % (place, key))
    text = str(value).strip()
    if _UNSERIALISED.match(text):
        raise ExportFormatError("%s field %r holds %r instead of the plans: %s" % (place, key, _short(text), fix))
    separator = _LIST_SEPARATOR if _LIST_SEPARATOR in text or "," not in text else ","
    return [item.strip() for item in text.split(separator) if item.strip()]


def _refuse_flattened(place, fields, fix):
    # Export-Csv of Get-MgUser's AssignedLicenses writes "System.Object[]" (or a type name) where the SKUs were.
    for key in _NESTED_DIRECT_KEYS + _NESTED_ALL_KEYS:
        value = fields.get(key)
        if isinstance(value, str) and _UNSERIALISED.match(value.strip()):
            raise ExportFormatError("%s field %r holds %r instead of the licenses: %s" % (place, key, _short(value.strip()), fix))


def _user_of(place, fields, fix):
    id_key, user_id = _first(fields, _USER_ID_KEYS)
    name_key, upn = _first(fields, _USER_NAME_KEYS)
    if user_id is None and upn is None:
        raise ExportFormatError("%s names no user: expected a UserPrincipalName or UserId value" % place)
    if user_id is not None:
        user_id = _scalar(place, id_key, user_id, fix)
        if not is_guid(user_id):
            raise ExportFormatError("%s field %r holds %r: expected a user object id (GUID)" % (place, id_key, _short(user_id)))
        user_id = normalize_guid(user_id, "user id", error=LicensingInputError)
    if upn is not None:
        upn = _scalar(place, name_key, upn, fix)
    return user_id, upn


def _sku_of(place, fields, catalog, fix):
    id_key, sku = _first(fields, _SKU_ID_KEYS)
    if sku is None:
        id_key, sku = _first(fields, _SKU_NAME_KEYS)
    if sku is None:
        raise ExportFormatError("%s names no SKU: expected a SkuId or SkuPartNumber value" % place)
    sku = _scalar(place, id_key, sku, fix)
    if id_key == "accountskuid" and ":" in sku:
        sku = sku.split(":", 1)[1]  # MSOnline "contoso:ENTERPRISEPACK"
    try:
        return catalog.resolve_sku(sku)
    except LicensingInputError as exc:
        raise ExportFormatError("%s field %r: %s" % (place, id_key, exc))


def _plans_of(place, fields, catalog, sku_id, fix):
    """The disabled plan ids the row gives for ``sku_id`` (from disabled or enabled plans)."""
    disabled_key, disabled = _first(fields, _DISABLED_KEYS)
    enabled_key, enabled = _first(fields, _ENABLED_KEYS)
    if disabled_key is not None and enabled_key is not None:
        raise ExportFormatError("%s gives both %r and %r: expected disabled or enabled plans, not both" % (place, disabled_key, enabled_key))
    key, value = (enabled_key, enabled) if enabled_key is not None else (disabled_key, disabled)
    values = _plan_values(place, key, value, fix)
    try:
        plan_ids = catalog.resolve_plans(sku_id, values)
    except LicensingInputError as exc:
        raise ExportFormatError("%s field %r: %s" % (place, key, exc))
    if enabled_key is not None:
        return catalog.disabled_from_enabled(sku_id, plan_ids)
    return plan_ids


def parse_export(data, path):
    """Structure of an export's bytes, without the tenant: ``{"format", "encoding", "delimiter", "rows": [(place, fields)]}``."""
    text, encoding = decode_export(data, path)
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ExportFormatError("%s is empty: expected an Export-Csv or ConvertTo-Json export of license assignments" % path)
    if stripped[0] in "[{":
        return {"format": "json", "encoding": encoding, "delimiter": None, "rows": _json_rows(stripped, path)}
    rows, delimiter = _csv_rows(text.lstrip("\ufeff"), path)
    return {"format": "csv", "encoding": encoding, "delimiter": delimiter, "rows": rows}


def resolve_export(parsed, catalog):
    """Expected assignments from a parse_export() result, with SKUs and plans resolved through the tenant's SkuCatalog.

    Returns a list of ``{"place", "user_id", "user_principal_name", "user_key", "sku_id", "disabled_plans"}``
    (``user_key``: the id when given, else the UPN; ``disabled_plans`` a frozenset of plan ids).
    The same user and SKU twice is accepted when the plans agree, refused otherwise.
    """
    seen = {}
    expected = []
    for place, fields, fix in parsed["rows"]:
        _refuse_flattened(place, fields, fix)
        user_id, upn = _user_of(place, fields, fix)
        sku_id = _sku_of(place, fields, catalog, fix)
        disabled = frozenset(_plans_of(place, fields, catalog, sku_id, fix))
        user_key = user_id or upn.casefold()
        earlier = seen.get((user_key, sku_id))
        if earlier is not None:
            if earlier["disabled_plans"] != disabled:
                raise ExportFormatError(
                    "%s gives %s %s other plans than %s: expected one direct assignment per user and SKU"
                    % (place, upn or user_id, catalog.part_number(sku_id), earlier["place"])
                )
            continue
        entry = {"place": place, "user_id": user_id, "user_principal_name": upn, "user_key": user_id or upn, "sku_id": sku_id, "disabled_plans": disabled}
        seen[(user_key, sku_id)] = entry
        expected.append(entry)
    return expected


def read_export_file(path):
    """parse_export() of a file; ExportFormatError names the file when it cannot be read."""
    absolute_path = os.path.abspath(os.path.expanduser(path))
    try:
        with open(absolute_path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise ExportFormatError("expected state file %s does not exist" % absolute_path)
    except OSError as exc:
        raise ExportFormatError("cannot read expected state file %s: %s" % (absolute_path, exc.strerror or exc))
    parsed = parse_export(data, absolute_path)
    parsed["path"] = absolute_path
    return parsed


# --------------------------------------------------------------------------------------------
# Expected state vs what the groups give
# --------------------------------------------------------------------------------------------

EXPECTED_STATUSES = ("reproduced", "sku_missing", "plans_missing", "user_not_found")


def _inherited_plan_ids(catalog, record):
    # enabled(G) of the record, back from the names the rule reported (same catalog, same ids).
    names = record.get("inherited_enabled_plan_names") or []
    plans = catalog.get(record["sku_id"])["plans"]
    by_name = dict((name, plan_id) for plan_id, (name, dummy) in plans.items())
    return frozenset(by_name.get(name, name) for name in names)


def compare_expected(expected, user, records, catalog):
    """One comparison dict per expected assignment of one user.

    ``expected``: the user's entries from resolve_export(); ``user``: the Graph user or None when
    it does not exist; ``records``: that user's classification records (licensing.classify_user),
    whose ``healthy_inherited_from`` / ``inherited_enabled_plan_names`` are what stays after the
    direct assignments go. Each result: ``expected_state`` (one of EXPECTED_STATUSES),
    ``user_id``, ``user_principal_name``, ``sku_id``, ``sku_part_number``, ``source`` (file and line),
    ``expected_enabled_plan_names``, ``inherited_enabled_plan_names``, ``plans_missing`` (names),
    ``healthy_inherited_from``, ``verdict`` (the record's, or None).
    """
    by_sku = dict((record["sku_id"], record) for record in records if record.get("sku_id"))
    results = []
    for entry in expected:
        sku_id = entry["sku_id"]
        expected_enabled = catalog.enabled_plans(sku_id, entry["disabled_plans"])
        record = by_sku.get(sku_id)
        result = {
            "user_id": user.get("id", "").lower() if user else entry["user_id"],
            "user_principal_name": user.get("userPrincipalName") if user else entry["user_principal_name"],
            "sku_id": sku_id,
            "sku_part_number": catalog.part_number(sku_id),
            "source": entry["place"],
            "expected_enabled_plan_names": catalog.plan_names(sku_id, expected_enabled),
            "inherited_enabled_plan_names": [],
            "plans_missing": [],
            "healthy_inherited_from": [],
            "verdict": record.get("verdict") if record else None,
        }
        if user is None:
            result["expected_state"] = "user_not_found"
        elif record is None or not record.get("healthy_inherited_from"):
            result["expected_state"] = "sku_missing"
            result["plans_missing"] = result["expected_enabled_plan_names"]
        else:
            inherited = _inherited_plan_ids(catalog, record)
            missing = expected_enabled - inherited
            result["healthy_inherited_from"] = list(record["healthy_inherited_from"])
            result["inherited_enabled_plan_names"] = catalog.plan_names(sku_id, inherited)
            result["plans_missing"] = catalog.plan_names(sku_id, missing)
            result["expected_state"] = "plans_missing" if missing else "reproduced"
        results.append(result)
    return results


# --------------------------------------------------------------------------------------------
# The "what this run will do" script
# --------------------------------------------------------------------------------------------


def planned_script_path(plan_path):
    """Where the script of a plan goes: beside it, ``<plan name>.planned.ps1``."""
    root, extension = os.path.splitext(plan_path)
    return (root if extension else plan_path) + ".planned.ps1"


# A newline or control character would end the comment and turn the rest into code.
_COMMENT_BREAKERS = re.compile("[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _comment_text(value):
    # One regular expression pass (a per-character loop cost ~1 s per 50,000 planned rows).
    return _COMMENT_BREAKERS.sub(" ", str(value))


_PLANNED_HEADER = """<#
.SYNOPSIS
What the entraops.licensing migration plan {plan_name} will do: the direct license removals it plans.

.DESCRIPTION
Generated by the entraops.licensing Ansible collection at {generated_at}, for the change record.
Every statement is commented out: running this script changes nothing. Each removal is the
Microsoft Graph PowerShell equivalent of what entraops.licensing.direct_license sends for one row
of the plan; the collection re-checks every row on a fresh read just before the write and skips
rows that are no longer safe, so the run may remove fewer.

Tenant: {tenant}. Rows: {total}, in {batches} batch(es); batch 0 is the canary.
Plan fingerprint: {fingerprint}
(the content the change record approves; direct_license refuses another with plan_fingerprint set).
#>

Write-Host {notice}
"""

_PLANNED_BATCH = """
# ---- Batch {batch}{canary}: {count} removal(s)
"""

# A row's text after "# {number} of {total}" (PlannedRowText): encoded once, possibly while the pages arrive.
_PLANNED_ROW_TAIL = """: {user}, {sku}; kept through group(s) {groups}; direct disabled plans: {disabled}
# Set-MgUserLicense -UserId {user_id} -AddLicenses @() -RemoveLicenses @({sku_id})
"""


def planned_script_text(rows, plan_name, tenant_id=None, generated_at=None):
    """The text of the "what this run will do" script for plan ``rows`` (each with a ``batch``)."""
    return "".join(_planned_script_parts(rows, plan_name, tenant_id=tenant_id, generated_at=generated_at))


class PlannedRowText:
    """A plan row's text in the script after its ``# {number} of {total}``: ``PlannedRowText(...)(row)``.

    ``plan_names`` (``{plan id: name}``) names the directly disabled plans; without it the row's own
    ``direct_disabled_plan_names`` (else the plan ids) are written. The texts that repeat from row to
    row (SKU, group and plan lists) are made once per instance. Raises LicensingInputError when the
    row's user or SKU id is not a GUID, unless ``ids_checked``: the rows' ``user_id`` and ``sku_id``
    are known to be canonical GUIDs (plan.PlanBuilder validates them before its companion sees the
    row), so they are not checked again.
    """

    def __init__(self, plan_names=None, ids_checked=False):
        self.plan_names = plan_names
        self.ids_checked = ids_checked
        self._lists = {}  # (tuple of names or ids) -> comment text of the list joined
        self._quoted = {}  # SKU id -> its PowerShell literal
        self._skus = {}  # part number (or SKU id) -> comment text

    def __call__(self, row):
        if self.ids_checked:
            user_id, sku_id = row["user_id"], row["sku_id"]
        else:
            user_id = normalize_guid(row.get("user_id"), "user id", error=LicensingInputError)
            sku_id = normalize_guid(row.get("sku_id"), "SKU id", error=LicensingInputError)
        if self.plan_names is not None:
            disabled = tuple(self.plan_names.get(plan, plan) for plan in row.get("direct_disabled_plans") or ())
        else:
            disabled = tuple(row.get("direct_disabled_plan_names") or row.get("direct_disabled_plans") or ())
        sku = row.get("sku_part_number") or sku_id
        sku_text = self._skus.get(sku) if isinstance(sku, str) else _comment_text(sku)
        if sku_text is None:
            sku_text = self._skus[sku] = _comment_text(sku)
        quoted_sku = self._quoted.get(sku_id)
        if quoted_sku is None:
            quoted_sku = self._quoted[sku_id] = powershell_quote(sku_id)
        return _PLANNED_ROW_TAIL.format(
            user=_comment_text(row.get("user_principal_name") or user_id),
            sku=sku_text,
            groups=self._list_text(tuple(row.get("healthy_inherited_from") or ())),
            disabled=self._list_text(disabled),
            user_id=powershell_quote(user_id),
            sku_id=quoted_sku,
        )

    def _list_text(self, values):
        text = self._lists.get(values)
        if text is None:
            text = self._lists[values] = _comment_text(", ".join(values) or "none")
        return text


def _planned_script_parts(rows, plan_name, tenant_id=None, generated_at=None, fingerprint=None):
    """The script piece by piece, so a plan of 100,000 rows is written without holding its text."""
    rows = sorted(rows, key=lambda row: row.get("batch") if isinstance(row.get("batch"), int) else -1)
    per_batch = {}
    for row in rows:
        per_batch[row.get("batch")] = per_batch.get(row.get("batch"), 0) + 1

    def tails():
        text = PlannedRowText()
        for number, row in enumerate(rows, start=1):
            try:
                yield row.get("batch"), text(row)
            except LicensingInputError as exc:
                raise RecordsError("planned script row %d: %s" % (number, exc))

    return planned_script_parts(tails(), per_batch, plan_name, tenant_id=tenant_id, generated_at=generated_at, fingerprint=fingerprint)


def planned_script_parts(batched_tails, per_batch, plan_name, tenant_id=None, generated_at=None, fingerprint=None):
    """The script piece by piece from ``(batch, PlannedRowText text)`` pairs in plan order.

    ``per_batch`` is ``{batch: rows}`` for those pairs (the header and each batch's heading count them).
    """
    total = sum(per_batch.values())
    yield _PLANNED_HEADER.format(
        plan_name=_comment_text(plan_name),
        generated_at=_comment_text(generated_at or utc_now_iso()),
        tenant=_comment_text(tenant_id or "not recorded"),
        total=total,
        batches=len(per_batch),
        fingerprint=_comment_text(fingerprint or "not recorded"),
        notice=powershell_quote("This script only documents the planned removals of %s; it changes nothing." % plan_name),
    )
    current_batch = object()
    lines = []  # given ROWS_PER_WRITE rows at a time: a write() per row costs more than the row's text
    for number, (batch, tail) in enumerate(batched_tails, start=1):
        if batch != current_batch:
            current_batch = batch
            lines.append(_PLANNED_BATCH.format(batch=batch, canary=" (canary)" if batch == 0 else "", count=per_batch[batch]))
        lines.append("# %d of %d%s" % (number, total, tail))
        if len(lines) >= ROWS_PER_WRITE:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def write_planned_script(rows, plan_path, tenant_id=None, generated_at=None, fingerprint=None):
    """Write the script beside ``plan_path`` (UTF-8 with BOM for Windows PowerShell 5.1, CRLF); ``{"path", "rows"}``."""
    rows = rows if isinstance(rows, list) else list(rows)
    parts = _planned_script_parts(rows, os.path.basename(plan_path), tenant_id=tenant_id, generated_at=generated_at, fingerprint=fingerprint)
    return dict(_write_planned_parts(plan_path, parts), rows=len(rows))


def write_planned_script_parts(batched_tails, per_batch, plan_path, tenant_id=None, generated_at=None, fingerprint=None):
    """write_planned_script from ``(batch, PlannedRowText text)`` pairs in plan order (plan.PlanBuilder's companions)."""
    parts = planned_script_parts(batched_tails, per_batch, os.path.basename(plan_path), tenant_id=tenant_id, generated_at=generated_at, fingerprint=fingerprint)
    return dict(_write_planned_parts(plan_path, parts), rows=sum(per_batch.values()))


def _write_planned_parts(plan_path, parts):
    absolute_path = resolve_output_path(planned_script_path(os.path.abspath(os.path.expanduser(plan_path))), "planned removals script")
    with atomic_text_file(absolute_path, "planned removals script", encoding="utf-8-sig", newline="\r\n") as stream:
        for part in parts:
            stream.write(part)
    return {"path": absolute_path}


# ----------------------------------------------------------------------------- the rollback script

# PowerShell treats these four typographic quotes as single quotes too; each must be doubled.
_POWERSHELL_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"


_QUOTE_DOUBLING = dict((ord(char), char * 2) for char in _POWERSHELL_SINGLE_QUOTES)


def _printable(text):
    # Line and paragraph separators and control characters would end a comment or mangle output.
    text = str(text)
    if text.isascii() and text.isprintable():
        return text  # printable ASCII has no Cc, Cf, Zl or Zp character: nothing to replace
    return "".join(" " if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in text)


def powershell_quote(text):
    """``text`` as a PowerShell single-quoted string literal (no expansion of $ or backticks)."""
    return "'" + _printable(text).translate(_QUOTE_DOUBLING) + "'"


def rollback_script_path(journal_path):
    """Where the rollback script of a journal goes: beside it, ``<name>.rollback.ps1``."""
    root, extension = os.path.splitext(journal_path)
    return (root if extension else journal_path) + ".rollback.ps1"


_SCRIPT_HEADER = """#Requires -Modules Microsoft.Graph.Users.Actions
<#
.SYNOPSIS
Puts back the direct license assignments that an entraops.licensing migration removed.

.DESCRIPTION
Generated by the entraops.licensing Ansible collection from its migration journal at {generated_at}.
Each block re-adds one user's direct license assignment of one SKU, with the disabled service plans
it had before it was removed. Running the script again is harmless: adding a license the user
already holds directly sets the same disabled plans again.

Needs Microsoft Graph PowerShell (Install-Module Microsoft.Graph.Users.Actions -Scope CurrentUser)
and the permission LicenseAssignment.ReadWrite.All (User.ReadWrite.All or Directory.ReadWrite.All
also allow it). To run it as an application, connect first, for example with
Connect-MgGraph -TenantId <tenant> -ClientId <application id> -CertificateThumbprint <thumbprint>,
then run the script in the same session.
#>

if ($null -eq (Get-MgContext)) {{
    # Least-privileged permission for Set-MgUserLicense; User.ReadWrite.All also works.
    Connect-MgGraph -Scopes 'LicenseAssignment.ReadWrite.All'{tenant_argument} -ErrorAction Stop
}}

$total = {total}
$restored = 0
$failures = New-Object System.Collections.Generic.List[string]
"""

_SCRIPT_ROW = (
    """
# {number} of {total}: {user_comment}, {sku_comment}
try {{
    Set-MgUserLicense -UserId {user_id} -AddLicenses @(@{{SkuId = {sku_id}; DisabledPlans = @({disabled_plans})}})"""
    """ -RemoveLicenses @() -ErrorAction Stop | Out-Null
    $restored++
    Write-Host {restored_message}
}} catch {{
    $failures.Add({failure_label} + $_.Exception.Message)
    Write-Warning ({warning_label} + $_.Exception.Message)
}}
"""
)

_SCRIPT_FOOTER = """
Write-Host ('Restored {0} of {1} direct license assignments.' -f $restored, $total)
if ($failures.Count -gt 0) {
    Write-Warning ('{0} could not be restored:' -f $failures.Count)
    foreach ($failure in $failures) {
        Write-Warning $failure
    }
    exit 1
}
"""

_TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def _script_row(row, number, total):
    if not isinstance(row, dict):
        raise RecordsError("rollback row %d is a %s, expected a dict" % (number, type(row).__name__))
    user_id = normalize_guid(row.get("user_id"), "rollback row %d user_id" % number, error=RecordsError)
    sku_id = normalize_guid(row.get("sku_id"), "rollback row %d sku_id" % number, error=RecordsError)
    disabled_plans = guid_list(row.get("disabled_plans", []), "rollback row %d disabled_plans" % number)
    user_label = row.get("user_principal_name") or user_id
    sku_label = row.get("sku_part_number") or sku_id
    return _SCRIPT_ROW.format(
        number=number,
        total=total,
        user_comment=_printable(user_label),
        sku_comment=_printable(sku_label),
        user_id=powershell_quote(user_id),
        sku_id=powershell_quote(sku_id),
        disabled_plans=", ".join(powershell_quote(plan) for plan in disabled_plans),
        restored_message=powershell_quote("Restored %s for %s" % (sku_label, user_label)),
        failure_label=powershell_quote("%s %s: " % (user_label, sku_label)),
        warning_label=powershell_quote("Could not restore %s for %s: " % (sku_label, user_label)),
    )


def write_rollback_script(restorable_rows, path, tenant_id=None, generated_at=None, total=None):
    """Write a Microsoft Graph PowerShell script that restores ``restorable_rows`` without Ansible.

    ``restorable_rows`` are items of ``restorable()``; with ``total`` (their number, as
    ``iter_restorable`` gives it) they may be an iterator, written one at a time. The script is UTF-8
    with a byte order mark (Windows PowerShell 5.1 reads UTF-8 without one as the ANSI code page) and
    CRLF line endings, written atomically: a bad row (or a count that does not match ``total``) leaves
    no script, half-written or not, and an earlier script as it was. Returns ``{"path": absolute path, "rows": count}``.
    """
    if tenant_id is not None and (not isinstance(tenant_id, str) or not _TENANT_PATTERN.match(tenant_id)):
        raise RecordsError("tenant_id must be a tenant GUID or domain name, got %r" % (tenant_id,))
    if total is None:
        restorable_rows = list(restorable_rows)
        total = len(restorable_rows)
    absolute_path = resolve_output_path(path, "rollback script")
    header = _SCRIPT_HEADER.format(
        generated_at=_printable(generated_at or utc_now_iso()),
        tenant_argument=(" -TenantId " + powershell_quote(tenant_id)) if tenant_id else "",
        total=total,
    )
    count = 0
    with atomic_text_file(absolute_path, "rollback script", encoding="utf-8-sig", newline="\r\n") as stream:
        stream.write(header)
        for number, row in enumerate(restorable_rows, start=1):
            stream.write(_script_row(row, number, total))
            count = number
        if count != total:
            raise RecordsError("rollback script %s: %d rows given, %d announced" % (absolute_path, count, total))
        stream.write(_SCRIPT_FOOTER)
    return {"path": absolute_path, "rows": count}
