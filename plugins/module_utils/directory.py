# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Graph reads and writes on directory objects (users, groups, memberships), shared by the modules.

Everything here goes through GraphClient and knows no licensing rule: decisions belong to
licensing.py. Ids returned are normalised GUIDs (lower case). Functions raise GraphError for
Graph failures and DirectoryInputError when the input names nothing usable; the message names the
value and what was expected, and is raised before any write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported
    from urllib import quote  # type: ignore

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError, GraphOutcomeUnknown
from ansible_collections.entraops.licensing.plugins.module_utils.guid import is_guid, normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    GroupFacts,
    LicensingInputError,
    SkuCatalog,
    direct_entry,
    user_assignment_states,
)

PAGE_SIZE = 999  # Graph's maximum $top for users, groups and members
BIND_LIMIT = 20  # members@odata.bind accepts at most 20 references per request
# What every group read asks for: the facts the safety rule reads (GroupFacts) and what licensing_group shows and edits.
# The kind of group (group_kinds.py) too: dynamic and synced groups refuse member writes.
GROUP_SELECT = (
    "id,displayName,description,securityEnabled,mailEnabled,groupTypes,assignedLicenses,licenseProcessingState,"
    "membershipRule,membershipRuleProcessingState,onPremisesSyncEnabled,onPremisesSecurityIdentifier,onPremisesSamAccountName,onPremisesDomainName"
)
# What a user read for classification asks for (licensing.classify_user).
USER_SELECT = ("id", "userPrincipalName", "usageLocation", "assignedLicenses", "licenseAssignmentStates")
# Users resolved per $batch round when users are named by key (the client splits it into 20s).
USER_READ_CHUNK = 200
ALREADY_MEMBER_TEXT = "already exist"
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# Graph's directory is eventually consistent (graph-api.md 5): the group read back after assignLicense may come from
# a replica that has not seen it. Re-read, waiting longer each time, until it carries what was asked, at most this long.
READ_BACK_SECONDS = 30.0
EQ_VALUE_LIMIT = 120  # longest $filter eq value Graph takes without advanced query


class DirectoryInputError(ValueError):
    """Input that names nothing usable (unknown user, ambiguous or unsuitable group)."""


def _user_path(key):
    # UPNs may hold characters with a meaning in a URL ('#' of guest UPNs, '/', '%'): quote all but '@'.
    return "/users/%s" % quote(key, safe="@")


def is_member_type(member, kind):
    """True when a directory object's ``@odata.type`` names ``kind`` (``'user'``, ``'group'``)."""
    return str(member.get("@odata.type") or "").lower().endswith("." + kind)


def user_summary(user):
    """{'id', 'user_principal_name'} of a Graph user, id normalised."""
    return {"id": normalize_guid(user["id"], "user id", error=LicensingInputError), "user_principal_name": user.get("userPrincipalName")}


# ------------------------------------------------------------------------------------------- SKUs


def read_sku_catalog(client):
    """The tenant's SkuCatalog (licensing.py) from GET /subscribedSkus."""
    return SkuCatalog.from_subscribed_skus(list(client.get_all("/subscribedSkus")))


# ------------------------------------------------------------------------------------------ users


def iter_users_by_key(client, keys, select=USER_SELECT):
    """Yield ``(key, user or None)`` for user ids or UPNs, read through $batch (None: not found)."""
    keys = list(keys)
    for offset in range(0, len(keys), USER_READ_CHUNK):
        chunk = keys[offset : offset + USER_READ_CHUNK]
        results = client.batch([{"method": "GET", "url": "%s?$select=%s" % (_user_path(key.strip()), ",".join(select))} for key in chunk])
        for key, result in zip(chunk, results):
            if result.ok:
                yield key, result.body
            elif result.status in (400, 404):
                # 404: no such user; 400: the key cannot name a user at all (malformed id).
                yield key, None
            else:
                raise result.error()


def resolve_users(client, keys):
    """Look up users by UPN or object id in bulk ($batch, 20 per request).

    Returns ``(found, unknown)``: ``found`` maps each given key to ``{'id', 'user_principal_name'}``
    (keys compared without regard to case, duplicates looked up once), ``unknown`` lists the keys
    Graph does not know, in input order. Other failures raise GraphError.
    """
    unique = []
    seen = set()
    for key in keys or []:
        if not isinstance(key, str) or not key.strip():
            raise DirectoryInputError("%r is not a valid user: expected a userPrincipalName or an object id (GUID)" % (key,))
        folded = key.strip().lower()
        if folded not in seen:
            seen.add(folded)
            unique.append(key.strip())
    found, unknown = {}, []
    for key, user in iter_users_by_key(client, unique, select=("id", "userPrincipalName")):
        if user is None:
            unknown.append(key)
        else:
            found[key.lower()] = user_summary(user)
    mapping = {}
    for key in keys or []:
        summary = found.get(key.strip().lower())
        if summary is not None:
            mapping[key] = summary
    return mapping, unknown


def iter_sku_holders(client, sku_ids, select=USER_SELECT, prefetch=False):
    """Yield each user holding one of ``sku_ids`` in any way, once (one paged, filtered read per SKU;
    the GUID is an unquoted literal; ``prefetch``: see GraphClient.iter_pages)."""
    seen = set()
    for sku_id in sku_ids:
        params = {
            "$filter": "assignedLicenses/any(x:x/skuId eq %s)" % normalize_guid(sku_id, "SKU id", error=LicensingInputError),
            "$select": ",".join(select),
            "$top": PAGE_SIZE,
        }
        for user in client.get_all("/users", params=params, prefetch=prefetch):
            if user["id"].lower() not in seen:
                seen.add(user["id"].lower())
                yield user


def iter_group_users(client, group_ids, select=USER_SELECT, prefetch=False):
    """Yield each user member of the groups, nested members included, once (``prefetch``: see GraphClient.iter_pages)."""
    seen = set()
    for group_id in group_ids:
        for member in iter_transitive_members(client, group_id, select=select, prefetch=prefetch):
            if is_member_type(member, "user") and member["id"].lower() not in seen:
                seen.add(member["id"].lower())
                yield member


def direct_sku_holders(client, sku_id):
    """``[{'id', 'user_principal_name'}]`` of users holding ``sku_id`` by DIRECT assignment."""
    sku_id = normalize_guid(sku_id, "SKU id", error=LicensingInputError)
    holders = []
    for user in iter_sku_holders(client, [sku_id], select=("id", "userPrincipalName", "licenseAssignmentStates")):
        if direct_entry(user, sku_id) is not None:
            holders.append(user_summary(user))
    return holders


def reprocess_users(client, user_ids):
    """POST reprocessLicenseAssignment for each user (idempotent, $batch). Returns ``(done_ids, errors)``."""
    ids = [normalize_guid(user_id, "user id", error=LicensingInputError) for user_id in user_ids]
    results = client.batch([{"method": "POST", "url": "/users/%s/reprocessLicenseAssignment" % user_id, "idempotent": True} for user_id in ids])
    done, errors = [], []
    for user_id, result in zip(ids, results):
        if result.ok:
            done.append(user_id)
        else:
            errors.append({"user_id": user_id, "error": str(result.error())})
    return done, errors


# ----------------------------------------------------------------------------------------- groups


def group_cannot_carry_licenses(group):
    """Why a Graph group cannot carry licenses (a sentence), or None when it can.

    Only security groups and Microsoft 365 groups with securityEnabled can (reference 1.3).
    """
    if group.get("securityEnabled") is not True:
        return "it is not security-enabled (group licensing needs a security group or a Microsoft 365 group with securityEnabled)"
    return None


def get_group(client, group_id, select=GROUP_SELECT):
    """The group with this object id, or None when Graph does not know it."""
    try:
        return client.get("/groups/%s" % normalize_guid(group_id, "group id", error=LicensingInputError), params={"$select": select})
    except GraphError as exc:
        if exc.status == 404:
            return None
        raise


def iter_groups(client, select=GROUP_SELECT):
    """Every group of the tenant, paged."""
    return client.get_all("/groups", params={"$select": select, "$top": PAGE_SIZE})


def find_groups_by_name(client, display_name, select=GROUP_SELECT):
    """Every group whose displayName equals ``display_name`` (Graph compares without regard to case).

    Graph refuses an ``eq`` value longer than EQ_VALUE_LIMIT characters unless the query is an advanced one
    (known issues, "Some limitations apply to query parameters"); a display name may hold 256: such a name is
    looked up with ``ConsistencyLevel: eventual`` and ``$count=true``.
    """
    literal = display_name.replace("'", "''")
    params = {"$filter": "displayName eq '%s'" % literal, "$select": select, "$top": PAGE_SIZE}
    headers = None
    if len(display_name) > EQ_VALUE_LIMIT:
        params["$count"] = "true"
        headers = {"ConsistencyLevel": "eventual"}
    return list(client.get_all("/groups", params=params, headers=headers))


def find_group(client, name_or_id, require_licensable=True, select=GROUP_SELECT):
    """The one group named by ``name_or_id`` (object id or display name), or None when none exists.

    Raises DirectoryInputError when a display name matches several groups (listing their ids) or,
    with ``require_licensable``, when the group cannot carry licenses.
    """
    if not isinstance(name_or_id, str) or not name_or_id.strip():
        raise DirectoryInputError("%r is not a valid group: expected a display name or an object id (GUID)" % (name_or_id,))
    value = name_or_id.strip()
    if is_guid(value):
        group = get_group(client, value, select=select)
        if group is None:
            # A GUID may also be a display name (rare, but possible): look that up before giving up.
            matches = find_groups_by_name(client, value, select=select)
            group = _single_match(value, matches)
    else:
        group = _single_match(value, find_groups_by_name(client, value, select=select))
    if group is not None and require_licensable:
        reason = group_cannot_carry_licenses(group)
        if reason:
            raise DirectoryInputError("group %r (%s) cannot carry licenses: %s" % (group.get("displayName"), group.get("id"), reason))
    return group


def _single_match(name, matches):
    if not matches:
        return None
    if len(matches) > 1:
        raise DirectoryInputError(
            "%d groups are named %r (%s): expected exactly one; name the group by its object id instead"
            % (len(matches), name, ", ".join(sorted(normalize_guid(group["id"], error=LicensingInputError) for group in matches)))
        )
    return matches[0]


def group_facts(group):
    """GroupFacts (licensing.py) of a Graph group read with GROUP_SELECT."""
    return GroupFacts.from_graph(group)


def mail_nickname_for(display_name):
    """A mailNickname Graph accepts, derived from the display name (ASCII letters and digits, at most 64)."""
    nickname = "".join(character for character in display_name if character.isascii() and character.isalnum())[:64]
    return nickname or "licensinggroup"


def create_security_group(client, display_name, description=None, membership_rule=None, processing_state="On"):
    """Create a security group (securityEnabled, not mail-enabled) and return it as read back.

    With ``membership_rule`` the group is dynamic (groupTypes DynamicMembership, the rule, its processing state).

    When the outcome of the create is unknown (timeout, 5xx), the group is looked up by name
    before anything else happens, so a retry of the whole task does not create a twin.
    """
    body = {"displayName": display_name, "mailNickname": mail_nickname_for(display_name), "mailEnabled": False, "securityEnabled": True, "groupTypes": []}
    if description:
        body["description"] = description
    if membership_rule is not None:
        body.update(groupTypes=["DynamicMembership"], membershipRule=membership_rule, membershipRuleProcessingState=processing_state or "On")
    try:
        created = client.post("/groups", body=body).body or {}
    except GraphOutcomeUnknown:
        group = find_group(client, display_name)
        if group is None:
            raise
        return group
    return get_group(client, created["id"]) or created


def assign_group_licenses(client, group_id, add_licenses, remove_licenses):
    """POST the group's assignLicense and return the group as read back (None when Graph no longer knows it).

    ``add_licenses``: ``[{'skuId', 'disabledPlans'}]`` (ids lower case); ``remove_licenses``: SKU ids.
    When the outcome is unknown (timeout, 5xx) the group is read again: the change may have been
    applied, and only a group that carries exactly what was asked counts as done; otherwise the
    GraphOutcomeUnknown is raised.
    """
    body = {"addLicenses": add_licenses, "removeLicenses": remove_licenses}
    try:
        client.post("/groups/%s/assignLicense" % group_id, body=body)
    except GraphOutcomeUnknown:
        group = get_group(client, group_id) or {}
        if not _carries_exactly(group, add_licenses, remove_licenses):
            raise
    return read_back_group(client, group_id, add_licenses, remove_licenses)


def read_back_group(client, group_id, add_licenses, remove_licenses, limit=READ_BACK_SECONDS):
    """The group after an accepted assignLicense: a read that shows the change (its processing state is then the
    one the change started, not the state from before it), or the last read after ``limit`` seconds."""
    started, wait = time.monotonic(), 0.1
    while True:
        group = get_group(client, group_id)
        if group is None or _carries_exactly(group, add_licenses, remove_licenses) or time.monotonic() - started + wait > limit:
            return group
        time.sleep(wait)
        wait = min(wait * 2, 2.0)


def _carries_exactly(group, add_licenses, remove_licenses):
    carried = dict(
        (license_["skuId"].lower(), sorted(p.lower() for p in license_.get("disabledPlans") or [])) for license_ in group.get("assignedLicenses") or []
    )
    for license_ in add_licenses:
        if carried.get(license_["skuId"]) != sorted(license_["disabledPlans"]):
            return False
    return not any(sku_id in carried for sku_id in remove_licenses)


def update_group(client, group_id, changes):
    """PATCH the group's properties (``changes``: Graph names); a rule change needs Group.ReadWrite.All."""
    client.patch("/groups/%s" % normalize_guid(group_id, "group id", error=LicensingInputError), body=changes, idempotent=True)


def update_group_description(client, group_id, description):
    client.patch("/groups/%s" % normalize_guid(group_id, "group id", error=LicensingInputError), body={"description": description}, idempotent=True)


def delete_group(client, group_id):
    """Delete a group; a group already gone counts as deleted."""
    try:
        client.delete("/groups/%s" % normalize_guid(group_id, "group id", error=LicensingInputError), idempotent=True)
    except GraphError as exc:
        if exc.status != 404:
            raise


# ---------------------------------------------------------------------------------------- members


def iter_direct_members(client, group_id, select=("id", "userPrincipalName")):
    """Every DIRECT member (users, groups, devices...) of a group, paged; items carry ``@odata.type``."""
    params = {"$select": ",".join(select), "$top": PAGE_SIZE}
    return client.get_all("/groups/%s/members" % normalize_guid(group_id, "group id", error=LicensingInputError), params=params)


def iter_transitive_members(client, group_id, select=("id",), prefetch=False):
    """Every member of a group at any depth (users, groups, devices...), paged; items carry ``@odata.type``."""
    params = {"$select": ",".join(select), "$top": PAGE_SIZE}
    return client.get_all("/groups/%s/transitiveMembers" % normalize_guid(group_id, "group id", error=LicensingInputError), params=params, prefetch=prefetch)


def iter_direct_user_members(client, group_id, select=("id", "userPrincipalName")):
    """Every DIRECT user member of a group (the microsoft.graph.user cast), paged.

    Nested groups' members are not returned: group licensing does not reach them.
    """
    params = {"$select": ",".join(select), "$top": PAGE_SIZE}
    return client.get_all("/groups/%s/members/microsoft.graph.user" % normalize_guid(group_id, "group id", error=LicensingInputError), params=params)


def split_members(members):
    """``(users, nested_group_ids, other_count)`` from a direct member listing (iter_direct_members)."""
    nested_groups, others = [], []
    users = list(iter_user_members(members, nested_groups, others))
    return users, nested_groups, len(others)


def iter_user_members(members, nested_groups, others=None):
    """The user members of a direct member listing, one at a time; nested group ids are appended to ``nested_groups``.

    The streaming form of ``split_members``: a group of 100,000 members read with their license states
    is never held as one list (the lists are complete once the generator is exhausted). Members that
    are neither users nor groups go to ``others`` when it is given.
    """
    for member in members:
        kind = (member.get("@odata.type") or "").lower()
        if kind == USER_TYPE:
            yield member
        elif kind == GROUP_TYPE:
            nested_groups.append(normalize_guid(member["id"], "group id", error=LicensingInputError))
        elif others is not None:
            others.append(member)


def direct_user_member_ids(client, group_id):
    """``{user_id: userPrincipalName}`` of the group's direct user members."""
    return dict(
        (normalize_guid(user["id"], "user id", error=LicensingInputError), user.get("userPrincipalName")) for user in iter_direct_user_members(client, group_id)
    )


def members_with_license_errors(client, group_id, select=("id", "userPrincipalName", "licenseAssignmentStates")):
    """Users Graph lists under the group's membersWithLicenseErrors (may include former members), paged."""
    params = {"$select": ",".join(select), "$top": PAGE_SIZE}
    return client.get_all("/groups/%s/membersWithLicenseErrors" % normalize_guid(group_id, "group id", error=LicensingInputError), params=params)


def count_members_without_skus(client, group_id, sku_ids):
    """``({sku_id: direct user members not holding it in any way}, member count)`` from one paged read.

    These are the members who would consume a new unit when the group starts carrying the SKU
    (a member who holds it directly or through another group already consumes one).
    """
    wanted = [normalize_guid(sku_id, "SKU id", error=LicensingInputError) for sku_id in sku_ids]
    missing = dict((sku_id, 0) for sku_id in wanted)
    total = 0
    for user in iter_direct_user_members(client, group_id, select=("id", "assignedLicenses")):
        total += 1
        held = set(normalize_guid(license_["skuId"], "SKU id", error=LicensingInputError) for license_ in user.get("assignedLicenses") or [])
        for sku_id in wanted:
            if sku_id not in held:
                missing[sku_id] += 1
    return missing, total


def directory_object_url(client, object_id):
    """The @odata.id / members@odata.bind reference of a directory object on the client's Graph host."""
    return "%s/v1.0/directoryObjects/%s" % (client.graph_root, normalize_guid(object_id, "object id", error=LicensingInputError))


def _chunks(values, size):
    return [values[offset : offset + size] for offset in range(0, len(values), size)]


def add_members(client, group_id, member_ids, max_rounds=3):
    """Make ``member_ids`` direct members: PATCH members@odata.bind, 20 per request, sent through $batch.

    A request refused because some reference "already exist[s]" (a concurrent add, or a write
    whose outcome was unknown) is settled by re-reading the members and re-sending only the ids
    still missing. Returns ``{'added': [ids], 'already_members': [ids]}``; raises GraphError when
    ids remain impossible to add.
    """
    group_id = normalize_guid(group_id, "group id", error=LicensingInputError)
    # Once each, in order (dict keys: a list lookup per id made 100,000 members cost ~50 s of CPU).
    pending = list(dict.fromkeys(normalize_guid(member_id, "member id", error=LicensingInputError) for member_id in member_ids))
    added, already = [], []
    last_error = None
    for dummy in range(max_rounds):
        if not pending:
            break
        chunks = _chunks(pending, BIND_LIMIT)
        requests_list = [
            {
                "method": "PATCH",
                "url": "/groups/%s" % group_id,
                "body": {"members@odata.bind": [directory_object_url(client, member_id) for member_id in chunk]},
            }
            for chunk in chunks
        ]
        unsettled = []
        for chunk, result in zip(chunks, client.batch(requests_list)):
            if result.ok:
                added.extend(chunk)
                continue
            error = result.error()
            if result.outcome_unknown or (result.status == 400 and ALREADY_MEMBER_TEXT in (error.message or "")):
                unsettled.extend(chunk)
                last_error = error
            else:
                raise error
        if not unsettled:
            pending = []
            break
        current = set(member["id"].lower() for member in iter_direct_members(client, group_id, select=("id",)))
        present = [member_id for member_id in unsettled if member_id in current]
        already.extend(present)
        # A single reference at a time from the second round on: one bad id cannot block 19 good ones.
        pending = [member_id for member_id in unsettled if member_id not in current]
        if pending:
            requests_single = [
                {"method": "PATCH", "url": "/groups/%s" % group_id, "body": {"members@odata.bind": [directory_object_url(client, member_id)]}}
                for member_id in pending
            ]
            still = []
            for member_id, result in zip(pending, client.batch(requests_single)):
                if result.ok:
                    added.append(member_id)
                else:
                    last_error = result.error()
                    still.append(member_id)
            pending = still
    if pending:
        current = set(member["id"].lower() for member in iter_direct_members(client, group_id, select=("id",)))
        already.extend(member_id for member_id in pending if member_id in current)
        pending = [member_id for member_id in pending if member_id not in current]
    if pending:
        raise GraphError(
            "could not add %d member(s) to group %s (first: %s): %s"
            % (len(pending), group_id, pending[0], last_error.message if last_error else "unknown error"),
            status=last_error.status if last_error else None,
            code=last_error.code if last_error else None,
            request_id=last_error.request_id if last_error else None,
        )
    return {"added": added, "already_members": already}


def remove_members(client, group_id, member_ids):
    """Remove direct members (DELETE members/{id}/$ref through $batch); one already gone counts as removed."""
    group_id = normalize_guid(group_id, "group id", error=LicensingInputError)
    ids = [normalize_guid(member_id, "member id", error=LicensingInputError) for member_id in member_ids]
    results = client.batch([{"method": "DELETE", "url": "/groups/%s/members/%s/$ref" % (group_id, member_id), "idempotent": True} for member_id in ids])
    removed = []
    for member_id, result in zip(ids, results):
        if result.ok or result.status == 404:
            removed.append(member_id)
        else:
            raise result.error()
    return removed


def group_entries(user, group_id):
    """The user's licenseAssignmentStates entries assigned by ``group_id`` (normalised, see licensing.py)."""
    group_id = normalize_guid(group_id, "group id", error=LicensingInputError)
    return [entry for entry in user_assignment_states(user) if entry["group_id"] == group_id]
