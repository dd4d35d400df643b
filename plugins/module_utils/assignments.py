# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The membership index and the classification stream that feed the safety rule (licensing.classify).

Built on directory.py's reads; nothing here writes. Users are streamed page by page (``$top=999``) so memory
does not grow with user objects; what is kept across pages is ids only: the direct (and, for
groups with nested groups, transitive) membership of users in the tenant's LICENSED groups,
derived from the groups' member lists rather than one memberOf read per user.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    GROUP_SELECT,
    DirectoryInputError,
    find_group,
    is_member_type,
    iter_direct_members,
    iter_group_users,
    iter_groups,
    iter_sku_holders,
    iter_transitive_members,
    iter_users_by_key,
)
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import group_kind
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    GroupFacts,
    LicensingInputError,
    classify_user,
    user_assignment_states,
    user_not_found_record,
)

# User pages the chain may run ahead of classification (about 2 MB each once parsed) when the licensed
# groups' member lists are read in the background (MembershipIndex.start_loading): the user chain and
# the member chains then run side by side, as the bound assumes. Classification is faster than the
# chain, so once the groups are read the backlog drains and one or two pages are held.
PAGES_AHEAD_WHILE_LOADING = 24


def read_tenant_id(client):
    """The tenant's GUID (GET /organization), recorded in plans so a plan is never run against another tenant."""
    organizations = list(client.get_all("/organization", params={"$select": "id"}))
    return normalize_guid(organizations[0]["id"], "tenant id", error=LicensingInputError) if organizations else None


def read_tenant(client):
    """``(tenant GUID or None, countryLetterCode or None)`` from one GET /organization.

    The country is the usage location Entra applies to group-licensed users who have none; a restore
    gives it to such a user before the direct assignment, which needs one.
    """
    organizations = list(client.get_all("/organization", params={"$select": "id,countryLetterCode"}))
    if not organizations:
        return None, None
    country = organizations[0].get("countryLetterCode")
    return normalize_guid(organizations[0]["id"], "tenant id", error=LicensingInputError), (country.upper() if isinstance(country, str) and country else None)


def resolve_skus(catalog, values):
    """SKU GUIDs or part numbers -> list of SKU ids (order kept, duplicates dropped). Raises LicensingInputError."""
    resolved = []
    for value in values or []:
        sku_id = catalog.resolve_sku(value)
        if sku_id not in resolved:
            resolved.append(sku_id)
    return resolved


def resolve_groups(client, values):
    """Group ids or display names -> ``{group_id: raw group}``; raises LicensingInputError naming an unknown or ambiguous value."""
    found = {}
    for value in values or []:
        try:
            group = find_group(client, value, require_licensable=False, select=GROUP_SELECT)
        except DirectoryInputError as exc:
            raise LicensingInputError(str(exc))
        if group is None:
            raise LicensingInputError("group %r does not exist: expected the display name or object id of an existing group" % (value,))
        found[normalize_guid(group["id"], "group id", error=LicensingInputError)] = group
    return found


class InBackground:
    """``function(*args)`` in a daemon thread: a task that fails early does not wait for it to end.

    ``result()`` waits for it and returns its value or raises, in the caller's thread, what it raised.
    """

    def __init__(self, function, *args, **kwargs):
        self._value = None
        self._error = None

        def run():
            try:
                self._value = function(*args)
            # raised by result() in the caller's thread
            except BaseException as exc:  # pylint: disable=broad-except
                self._error = exc

        self._thread = threading.Thread(target=run, name=kwargs.get("name", "graph-background-read"))
        self._thread.daemon = True
        self._thread.start()

    def done(self):
        return not self._thread.is_alive()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class MembershipIndex:
    """Facts and memberships of the groups that matter to the rule.

    ``groups``: ``{group_id: GroupFacts}`` of every licensed group (and of any other group a
    user's inherited entry names, read on demand). ``direct_of(user_id)`` / ``transitive_of``:
    ids of those groups the user is a direct / any-depth member of.
    """

    def __init__(self, client):
        self.client = client
        self.groups = {}
        self.kinds = {}  # group id -> 'cloud', 'dynamic' or 'synced' (group_kinds.py)
        self._direct = {}
        self._nested = {}
        self._combinations = {}
        self._read = set()
        self._loader = None

    def start_loading(self):
        """load_licensed_groups() in a background thread, so the caller can page users meanwhile.

        classify() waits for it; wait() does too and raises what the loading raised (call it once
        the records are consumed, so an error surfaces even when no user was classified).
        """
        self._loader = InBackground(self.load_licensed_groups, name="licensed-group-members")
        return self

    def loaded(self):
        """True once the licensed groups are read (or were never read in the background)."""
        return self._loader is None or self._loader.done()

    def wait(self):
        """Wait for start_loading() to finish; raise its error, if any."""
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader.result()
        return self

    def pages_ahead(self):
        """GraphClient.iter_pages' ``prefetch`` for reading users now: far ahead while the groups load, else one page."""
        return True if self.loaded() else PAGES_AHEAD_WHILE_LOADING

    def load_licensed_groups(self):
        """Read every group once; keep and index the members of those that carry licenses.

        Each group's member list is a chain of pages; the chains of different groups are
        independent, so they are read side by side (up to the client's read_chains at once: the
        bound of the read path assumes every member chain runs beside the user chain).
        """
        licensed = [group for group in iter_groups(self.client) if group.get("assignedLicenses")]
        for group in licensed:
            self.kinds[normalize_guid(group["id"], "group id", error=LicensingInputError)] = group_kind(group)
        workers = max(1, min(len(licensed), getattr(self.client, "read_chains", 1)))
        if workers == 1:
            for group in licensed:
                self.add_group(group)
            return self
        with ThreadPoolExecutor(max_workers=workers) as executor:
            memberships = executor.map(self._read_members, [GroupFacts.from_graph(group) for group in licensed])
            for facts, direct_users, nested_users in memberships:
                self._index(facts, direct_users, nested_users)
        return self

    def add_group(self, raw_group):
        facts = GroupFacts.from_graph(raw_group)
        self.kinds[facts.group_id] = group_kind(raw_group)
        if facts.group_id in self._read:
            self.groups[facts.group_id] = facts
            return facts
        return self._index(*self._read_members(facts))

    def _read_members(self, facts):
        """(facts, ids of direct user members, ids of nested user members or None); reads only, so it may run in a thread."""
        direct_users = []
        has_nested = False
        for member in iter_direct_members(self.client, facts.group_id, select=("id",)):
            if is_member_type(member, "user"):
                direct_users.append(member["id"].lower())
            elif is_member_type(member, "group"):
                has_nested = True
        nested_users = None
        if has_nested:
            nested_users = [
                member["id"].lower() for member in iter_transitive_members(self.client, facts.group_id, select=("id",)) if is_member_type(member, "user")
            ]
        return facts, direct_users, nested_users

    def _index(self, facts, direct_users, nested_users):
        self.groups[facts.group_id] = facts
        self._read.add(facts.group_id)
        for user_id in direct_users:
            self._direct[user_id] = self._with(self._direct.get(user_id), facts.group_id)
        for user_id in nested_users or ():
            self._nested[user_id] = self._with(self._nested.get(user_id), facts.group_id)
        return facts

    def _with(self, group_ids, group_id):
        """The shared frozenset of ``group_ids`` plus ``group_id``: users share a handful of group
        combinations, so one object per combination instead of one set per user (100,000 users)."""
        combined = frozenset((group_id,)) | group_ids if group_ids else frozenset((group_id,))
        return self._combinations.setdefault(combined, combined)

    def ensure_groups(self, group_ids):
        """Read groups a user's entries name that were not read yet (for example a group that lost its licenses)."""
        missing = sorted(set(group_ids) - self._read)
        if not missing:
            return
        results = self.client.batch([{"method": "GET", "url": "/groups/%s?$select=%s" % (group_id, GROUP_SELECT)} for group_id in missing])
        for group_id, result in zip(missing, results):
            self._read.add(group_id)
            if result.ok:
                self._read.discard(group_id)
                self.add_group(result.body)
            elif result.status != 404:
                raise result.error()

    def direct_of(self, user_id):
        return frozenset(self._direct.get(user_id, ()))

    def transitive_of(self, user_id):
        return frozenset(self._direct.get(user_id, ())) | frozenset(self._nested.get(user_id, ()))

    def classify(self, user, catalog, trusted_groups=None, sku_ids=None):
        """Records of one Graph user (licensing.classify_user with this index's facts)."""
        if self._loader is not None:
            self.wait()
        user_id = normalize_guid(user["id"], "user id", error=LicensingInputError)
        entries = user_assignment_states(user)
        self.ensure_groups(entry["group_id"] for entry in entries if entry["group_id"])
        return classify_user(
            user, catalog, self.groups, self.direct_of(user_id), self.transitive_of(user_id), trusted_groups=trusted_groups, sku_ids=sku_ids, entries=entries
        )


def iter_records(client, catalog, index, users=None, group_ids=None, sku_ids=None, trusted_groups=None):
    """Stream classification records for the scope: ``users`` (ids/UPNs), else members of ``group_ids``, else holders of ``sku_ids``.

    ``sku_ids`` also limits which SKUs are classified in the first two scopes. A user key that
    does not exist gives a ``user_not_found`` record.
    """
    if users:
        for key, user in iter_users_by_key(client, users):
            if user is None:
                yield user_not_found_record(key)
                continue
            yield from index.classify(user, catalog, trusted_groups, sku_ids or None)
        return
    # while ``index`` still reads its groups in the background (start_loading), users are read further ahead
    ahead = index.pages_ahead() if hasattr(index, "pages_ahead") else True
    source = iter_group_users(client, group_ids, prefetch=ahead) if group_ids else iter_sku_holders(client, sku_ids, prefetch=ahead)
    for user in source:
        yield from index.classify(user, catalog, trusted_groups, sku_ids or None)
