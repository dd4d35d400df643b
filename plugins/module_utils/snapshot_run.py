# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""tenant_snapshot's run: read the tenant through GraphClient and stream the tenant file (snapshot.py shapes it).

Reads, in order: GET /organization, GET /subscribedSkus, the groups (one paged listing with $select), the direct
members of the groups in the snapshot (first page of each through $batch, further pages by nextLink), then the
users in one paged pass over /users (or one filtered pass per chosen SKU), each written to the file as it
arrives. Nothing is written to Graph.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import os

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError, SkuCatalog
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import group_kind
from ansible_collections.entraops.licensing.plugins.module_utils.snapshot import (
    GROUP_SELECT,
    GROUP_TYPE,
    MISSING_MEMBERS_BY_BATCH,
    PAGE_SIZE,
    USER_SELECT,
    USER_TYPE,
    NullWriter,
    PrivateJsonWriter,
    Pseudonymizer,
    SnapshotInputError,
    dumps,
    group_document,
    holds_licensing,
    is_object_id,
    known_rules,
    load_key,
    rule_attributes,
    rules_testing_pseudonyms,
    sku_document,
    user_document,
)

BATCH_READ_CHUNK = 200
MEMBER_BATCH_CHUNK = 20  # one $batch envelope of first member pages (up to 999 members each) at a time


def run_tenant_snapshot(module):
    """Run the tenant_snapshot task of ``module`` (a GraphModule); exits or fails it."""
    params = module.params
    try:
        key = load_key(params["pseudonym_key"], params["pseudonym_key_path"]) if params["pseudonymize"] else None
        if params["mapping_path"] and key is None:
            raise SnapshotInputError("mapping_path is set but pseudonymize is false: there are no pseudonyms to map back")
        result = take_snapshot(
            module.client,
            path=params["path"],
            key=key,
            skus=params["skus"],
            groups=params["groups"],
            all_users=params["all_users"],
            remap_ids=params["remap_ids"],
            mapping_path=params["mapping_path"],
            check_mode=module.check_mode,
        )
    except SnapshotInputError as exc:
        module.fail_json(msg=str(exc))
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot read the tenant for the snapshot")
    for group, attribute in result.pop("rules_testing_pseudonyms"):
        module.warn(
            "the membership rule of group %r tests %s, which the snapshot replaces by pseudonyms: in the rehearsal that rule "
            "selects other users than in the tenant (memberships are copied as they are)" % (group, attribute)
        )
    result["changed"] = not module.check_mode
    result["graph_requests"] = module.graph_statistics()
    module.exit_json(**result)


def take_snapshot(client, path, key=None, skus=None, groups=None, all_users=False, remap_ids=False, mapping_path=None, check_mode=False):
    """Read the tenant and write the snapshot to ``path`` (and the mapping to ``mapping_path``); returns the counts."""
    for option, value in (("path", path), ("mapping_path", mapping_path)):
        if value and not os.path.isdir(os.path.dirname(os.path.abspath(value))):
            raise SnapshotInputError("%s %r is not in an existing directory: expected a path whose folder exists" % (option, value))
    if mapping_path and os.path.abspath(mapping_path) == os.path.abspath(path):
        raise SnapshotInputError("mapping_path %r is the snapshot's path: expected a separate file (the mapping stays with the operator)" % mapping_path)
    for value in list(groups or []) + list(skus or []):
        if not value or not value.strip():
            raise SnapshotInputError("%r names no group or SKU: expected a display name, part number or object id" % (value,))
    snapshot = _Snapshot(client, key, remap_ids, all_users)
    snapshot.prepare(skus, groups)
    writer_class = NullWriter if check_mode else PrivateJsonWriter
    writer = writer_class(path)
    mapping = writer_class(mapping_path) if mapping_path else None
    try:
        snapshot.write(writer, mapping)
        writer.commit()
        if mapping is not None:
            mapping.commit()
    except BaseException:
        writer.abort()
        if mapping is not None:
            mapping.abort()
        raise
    return snapshot.result(writer, mapping)


class _MappingSink:
    """Streams pseudonym -> original pairs into the mapping file as one JSON object."""

    def __init__(self, writer):
        self.writer = writer
        self.count = 0
        writer.write('{"pseudonyms":{')

    def __call__(self, pseudonym, original):
        self.writer.write("%s%s:%s" % ("," if self.count else "", dumps(pseudonym), dumps(original)))
        self.count += 1

    def close(self):
        self.writer.write("}}\n")


class _Snapshot:
    def __init__(self, client, key, remap_ids, all_users):
        self.client = client
        self.key = key
        self.remap_ids = remap_ids
        self.all_users = all_users
        self.organization = {}
        self.skus = []
        self.sku_ids = None
        self.groups = {}  # id -> Graph group, for the groups in the snapshot
        self.group_order = []
        self.named = set()
        # group id -> [member id], users and groups in Graph's order. One string object per user member id, the key
        # and value of member_users, also in exported (members written to the file): at 100,000 members the ids are
        # what memory holds, once each.
        self.members = {}
        self.member_users = {}
        self.exported = set()
        self.consumers = {}
        self.counts = {"users": 0, "groups": 0, "skus": 0, "members_left_out": 0, "other_members": 0}
        self.kinds = {"cloud": 0, "dynamic": 0, "synced": 0}

    # ------------------------------------------------------------------------------ reading

    def prepare(self, skus, groups):
        """Everything but the users: organization, SKUs, groups and their members. Fails on unknown names first."""
        organizations = list(self.client.get_all("/organization", params={"$select": "id,displayName,countryLetterCode,verifiedDomains"}))
        self.organization = organizations[0] if organizations else {}
        self.skus = list(self.client.get_all("/subscribedSkus"))
        if skus:
            catalog = SkuCatalog.from_subscribed_skus(self.skus)
            try:
                self.sku_ids = set(catalog.resolve_sku(value) for value in skus)
            except LicensingInputError as exc:
                raise SnapshotInputError("skus: %s" % exc)
        self._read_groups(groups or [])
        self._read_members()

    def _read_groups(self, named):
        wanted_names = dict((value.strip().lower(), value) for value in named if not is_object_id(value.strip()))
        wanted_ids = dict((value.strip().lower(), value) for value in named if is_object_id(value.strip()))
        found = {}
        for group in self.client.get_all("/groups", params={"$select": ",".join(GROUP_SELECT), "$top": PAGE_SIZE}):
            group_id = group["id"].lower()
            name = (group.get("displayName") or "").lower()
            hit = wanted_ids.get(group_id) or wanted_names.get(name)
            if hit is not None:
                if name in wanted_names and wanted_names[name] in found and found[wanted_names[name]] != group_id:
                    raise SnapshotInputError(
                        "groups: %r names more than one group (%s, %s): expected one; name it by its object id" % (hit, found[wanted_names[name]], group_id)
                    )
                found[hit] = group_id
                if name in wanted_names and hit == wanted_names[name]:
                    # Named by display name: the migration's variables use that name, so it is kept.
                    self.named.add(group_id)
            if hit is not None or group.get("assignedLicenses"):
                self._add_group(group)
        missing = [value for value in named if value not in found]
        if missing:
            raise SnapshotInputError("groups: %s name no group of the tenant: expected display names or object ids" % ", ".join(repr(v) for v in missing))

    def _add_group(self, group):
        group_id = group["id"].lower()
        if group_id not in self.groups:
            self.groups[group_id] = group
            self.group_order.append(group_id)

    def _read_members(self):
        """Direct members of every group in the snapshot; nested groups join the snapshot with their members."""
        pending = list(self.group_order)
        while pending:
            nested, nested_seen = [], set()
            for group_id, members in self._member_listings(pending):
                refs = []
                for member in members:
                    kind = (member.get("@odata.type") or "").lower()
                    member_id = member["id"].lower()
                    if kind == USER_TYPE:
                        member_id = self._shared_id(member_id)
                        refs.append(member_id)
                    elif kind == GROUP_TYPE:
                        refs.append(member_id)
                        if member_id not in self.groups and member_id not in nested_seen:
                            nested_seen.add(member_id)
                            nested.append(member_id)
                    else:
                        self.counts["other_members"] += 1
                self.members[group_id] = refs
            pending = self._read_nested_groups(nested)

    def _shared_id(self, member_id):
        """The one string object of this user member's id (a user in two groups is held once)."""
        return self.member_users.setdefault(member_id, member_id)

    def _member_listings(self, group_ids):
        """``(group id, members)`` for each group: the first pages through $batch (one envelope of 20 at a time), the rest
        by nextLink as the members are consumed, so at most 20 first pages and one further page are held."""
        for offset in range(0, len(group_ids), MEMBER_BATCH_CHUNK):
            chunk = group_ids[offset : offset + MEMBER_BATCH_CHUNK]
            requests_list = [{"method": "GET", "url": "/groups/%s/members?$select=id&$top=%d" % (group_id, PAGE_SIZE)} for group_id in chunk]
            for group_id, result in zip(chunk, self.client.batch(requests_list)):
                if not result.ok:
                    raise result.error()
                next_link = result.body.get("@odata.nextLink")
                yield group_id, itertools.chain(result.body.get("value") or [], self.client.get_all(next_link) if next_link else ())

    def _read_nested_groups(self, group_ids):
        added = []
        for offset in range(0, len(group_ids), BATCH_READ_CHUNK):
            chunk = group_ids[offset : offset + BATCH_READ_CHUNK]
            requests_list = [{"method": "GET", "url": "/groups/%s?$select=%s" % (group_id, ",".join(GROUP_SELECT))} for group_id in chunk]
            for group_id, result in zip(chunk, self.client.batch(requests_list)):
                if result.status == 404:
                    continue
                if not result.ok:
                    raise result.error()
                self._add_group(result.body)
                added.append(group_id)
        return added

    def _iter_users(self):
        """Every user the snapshot holds, once: holders of the chosen SKUs (or of any license, or everyone) and
        the user members of its groups."""
        params = {"$select": ",".join(USER_SELECT), "$top": PAGE_SIZE}
        if self.sku_ids is None or self.all_users:
            for user in self.client.get_all("/users", params=params, prefetch=True):
                user_id = user["id"].lower()
                if self.all_users or user_id in self.member_users or holds_licensing(user, self.sku_ids):
                    yield user
            return
        seen = set()
        for sku_id in sorted(self.sku_ids):
            filtered = dict(params, **{"$filter": "assignedLicenses/any(x:x/skuId eq %s)" % normalize_guid(sku_id, "SKU id")})
            for user in self.client.get_all("/users", params=filtered, prefetch=True):
                if user["id"].lower() not in seen:
                    seen.add(user["id"].lower())
                    yield user
        missing = [user_id for user_id in self.member_users if user_id not in seen]
        if len(missing) > MISSING_MEMBERS_BY_BATCH:
            wanted = set(missing)
            for user in self.client.get_all("/users", params=params, prefetch=True):
                if user["id"].lower() in wanted:
                    yield user
            return
        for offset in range(0, len(missing), BATCH_READ_CHUNK):
            chunk = missing[offset : offset + BATCH_READ_CHUNK]
            requests_list = [{"method": "GET", "url": "/users/%s?$select=%s" % (user_id, ",".join(USER_SELECT))} for user_id in chunk]
            for result in self.client.batch(requests_list):
                if result.ok:
                    yield result.body
                elif result.status != 404:
                    raise result.error()

    # ------------------------------------------------------------------------------ writing

    def write(self, writer, mapping):
        sink = _MappingSink(mapping) if mapping is not None else None
        pseudonyms = Pseudonymizer(self.key, remap_ids=self.remap_ids, sink=sink)
        organization = self.organization
        domains = organization.get("verifiedDomains") or []
        default_domain = next((d.get("name") for d in domains if d.get("isDefault")), None) or (
            domains[0].get("name") if domains else "contoso.onmicrosoft.com"
        )
        tenant = {
            "id": pseudonyms.object_id((organization.get("id") or "").lower()) or "00000000-0000-4000-8000-000000000000",
            "displayName": organization.get("displayName") or "Tenant",
            "defaultDomain": default_domain,
            "countryLetterCode": organization.get("countryLetterCode") or "US",
        }
        if pseudonyms.enabled:
            tenant["defaultDomain"] = pseudonyms.domain(default_domain)
            tenant["displayName"] = "Tenant %s" % pseudonyms.token("tenant", tenant["id"])[:8]
        pseudonyms.set_domain(tenant["defaultDomain"])
        kept = rule_attributes(group.get("membershipRule") for group in self.groups.values()) if pseudonyms.enabled else set()
        writer.write('{"tenant":%s,"users":[' % dumps(tenant))
        group_ids = set(self.groups)
        for user in self._iter_users():
            doc = user_document(user, pseudonyms, group_ids, kept)
            writer.write("%s%s" % ("," if self.counts["users"] else "", dumps(doc)))
            self.counts["users"] += 1
            user_id = user["id"].lower()
            shared = self.member_users.get(user_id)
            if shared is not None:
                # Only group members are looked up again (to write the groups): memory holds ids of members, not of everyone.
                self.exported.add(shared)
            for license_ in user.get("assignedLicenses") or []:
                sku_id = (license_.get("skuId") or "").lower()
                self.consumers[sku_id] = self.consumers.get(sku_id, 0) + 1
        writer.write('],"groups":[')
        for index, group_id in enumerate(self.group_order):
            writer.write("%s%s" % ("," if index else "", dumps(self._group_document(group_id, pseudonyms))))
        skus = [sku_document(sku, self.consumers.get((sku.get("skuId") or "").lower(), 0)) for sku in self.skus]
        self.counts["skus"] = len(skus)
        self.counts["groups"] = len(self.group_order)
        writer.write('],"subscribedSkus":%s,"rules":%s,"processing":{"groupLicenses":"processed"}}\n' % (dumps(skus), dumps(known_rules(skus))))
        if sink is not None:
            sink.close()

    def _group_document(self, group_id, pseudonyms):
        members = []
        for member_id in self.members.get(group_id, []):
            if member_id in self.exported or member_id in self.groups:
                members.append(pseudonyms.object_id(member_id))
            else:
                self.counts["members_left_out"] += 1
        group = self.groups[group_id]
        self.kinds[group_kind(group)] += 1
        return group_document(group, members, pseudonyms, keep_name=group_id in self.named)

    def result(self, writer, mapping):
        return {
            "path": writer.path,
            "mapping_path": mapping.path if mapping is not None else None,
            "pseudonymized": self.key is not None,
            "ids_remapped": bool(self.remap_ids and self.key is not None),
            "users": self.counts["users"],
            "groups": self.counts["groups"],
            "group_kinds": dict(self.kinds),
            "skus": self.counts["skus"],
            "members_left_out": self.counts["members_left_out"],
            "other_members": self.counts["other_members"],
            "bytes": writer.size,
            "rules_testing_pseudonyms": rules_testing_pseudonyms(self.groups.values()) if self.key is not None else [],
        }
