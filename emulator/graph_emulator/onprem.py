"""A simulated Microsoft Entra Connect: on-premises AD membership changes reach Entra at the next sync cycle.

``OnPremisesSync`` is a part of ``Directory`` (engine.py). ``onprem_change_members`` records what an AD
administrator changed (nothing shows in Graph yet); a sync cycle applies it: every ``sync_interval_s`` emulated
seconds (0 = only on demand) when ``advance()`` runs, or now with ``run_sync_cycle()``. A member the cycle adds
starts group licensing; one it removes gives the group's licenses back (ledger cause ``onprem_sync``).
"""

from __future__ import annotations

from .records import RequestContext, _locked, _now_iso
from .tenant import is_guid

SYNC_APP_NAME = "Microsoft Entra Connect"
SYNC_CAUSE = "onprem_sync"
SYNC_CONTEXT = RequestContext(method="SYNC", path="(Microsoft Entra Connect sync cycle)", app_display_name=SYNC_APP_NAME, cause=SYNC_CAUSE)
DEFAULT_SYNC_INTERVAL_S = 30.0


def _synced(record) -> bool:
    extra = getattr(record, "extra", None)
    if extra is not None or not hasattr(record, "onprem"):
        return bool(extra and extra.get("onPremisesSyncEnabled"))
    return record.synced


class OnPremisesSync:
    """The Entra Connect part of ``Directory``: pending on-premises changes (``self._sync_pending``) and cycles."""

    def _reset_sync(self):
        self._sync_pending = []  # [(group id, "add" | "remove", member id)] in the order AD made them
        self._sync_last = self._processing.clock()

    @property
    def sync_interval_s(self) -> float:
        return self._sync_interval_s

    @_locked
    def configure_sync(self, sync_interval_s) -> None:
        if isinstance(sync_interval_s, bool) or not isinstance(sync_interval_s, (int, float)) or sync_interval_s < 0:
            raise ValueError(f"sync_interval_s: got {sync_interval_s!r}, expected a number of seconds >= 0 (0: only on demand)")
        self._advance_sync()  # a cycle already due runs at the old interval
        self._sync_interval_s = float(sync_interval_s)

    def _resolve_onprem_member(self, name, group, sid_index):
        if is_guid(name):
            record = self._users.get(name.lower()) or self._groups.get(name.lower())
        else:
            record = sid_index.get(str(name).lower())
        if record is None:
            raise ValueError(
                f"member: got {name!r}, expected the object id, onPremisesSecurityIdentifier or onPremisesSamAccountName of a user or group synced from on-premises"
            )
        if not _synced(record):
            label = f"user {record.upn} ({record.id})" if hasattr(record, "upn") else f"group {record.display_name} ({record.id})"
            raise ValueError(
                f"{label} is cloud-only (onPremisesSyncEnabled is not true): it has no on-premises account and cannot be a member of the synced group {group.display_name}"
            )
        if record.id == group.id:
            raise ValueError(f"member: got {name!r}, the group itself cannot be its own member")
        return record.id

    def _onprem_index(self):
        index = {}
        for record in [u for u in self._user_order if u is not None] + [g for g in self._group_order if g is not None]:
            data = (record.extra or {}) if hasattr(record, "upn") else (record.onprem or {})
            for key in ("onPremisesSecurityIdentifier", "onPremisesSamAccountName"):
                if data.get(key):
                    index.setdefault(data[key].lower(), record)
        return index

    @_locked
    def onprem_change_members(self, group_id, add=(), remove=()) -> int:
        """Record AD membership changes of a synced group; they reach Entra at the next sync cycle. Returns the pending count."""
        if isinstance(add, str) or isinstance(remove, str):
            raise ValueError("add and remove: expected lists of members, got a string")
        group = self._groups.get(group_id.lower()) if is_guid(group_id) else None
        if group is None:
            raise ValueError(f"group: got {group_id!r}, expected the object id of a group")
        if not group.synced:
            raise ValueError(
                f"group {group.display_name} ({group.id}) is not synced from on-premises (onPremisesSyncEnabled is not true): "
                "its members change through Graph, not through Entra Connect"
            )
        index = self._onprem_index()
        changes = [(group.id, "add", self._resolve_onprem_member(m, group, index)) for m in add]
        changes += [(group.id, "remove", self._resolve_onprem_member(m, group, index)) for m in remove]
        self._sync_pending.extend(changes)
        return len(self._sync_pending)

    @_locked
    def run_sync_cycle(self) -> dict:
        """Apply every pending on-premises change now: ``{"applied": [{groupId, added, removed}], "pending": 0}``."""
        applied = {}
        pending, self._sync_pending = self._sync_pending, []
        now = _now_iso()
        for group_id, action, member_id in pending:
            group = self._groups.get(group_id)
            kind = "user" if member_id in self._users else "group" if member_id in self._groups else None
            if group is None or kind is None:
                continue  # deleted in the cloud since: nothing to sync
            entry = applied.setdefault(group_id, {"groupId": group_id, "added": [], "removed": []})
            if action == "add" and member_id not in group.members:
                self._link_member(group, member_id)
                self._record_member_change(group, kind, member_id, True, SYNC_CONTEXT)
                entry["added"].append(member_id)
            elif action == "remove" and member_id in group.members:
                self._unlink_member(group, member_id)
                self._record_member_change(group, kind, member_id, False, SYNC_CONTEXT)
                entry["removed"].append(member_id)
            else:
                continue
            group.onprem["onPremisesLastSyncDateTime"] = now
            if kind == "user":
                self._membership_changed(group, member_id, SYNC_CONTEXT)
        self._sync_last = self._processing.clock()
        return {"applied": list(applied.values()), "pending": len(self._sync_pending)}

    def _advance_sync(self):
        interval = self._sync_interval_s
        if interval <= 0:
            return
        now = self._processing.clock()
        if (now - self._sync_last) * self._processing.time_scale >= interval:
            self.run_sync_cycle()

    @_locked
    def sync_pending(self) -> int:
        return len(self._sync_pending)
