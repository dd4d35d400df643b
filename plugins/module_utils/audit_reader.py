# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading the directory audit log within its budget, and the run of the ``license_audit_info`` module.

Every request goes through the client's ``audit_pacer`` (5 requests per 10 s per application and
tenant, graph-api.md 7.3; the client picks it for any ``/auditLogs/`` path) and honours Retry-After.
The filters (audit_log.audit_queries) keep the requests few: one query per activity, limited to the
window, pages of 999. ``max_requests`` bounds the run; a read stopped by it says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.entraops.licensing.plugins.module_utils.audit_log import (
    AuditInputError,
    audit_queries,
    summarise,
    time_window,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.graph_auth import token_claims
from ansible_collections.entraops.licensing.plugins.module_utils.guid import canonical_guid
from ansible_collections.entraops.licensing.plugins.module_utils.journal import JournalReader
from ansible_collections.entraops.licensing.plugins.module_utils.migration_report import iter_assignment_records
from ansible_collections.entraops.licensing.plugins.module_utils.readds import (
    compare_reading,
    direct_keys,
    direct_only_drift,
    inherited_keys,
    earliest_removal,
    name_writers,
    removed_by_journal,
    writers_summary,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError

AUDIT_PATH = "/auditLogs/directoryAudits"
PAGE_SIZE = 999
FORBIDDEN_MESSAGE = (
    "the audit log cannot be read: the application lacks AuditLog.Read.All and Directory.Read.All "
    "(both are needed for /auditLogs/directoryAudits); no audit evidence was gathered"
)


def read_audit_events(client, queries, max_requests):
    """(events, requests sent, complete) for ``queries`` ($filter strings), stopping after ``max_requests`` pages."""
    events, requests = [], 0
    for query in queries:
        for page in client.iter_pages(AUDIT_PATH, params={"$filter": query, "$top": str(PAGE_SIZE)}):
            requests += 1
            events.extend(page.get("value") or [])
            if requests >= max_requests and (page.get("@odata.nextLink") or query is not queries[-1]):
                return events, requests, False
    return events, requests, True


def read_window(client, window, groups, users, max_requests):
    """(events, requests sent, complete) of the license activities in ``window`` for ``groups`` and ``users`` (ids or names;
    None for both reads every target), each filtered server-side when it is a single GUID."""
    everything = groups is None and users is None
    queries = audit_queries(window, _single_guid(groups), _single_guid(users), everything or groups is not None, everything or users is not None)
    return read_audit_events(client, queries, max_requests)


def own_app_ids(params, client):
    """This collection's application ids: the client id used, the token's ``appid``/``azp`` claim, and any given."""
    ids = set(value.lower() for value in params.get("own_app_ids") or [] if value)
    if params.get("client_id"):
        ids.add(params["client_id"].lower())
    else:
        claims = token_claims(client._token_provider.get_token()) or {}  # pylint: disable=protected-access
        for claim in ("appid", "azp"):
            if isinstance(claims.get(claim), str):
                ids.add(claims[claim].lower())
    return sorted(ids)


def _single_guid(values):
    """The list of GUIDs when every value is one (then a single target can be filtered server-side), else None."""
    if values is None:
        return None
    guids = [canonical_guid(value) for value in values]
    return None if any(guid is None for guid in guids) else guids


def _check_params(params):
    for name in ("retention_days", "max_requests"):
        if params[name] < 1:
            raise AuditInputError("%s: got %r, expected a whole number of at least 1" % (name, params[name]))
    for name in ("groups", "users"):
        for value in params.get(name) or []:
            if not str(value).strip():
                raise AuditInputError("%s: got an empty value, expected a GUID or a name" % name)


def file_evidence(params):
    """(re-added, joiners, joiners_total) from journal_path, reading_path and baseline_path; None without reading_path."""
    if not params.get("reading_path"):
        if params.get("journal_path") or params.get("baseline_path"):
            raise AuditInputError("journal_path and baseline_path need reading_path: the fresh reading to compare them with")
        return None
    if not params.get("journal_path"):
        raise AuditInputError("reading_path needs journal_path: the journal that says which direct assignments this migration removed")
    removed = removed_by_journal(JournalReader(params["journal_path"]))
    baseline = direct_keys(iter_assignment_records(params["baseline_path"])) if params.get("baseline_path") else None
    readded, joiners, joiners_total = compare_reading(iter_assignment_records(params["reading_path"]), removed, baseline)
    was_inherited = inherited_keys(iter_assignment_records(params["baseline_path"])) if params.get("baseline_path") else None
    return readded, joiners, joiners_total, direct_only_drift(iter_assignment_records(params["reading_path"]), was_inherited)


def _targets(params, evidence):
    """(groups, users, since) to read: the re-added users and their earliest removal unless given."""
    groups, users, since = params.get("groups"), params.get("users"), params.get("since")
    if evidence is not None:
        readded = evidence[0]
        if users is None and readded:
            users = sorted(set(row["user_id"] for row in readded))
        since = since or earliest_removal(readded)
    elif not since:
        raise AuditInputError("since is required unless reading_path and journal_path are given (then it defaults to the earliest removal that came back)")
    return groups, users, since


def _forbidden(module, window, evidence_result):
    module.warn(FORBIDDEN_MESSAGE)
    module.exit_json(
        changed=False,
        readable=False,
        message=FORBIDDEN_MESSAGE,
        window=window,
        groups=[],
        finish_events=[],
        users=[],
        other_writers=[],
        totals={},
        requests=0,
        **evidence_result,
    )


def _evidence_result(evidence, audit_users):
    if evidence is None:
        return {}
    readded, joiners, joiners_total, drift = evidence
    named = name_writers(readded, audit_users)
    return {
        "readded": named,
        "readded_writers": writers_summary(named),
        "joiners_not_in_plan": joiners,
        "joiners_not_in_plan_total": joiners_total,
        "direct_only_no_group": drift["no_group"],
        "direct_only_no_group_total": drift["no_group_total"],
        "lost_group_kept_direct": drift["lost_group"],
        "lost_group_kept_direct_total": drift["lost_group_total"],
    }


def run_license_audit_info(module, now=None):
    """Run the license_audit_info task of ``module`` (a GraphModule with its options); exits or fails it."""
    params = module.params
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    try:
        _check_params(params)
        evidence = file_evidence(params)
        groups, users, since = _targets(params, evidence)
    except (AuditInputError, RecordsError) as exc:
        module.fail_json(msg=str(exc))
    if evidence is not None and not since and groups is None:
        # nothing came back and no group was asked for: no audit request is needed
        module.exit_json(
            changed=False,
            readable=True,
            window={},
            requests=0,
            groups=[],
            finish_events=[],
            users=[],
            other_writers=[],
            totals={},
            **_evidence_result(evidence, []),
        )
    try:
        window = time_window(since, params["until"], now, params["retention_days"])
    except AuditInputError as exc:
        module.fail_json(msg=str(exc))
    try:
        events, requests, complete = read_window(module.client, window, groups, users, params["max_requests"])
    except GraphError as exc:
        if exc.status == 403 and not params["fail_on_forbidden"]:
            _forbidden(module, window, _evidence_result(evidence, None))
        module.fail_from_graph_error(exc, msg="Cannot read the directory audit log")
    result = summarise(events, groups=groups, users=users, own_app_ids=own_app_ids(params, module.client))
    result.update(_evidence_result(evidence, result["users"]))
    window["read_complete"] = complete
    if not complete:
        module.warn("the audit read stopped after max_requests=%d requests: the evidence is partial" % params["max_requests"])
    if not window["complete"]:
        module.warn(window["message"])
    module.exit_json(changed=False, readable=True, window=window, requests=requests, events_read=len(events), graph=module.graph_statistics(), **result)
