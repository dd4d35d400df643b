# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The directory audit log's license evidence, as functions over plain data (no HTTP).

Facts (reference entra-licensing.md section 11, graph-api.md sections 7.3 and 8):

- ``GET /auditLogs/directoryAudits`` takes ``$filter`` with ``eq``, ``ge``, ``le`` and ``startswith``
  on ``activityDisplayName`` and ``activityDateTime`` (among others), and has its own limit of 5
  requests per 10 s per application and tenant.
- Group activities (category GroupManagement): ``Set group license`` (someone changed a group's
  licenses), ``Start applying group based license to users`` and ``Finish applying group based
  license to users``, whose modified property ``Result`` reads
  ``[Users successfully assigned licenses: 6, Users for whom license assignment failed: 0.];``.
- User activity (UserManagement): ``Change user license``, for direct writes and for the changes
  group-based licensing makes. Group licensing acts as a system app named "Microsoft Azure AD
  Group-Based Licensing" in older documents and "Microsoft Entra group-Based Licensing" in current
  ones: both are accepted (matched without regard to case on ``group-based licensing``).

``audit_queries`` says which requests to send (one per activity, the time window and, for a single
target, the target in the server-side filter); ``summarise`` turns the events read into the
per-group and per-user evidence the ``license_audit_info`` module returns.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.entraops.licensing.plugins.module_utils.guid import is_guid

SET_GROUP_LICENSE = "Set group license"
START_PROCESSING = "Start applying group based license to users"
FINISH_PROCESSING = "Finish applying group based license to users"
CHANGE_USER_LICENSE = "Change user license"
GROUP_ACTIVITIES = (SET_GROUP_LICENSE, START_PROCESSING, FINISH_PROCESSING)
GROUP_LICENSING_MARK = "group-based licensing"
GROUP_LICENSING_NAMES = ("Microsoft Azure AD Group-Based Licensing", "Microsoft Entra group-Based Licensing")
DEFAULT_RETENTION_DAYS = 30

WRITER_GROUP_LICENSING = "group_licensing"
WRITER_THIS_COLLECTION = "this_collection"
WRITER_OTHER = "other"

_RESULT = re.compile(r"Users successfully assigned licenses:\s*(\d+)\s*,\s*Users for whom license assignment failed:\s*(\d+)", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AuditInputError(ValueError):
    """A bad option value, named with what was expected."""


# ---------------------------------------------------------------------------------------------- time window


def _utc(moment):
    return moment.replace(tzinfo=None) if moment.tzinfo is None else moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def parse_moment(value, name, now):
    """A naive UTC datetime from an ISO 8601 time (``Z`` or an offset) or a duration before ``now`` (``90m``, ``24h``, ``7d``)."""
    if isinstance(value, datetime.datetime):
        return _utc(value)
    text = str(value or "").strip()
    duration = _DURATION.match(text)
    if duration:
        return now - datetime.timedelta(seconds=int(duration.group(1)) * _UNIT_SECONDS[duration.group(2).lower()])
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise AuditInputError("%s: got %r, expected an ISO 8601 date and time (2026-03-01T08:00:00Z) or a duration before now (90m, 24h, 7d)" % (name, value))
    return _utc(moment)


def graph_time(moment):
    """The ``activityDateTime`` literal of a naive UTC datetime (seconds precision, ``Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_window(since, until, now, retention_days=DEFAULT_RETENTION_DAYS):
    """The window to read, and whether the audit log still holds all of it (``complete``, with a message if not)."""
    start = parse_moment(since, "since", now)
    end = now if until in (None, "") else parse_moment(until, "until", now)
    if start >= end:
        raise AuditInputError("since: got %s, expected a time before until (%s)" % (graph_time(start), graph_time(end)))
    kept_from = now - datetime.timedelta(days=retention_days)
    window = {"since": graph_time(start), "until": graph_time(end), "retention_days": retention_days, "kept_from": graph_time(kept_from), "complete": True}
    if until in (None, ""):
        window["open_end"] = True  # read up to now: no upper bound in the filter (seconds would cut this second's events)
    if start < kept_from:
        window["complete"] = False
        window["message"] = (
            "the window starts at %s but the audit log keeps %s days (from %s): events before that are gone, so this evidence covers only %s to %s"
            % (window["since"], retention_days, window["kept_from"], window["kept_from"], window["until"])
        )
    return window


# ---------------------------------------------------------------------------------------------- requests


def _quote(value):
    return "'%s'" % str(value).replace("'", "''")


def audit_queries(window, group_ids, user_ids, want_groups, want_users):
    """The ``$filter`` of each request to send: one per activity, in the window, a single target filtered server-side."""
    span = "activityDateTime ge %s" % window["since"]
    if not window.get("open_end"):
        span += " and activityDateTime le %s" % window["until"]
    queries = []
    if want_groups:
        target = _target_clause(group_ids)
        queries.extend("activityDisplayName eq %s and %s%s" % (_quote(name), span, target) for name in GROUP_ACTIVITIES)
    if want_users:
        queries.append("activityDisplayName eq %s and %s%s" % (_quote(CHANGE_USER_LICENSE), span, _target_clause(user_ids)))
    return queries


def _target_clause(ids):
    if ids is not None and len(ids) == 1:
        return " and targetResources/any(t:t/id eq %s)" % _quote(ids[0])
    return ""


# ---------------------------------------------------------------------------------------------- events


def parse_finish_result(text):
    """(users assigned, users failed) from a Finish event's ``Result`` value, or None when it says neither."""
    match = _RESULT.search(text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def is_group_licensing(initiated_by):
    app = (initiated_by or {}).get("app") or {}
    names = (app.get("displayName") or "", app.get("servicePrincipalName") or "")
    return any(GROUP_LICENSING_MARK in name.lower() for name in names)


def writer_of(event, own_app_ids):
    """Who made a change: ``{kind, app_id, display_name, user_id, user_principal_name}``."""
    initiated = event.get("initiatedBy") or {}
    app = initiated.get("app") or {}
    user = initiated.get("user") or {}
    writer = {
        "kind": WRITER_OTHER,
        "app_id": (app.get("appId") or "").lower() or None,
        "display_name": app.get("displayName") or user.get("displayName"),
        "user_id": user.get("id"),
        "user_principal_name": user.get("userPrincipalName"),
    }
    if is_group_licensing(initiated):
        writer["kind"] = WRITER_GROUP_LICENSING
    elif writer["app_id"] and writer["app_id"] in own_app_ids:
        writer["kind"] = WRITER_THIS_COLLECTION
    return writer


def _target(event):
    targets = event.get("targetResources") or []
    return targets[0] if targets else {}


def _modified(target, name):
    for prop in target.get("modifiedProperties") or []:
        if (prop.get("displayName") or "").lower() == name.lower():
            return prop
    return None


def _matches(target, wanted):
    """Whether a target is one of ``wanted`` (lower-case ids, user principal names or display names); None = all."""
    if wanted is None:
        return True
    keys = (target.get("id"), target.get("userPrincipalName"), target.get("displayName"))
    return any(key and key.lower() in wanted for key in keys)


def _event_base(event, own_app_ids):
    return {"time": event.get("activityDateTime"), "id": event.get("id"), "result": event.get("result"), "initiated_by": writer_of(event, own_app_ids)}


def _group_entry(groups, target):
    key = (target.get("id") or "").lower()
    if key not in groups:
        groups[key] = {
            "id": key,
            "display_name": target.get("displayName"),
            "set_group_license": [],
            "processing": [],
            "finish": [],
            "last_finish": None,
        }
    return groups[key]


def _add_group_event(groups, event, own_app_ids):
    target = _target(event)
    entry = _group_entry(groups, target)
    name = event.get("activityDisplayName")
    record = _event_base(event, own_app_ids)
    if name == SET_GROUP_LICENSE:
        change = _modified(target, "AssignedLicense") or {}
        record.update(old_value=change.get("oldValue"), new_value=change.get("newValue"))
        entry["set_group_license"].append(record)
        return
    record["activity"] = "start" if name == START_PROCESSING else "finish"
    if name == FINISH_PROCESSING:
        result = _modified(target, "Result") or {}
        counts = parse_finish_result(result.get("newValue"))
        record.update(result=result.get("newValue"), users_assigned=counts[0] if counts else None, users_failed=counts[1] if counts else None)
        entry["finish"].append(record)
        entry["last_finish"] = record
    entry["processing"].append(record)


def _user_entry(users, target):
    key = (target.get("id") or "").lower()
    if key not in users:
        users[key] = {
            "id": key,
            "user_principal_name": target.get("userPrincipalName"),
            "changes": [],
            "by_writer": {WRITER_GROUP_LICENSING: 0, WRITER_THIS_COLLECTION: 0, WRITER_OTHER: 0},
            "other_writers": [],
        }
    return users[key]


def _writer_key(writer):
    return (writer["app_id"] or "", writer["user_id"] or "", writer["user_principal_name"] or "", writer["display_name"] or "")


def _add_user_event(users, event, own_app_ids):
    entry = _user_entry(users, _target(event))
    record = _event_base(event, own_app_ids)
    writer = record["initiated_by"]
    entry["changes"].append(record)
    entry["by_writer"][writer["kind"]] += 1
    if writer["kind"] == WRITER_OTHER and all(_writer_key(writer) != _writer_key(seen) for seen in entry["other_writers"]):
        entry["other_writers"].append(dict((k, v) for k, v in writer.items() if k != "kind"))


def _other_writers(users):
    """Every other writer across users: who, how many users and events (the legacy automation shows itself here)."""
    found = {}
    for user in users:
        for change in user["changes"]:
            writer = change["initiated_by"]
            if writer["kind"] != WRITER_OTHER:
                continue
            entry = found.setdefault(_writer_key(writer), dict([(k, v) for k, v in writer.items() if k != "kind"], users=set(), events=0))
            entry["users"].add(user["id"])
            entry["events"] += 1
    return sorted(
        (dict(entry, users=len(entry["users"])) for entry in found.values()),
        key=lambda item: (-item["events"], item["display_name"] or "", item["app_id"] or ""),
    )


def _wanted(values):
    return None if values is None else set(str(value).lower() for value in values)


def summarise(events, groups=None, users=None, own_app_ids=()):
    """Per-group and per-user license evidence from directoryAudit events (any order).

    ``groups``/``users``: ids or names to keep (None keeps every target seen). Every group or user asked
    for appears in the answer, with empty lists when the window holds nothing about it.
    """
    own = set(str(app_id).lower() for app_id in own_app_ids if app_id)
    wanted_groups, wanted_users = _wanted(groups), _wanted(users)
    by_group, by_user = {}, {}
    for event in sorted(events, key=lambda item: item.get("activityDateTime") or ""):  # stable: ties keep the read order
        name = event.get("activityDisplayName")
        target = _target(event)
        if name in GROUP_ACTIVITIES and _matches(target, wanted_groups):
            _add_group_event(by_group, event, own)
        elif name == CHANGE_USER_LICENSE and _matches(target, wanted_users):
            _add_user_event(by_user, event, own)
    _add_missing(by_group, groups, _group_entry, "displayName")
    _add_missing(by_user, users, _user_entry, "userPrincipalName")
    user_list = sorted(by_user.values(), key=lambda item: (item["user_principal_name"] or "", item["id"]))
    group_list = sorted(by_group.values(), key=lambda item: (item["display_name"] or "", item["id"]))
    return {
        "groups": group_list,
        "finish_events": finish_events(group_list),
        "users": user_list,
        "other_writers": _other_writers(user_list),
        "totals": _totals(by_group.values(), user_list),
    }


def _add_missing(found, asked, make_entry, name_key):
    """An entry for each target asked for that no event named (matched by id or name)."""
    for value in asked or ():
        text = str(value).lower()
        if any(text in (entry["id"], (entry.get("display_name") or entry.get("user_principal_name") or "").lower()) for entry in found.values()):
            continue
        target = {"id": text} if is_guid(text) else {"id": "", name_key: value}
        found["missing:" + text] = make_entry({}, target)


def _totals(groups, users):
    finishes = [record for group in groups for record in group["finish"]]
    return {
        "set_group_license": sum(len(group["set_group_license"]) for group in groups),
        "finish_events": len(finishes),
        "users_assigned": sum(record["users_assigned"] or 0 for record in finishes),
        "users_failed": sum(record["users_failed"] or 0 for record in finishes),
        "user_changes": dict((kind, sum(user["by_writer"][kind] for user in users)) for kind in (WRITER_GROUP_LICENSING, WRITER_THIS_COLLECTION, WRITER_OTHER)),
    }


def finish_events(groups):
    """Every Finish event as a flat row (group id and name, time, counts, actor), oldest first: what the role records."""
    rows = [
        {
            "group_id": group["id"],
            "group": group["display_name"],
            "time": record["time"],
            "users_assigned": record["users_assigned"],
            "users_failed": record["users_failed"],
            "actor": record["initiated_by"]["display_name"],
        }
        for group in groups
        for record in group["finish"]
    ]
    return sorted(rows, key=lambda row: row["time"] or "")


def finish_after(group_entry, moment_text):
    """The group's Finish events at or after ``moment_text`` (an ``activityDateTime`` string), oldest first."""
    return [record for record in group_entry["finish"] if (record["time"] or "") >= (moment_text or "")]
