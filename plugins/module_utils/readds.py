# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Direct assignments that came back after the migration removed them, and direct holders the plan never had.

Microsoft's procedure leaves the existing automation running during the migration (step 1). A legacy
script that re-licenses users it thinks are missing the SKU's direct copy puts back what the remove
phase took away; joiners it licenses directly after the plan was made are in no plan. Both are found
by comparing files the run already has, over plain data:

- the journal: the (user, SKU) pairs whose latest operation is a removal that succeeded
  (``removed_by_journal``; a later put-back by this collection cancels it);
- a fresh reading (license_assignment_info's JSON report records, ``direct`` true or false);
- the baseline reading written with the plan (the role's ``<host>-baseline.json``): the (user, SKU) pairs
  held directly when the plan was made.

``name_writers`` then names who wrote each re-added copy from the audit log's ``Change user license``
events (audit_log.summarise's users): the latest event after the removal not written by this collection.
Nothing here removes anything: joiners are reported, never removed (they are in no approved plan).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SAMPLE_LIMIT = 1000


def _key(user_id, sku_id):
    return ((user_id or "").lower(), (sku_id or "").lower())


class JournalRemovals:
    """removed_by_journal folded step by step: ``feed`` the entries as the journal grows (JournalReader.new_entries),
    ``removed`` is the same as removed_by_journal over every entry fed so far."""

    def __init__(self):
        self.intents = {}  # intents still waiting for their result line
        self.removed = {}

    def feed(self, entries):
        intents, removed = self.intents, self.removed
        for entry in entries:
            kind = entry.get("type")
            if kind == "intent":
                intents[entry.get("op_id")] = entry
                continue
            if kind != "result":
                continue
            intent = intents.pop(entry.get("op_id"), None) or {}
            key = _key(entry.get("user_id") or intent.get("user_id"), entry.get("sku_id") or intent.get("sku_id"))
            op = entry.get("op") or intent.get("op")
            if op == "remove_direct" and entry.get("outcome") == "ok":
                removed[key] = {
                    "user_id": key[0],
                    "user_principal_name": intent.get("user_principal_name"),
                    "sku_id": key[1],
                    "sku_part_number": intent.get("sku_part_number"),
                    "batch": intent.get("batch"),
                    "removed_at": entry.get("time"),
                    # When the removal was about to be sent (its intent): a writer that re-licensed the user between the write
                    # and its journaled result (the check after the write takes a moment) is still after it.
                    "sent_at": intent.get("time") or entry.get("time"),
                }
            elif op != "remove_direct" and entry.get("outcome") in ("ok", "skipped"):
                removed.pop(key, None)  # put back by this collection: not somebody else's re-add
        return self


def removed_by_journal(entries):
    """{(user_id, sku_id): {user_id, user_principal_name, sku_id, sku_part_number, batch, removed_at, sent_at}} of removals that stand."""
    return JournalRemovals().feed(entries).removed


def direct_keys(records):
    """The (user_id, sku_id) pairs a reading shows held directly."""
    return set(_key(record.get("user_id"), record.get("sku_id")) for record in records if record.get("direct"))


def compare_reading(records, removed, baseline_keys=None):
    """(re-added, joiners, joiners_total): removed pairs the reading shows direct again; direct pairs new since the baseline.

    ``records`` is iterated once (a reading can be large); ``baseline_keys`` (direct_keys of the reading made with
    the plan) None skips the joiners.
    """
    readded, joiners, joiners_total = [], [], 0
    for record in records:
        if not record.get("direct"):
            continue
        key = _key(record.get("user_id"), record.get("sku_id"))
        if key in removed:
            readded.append(dict(removed[key], disabled_plans_now=list(record.get("direct_disabled_plans") or [])))
        elif baseline_keys is not None and key not in baseline_keys:
            joiners_total += 1
            if len(joiners) < SAMPLE_LIMIT:
                joiners.append(
                    {
                        "user_id": key[0],
                        "user_principal_name": record.get("user_principal_name"),
                        "sku_id": key[1],
                        "sku_part_number": record.get("sku_part_number"),
                        "inherited": bool(record.get("healthy_inherited_from") or record.get("inherited_from")),
                    }
                )
    readded.sort(key=lambda row: (row["removed_at"] or "", row["user_principal_name"] or "", row["sku_id"]))
    joiners.sort(key=lambda row: (row["user_principal_name"] or "", row["sku_id"]))
    return readded, joiners, joiners_total


def inherited_keys(records):
    """The (user_id, sku_id) pairs a reading shows inherited from a group (healthy or not)."""
    return set(_key(record.get("user_id"), record.get("sku_id")) for record in records if record.get("inherited_from"))


def _short(record, key):
    return {"user_id": key[0], "user_principal_name": record.get("user_principal_name"), "sku_id": key[1], "sku_part_number": record.get("sku_part_number")}


def direct_only_drift(records, baseline_inherited=None):
    """Direct copies without any group copy of the SKU, split by what the baseline showed.

    Returns ``{"no_group": [...], "no_group_total": n, "lost_group": [...], "lost_group_total": n}``: ``lost_group``
    are the pairs the baseline showed inherited (the user left the licensing group and still holds the direct copy),
    ``no_group`` the others (direct-only users the licensing groups miss, joiners among them). Lists hold the first
    SAMPLE_LIMIT, sorted; ``baseline_inherited`` None puts every pair in ``no_group``.
    """
    found = {"no_group": [], "no_group_total": 0, "lost_group": [], "lost_group_total": 0}
    for record in records:
        if not record.get("direct") or record.get("inherited_from"):
            continue
        key = _key(record.get("user_id"), record.get("sku_id"))
        kind = "lost_group" if baseline_inherited is not None and key in baseline_inherited else "no_group"
        found[kind + "_total"] += 1
        if len(found[kind]) < SAMPLE_LIMIT:
            found[kind].append(_short(record, key))
    for kind in ("no_group", "lost_group"):
        found[kind].sort(key=lambda row: (row["user_principal_name"] or "", row["sku_id"]))
    return found


def sent_time(row):
    """When a removal was sent (``sent_at``, else ``removed_at`` for rows without it), or None: re-adds count from there."""
    return row.get("sent_at") or row.get("removed_at")


def earliest_removal(readded):
    """The oldest removal among the re-added pairs, as sent (sent_time): the audit window to read from; or None."""
    times = [sent for sent in map(sent_time, readded) if sent]
    return min(times) if times else None


def name_writers(readded, audit_users):
    """Each re-added row with ``writer``: the newest Change user license after its removal by another writer.

    Group-based licensing never writes a direct copy and this collection's own writes are its removals, so
    only events of other writers (kind ``other``) can name who put the direct copy back.

    ``audit_users`` is audit_log.summarise's ``users`` (None when the audit log could not be read: ``writer``
    stays None and ``writer_known`` false).
    """
    by_user = dict((user["id"], user) for user in audit_users or [])
    named = []
    for row in readded:
        changes = (by_user.get(row["user_id"]) or {}).get("changes") or []
        since = sent_time(row) or ""
        after = [c for c in changes if (c.get("time") or "") >= since and c["initiated_by"]["kind"] == "other"]
        writer = after[-1]["initiated_by"] if after else None
        named.append(
            dict(row, writer=writer, writer_known=writer is not None, writer_label=writer_label(writer), written_at=after[-1]["time"] if after else None)
        )
    return named


def writer_label(writer):
    """A short name for a writer: display name and app id, or the user principal; 'unknown' without one."""
    if not writer:
        return "unknown (audit log not read or no event yet)"
    if writer.get("app_id"):
        return "%s (app %s)" % (writer.get("display_name") or "unnamed app", writer["app_id"])
    return writer.get("user_principal_name") or writer.get("display_name") or writer.get("user_id") or "unknown"


def writers_summary(named):
    """{label: count} of the writers of the re-added rows."""
    summary = {}
    for row in named:
        label = writer_label(row.get("writer"))
        summary[label] = summary.get(label, 0) + 1
    return summary
