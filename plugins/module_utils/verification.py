# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""license_assignment_info's run: classify the scope once, as a stream, and from that one pass count,
sample, write the report and the plan, and compare the legacy automation's export (expected state).

The module holds the options and their documentation and calls ``run_license_assignment_info``
(the pattern of kubernetes.core's ``module_utils/k8s/runner.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import os
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import (
    InBackground,
    MembershipIndex,
    iter_records,
    read_tenant_id,
    resolve_groups,
    resolve_skus,
)
from ansible_collections.entraops.licensing.plugins.module_utils.directory import iter_users_by_key, read_sku_catalog
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    VERDICTS,
    LicensingInputError,
    user_not_found_record,
)
from ansible_collections.entraops.licensing.plugins.module_utils.plan import PlanBuilder, existing_plan, kept_plan_conflicts, locked_plan
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import (
    EXPECTED_STATUSES,
    ExportFormatError,
    PlannedRowText,
    compare_expected,
    planned_script_path,
    read_export_file,
    resolve_export,
    write_planned_script_parts,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError, write_report

EXPECTED_COLUMNS = ("expected_state", "expected_plans_missing")
WITHOUT_LOCATION_SAMPLE = 20
# Records between two gc.freeze() calls (see Collector.watch).
FREEZE_EVERY = 5000


class Collector:
    """Watches the record stream once: counts, sample, plan candidates, and (for a query) everything."""

    def __init__(self, sample_size, keep_all, plan=None):
        self.summary = dict((verdict, 0) for verdict in VERDICTS)
        # Users without usage location: group licensing falls back to the tenant's country, a direct assignment
        # (a rollback) cannot. Ids only, to count each user once however many SKUs they hold.
        self.without_location = set()
        self.without_location_sample = []
        self.sample = []
        self.total = 0
        self.sample_size = sample_size
        self.all_records = [] if keep_all else None
        self.plan = plan
        self.sources = {}  # group id -> records inherited from it

    def watch(self, records):
        for record in records:
            self.total += 1
            if self.total % FREEZE_EVERY == 0:
                # What is alive now (membership index, plan rows, sample) lives until the end: keep it out of
                # the cyclic GC, whose full passes otherwise walk it again and again as pages are parsed
                # (at 50,000 users about an eighth of this module's CPU). Objects are still freed by
                # reference counting; only cyclic garbage alive at this moment would stay (a read makes ~1,000
                # such objects in a whole 50,000-user run).
                gc.freeze()
            self.summary[record["verdict"]] = self.summary.get(record["verdict"], 0) + 1
            for group_id in record.get("inherited_from") or ():
                self.sources[group_id] = self.sources.get(group_id, 0) + 1
            if record.get("user_id") and not record.get("usage_location") and record["user_id"] not in self.without_location:
                self.without_location.add(record["user_id"])
                if len(self.without_location_sample) < WITHOUT_LOCATION_SAMPLE:
                    self.without_location_sample.append(record.get("user_principal_name") or record["user_id"])
            if len(self.sample) < self.sample_size:
                self.sample.append(record)
            if self.all_records is not None:
                self.all_records.append(record)
            if self.plan is not None:
                # Each safe row is validated and encoded now, while the next pages are on their way: after
                # the last page only sorting and writing are left (plan.PlanBuilder).
                self.plan.add(record)
            yield record


class ExpectedStateCheck:
    """Compares the legacy export with the users' healthy inherited copies; annotates records; keeps counts and a gap sample."""

    def __init__(self, parsed, expected, sample_size):
        self.parsed = parsed
        self.by_key = {}
        for entry in expected:
            self.by_key.setdefault(entry["user_key"], []).append(entry)
        self.counts = dict((status, 0) for status in EXPECTED_STATUSES)
        self.gaps = []
        self.gaps_total = 0
        self.sample_size = sample_size
        self.results = {}
        self.assignments = len(expected)

    def _count(self, result):
        self.counts[result["expected_state"]] += 1
        if result["user_id"]:
            self.results[(result["user_id"], result["sku_id"])] = result
        if result["expected_state"] != "reproduced":
            self.gaps_total += 1
            if len(self.gaps) < self.sample_size:
                self.gaps.append(result)

    def annotate(self, record):
        result = self.results.get((record.get("user_id"), record.get("sku_id")))
        record["expected_state"] = result["expected_state"] if result else None
        record["expected_plans_missing"] = list(result["plans_missing"]) if result else []
        return record

    def records(self, client, catalog, index, trusted_groups):
        """Classify the file's users (all SKUs they hold), compare, and yield their annotated records."""
        seen = set()
        for key, user in iter_users_by_key(client, list(self.by_key)):
            records = index.classify(user, catalog, trusted_groups) if user is not None else []
            for result in compare_expected(self.by_key[key], user, records, catalog):
                self._count(result)
            if user is None:
                yield dict(user_not_found_record(key), expected_state="user_not_found", expected_plans_missing=[])
                continue
            if user["id"].lower() in seen:
                continue  # named twice in the file (by id and by UPN)
            seen.add(user["id"].lower())
            for record in records:
                yield self.annotate(record)

    def result(self):
        result = dict(
            path=self.parsed["path"],
            format=self.parsed["format"],
            encoding=self.parsed["encoding"],
            delimiter=self.parsed["delimiter"],
            assignments=self.assignments,
            users=len(self.by_key),
            gaps_total=self.gaps_total,
            gaps=self.gaps,
        )
        result.update(self.counts)
        return result


def read_expected(module, params):
    """The parsed export, read before any Graph call so a bad file fails first."""
    if not params["expected_state_path"]:
        return None
    try:
        return read_export_file(params["expected_state_path"])
    except ExportFormatError as exc:
        module.fail_json(msg=str(exc))


def run_license_assignment_info(module):
    """Run the license_assignment_info task of ``module`` (a GraphModule with its options); exits or fails it."""
    params = module.params
    query = _checked_query(module, params)
    parsed_expected = read_expected(module, params)
    previous = kept = None
    if params["plan_path"]:
        try:
            # Read before any Graph call: a file there that is not a plan fails first (unless a new plan is asked for),
            # and a plan there is kept.
            previous = existing_plan(params["plan_path"], replacing=params["replace_plan"])
        except RecordsError as exc:
            module.fail_json(msg=str(exc))
        kept = None if params["replace_plan"] else previous
    try:
        run = _read_scope(module, params, parsed_expected, kept, keep_all=query is not None)
    except (LicensingInputError, RecordsError, ExportFormatError) as exc:
        module.fail_json(msg=str(exc))
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot read the license assignments")
    collector, check, report = run["collector"], run["check"], run["report"]
    result = dict(
        changed=False,
        summary=collector.summary,
        records=collector.sample,
        records_total=collector.total,
        users_without_usage_location=len(collector.without_location),
        users_without_usage_location_sample=collector.without_location_sample,
        report_path=report["path"] if report else None,
        plan_path=None,
        planned_script_path=None,
        batches=0,
        inherited_sources=inherited_sources(collector.sources, run["index"]),
    )
    if check is not None:
        result["expected_state"] = check.result()
    if kept is not None:
        result.update(_kept_plan_result(module, params["plan_path"], kept, dict(run["settings"], tenant_id=run["tenant_id"])))
    elif params["plan_path"]:
        result.update(_written_plan_result(module, params["plan_path"], run, previous))
    if query is not None:
        result["query_result"] = query.search(collector.all_records)
    module.exit_json(**result)


def _checked_query(module, params):
    """The compiled ``query`` (or None), after the size options are checked; fails the task on bad values."""
    if params["query"] and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)
    if params["canary_size"] < 0 or params["batch_size"] < 1 or params["sample_size"] < 0:
        module.fail_json(
            msg="canary_size must be >= 0, batch_size >= 1 and sample_size >= 0; got %s, %s and %s"
            % (params["canary_size"], params["batch_size"], params["sample_size"])
        )
    if not params["query"]:
        return None
    try:
        return jmespath.compile(params["query"])
    except jmespath.exceptions.JMESPathError as exc:
        module.fail_json(msg="query %r is not a valid JMESPath expression: %s" % (params["query"], exc))


def _read_scope(module, params, parsed_expected, kept, keep_all):
    """Read and classify the scope once, as a stream: counts, sample, report, and the new plan's rows (unless one is kept)."""
    client = module.client
    catalog = read_sku_catalog(client)
    check = None
    if parsed_expected is not None:
        check = ExpectedStateCheck(parsed_expected, resolve_export(parsed_expected, catalog), params["sample_size"])
    sku_ids = resolve_skus(catalog, params["skus"])
    group_ids = list(resolve_groups(client, params["groups"])) if params["groups"] else None
    trusted = list(resolve_groups(client, params["trusted_groups"])) if params["trusted_groups"] is not None else None
    # The licensed groups' member lists are read in the background while the tenant id and the
    # first pages of users are read; classification waits for them (MembershipIndex.classify).
    index = MembershipIndex(client).start_loading()
    tenant_read = InBackground(read_tenant_id, client)  # the plan records it; nothing waits for it
    plan = None
    settings = _plan_settings(params, group_ids, sku_ids, trusted)
    if kept is not None:
        _fail_on_conflicts(module, params["plan_path"], kept, settings)
    elif params["plan_path"]:
        plan = PlanBuilder(params["canary_size"], params["batch_size"], companion=PlannedRowText(plan_names(catalog), ids_checked=True))
    collector = Collector(params["sample_size"], keep_all=keep_all, plan=plan)
    records = collector.watch(_scope_records(params, client, catalog, index, check, group_ids, sku_ids, trusted))
    report = None
    if params["report_path"]:
        report = write_report(
            params["report_path"],
            records,
            report_format=params["report_format"],
            plan_name_lookup=plan_names(catalog),
            extra_columns=EXPECTED_COLUMNS if check else (),
        )
    else:
        for dummy in records:
            pass
    index.wait()  # a failed member read fails the task even when no user was classified
    return {"collector": collector, "check": check, "report": report, "plan": plan, "settings": settings, "tenant_id": tenant_read.result(), "index": index}


def inherited_sources(sources, index):
    """``[{'id', 'display_name', 'kind', 'records'}]`` of every group records inherit from, most records first.

    Members of a dynamic group are direct members (Graph lists them under ``members``), so the rule treats them so;
    a synced group's members are as Entra Connect last synced them.
    """
    listed = []
    for group_id, count in sorted(sources.items(), key=lambda item: (-item[1], item[0])):
        facts = index.groups.get(group_id)
        listed.append({"id": group_id, "display_name": facts.display_name if facts else None, "kind": index.kinds.get(group_id), "records": count})
    return listed


def _written_plan_result(module, path, run, previous):
    """Write the new plan and its planned-removals script; the result keys that describe them."""
    plan, tenant_guid = run["plan"], run["tenant_id"]
    try:
        with locked_plan(path, "writing a new plan over it"):
            written = plan.write(path, meta=dict(run["settings"], tenant_id=tenant_guid, scope_summary=run["collector"].summary))
            script = write_planned_script_parts(
                plan.companions(), written["batch_sizes"], written["path"], tenant_id=tenant_guid, fingerprint=written["fingerprint"]
            )
    except (RecordsError, LicensingInputError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(
        plan_path=written["path"],
        planned_script_path=script["path"],
        batches=written["batches"],
        plan_kept=False,
        batch_sizes=dict((str(batch), count) for batch, count in written["batch_sizes"].items()),
        plan_fingerprint=written["fingerprint"],
    )
    if previous is not None:
        result["previous_plan_fingerprint"] = previous["content_fingerprint"]
    return result


def _scope_records(params, client, catalog, index, check, group_ids, sku_ids, trusted):
    """The record stream: the named scope (annotated when a legacy export is compared), else the export's users."""
    if not (params["users"] or group_ids or sku_ids):
        return check.records(client, catalog, index, trusted)
    if check is not None:
        for dummy in check.records(client, catalog, index, trusted):
            pass  # compare first, so the scope's records can carry the outcome
    records = iter_records(client, catalog, index, users=params["users"], group_ids=group_ids, sku_ids=sku_ids, trusted_groups=trusted)
    return (check.annotate(record) for record in records) if check is not None else records


def _plan_settings(params, group_ids, sku_ids, trusted):
    """What a plan records of the task that wrote it, and what a kept plan must share with the task keeping it."""
    scope = {
        "users": sorted(params["users"]) if params["users"] else None,
        "groups": sorted(group_ids) if group_ids else None,
        "skus": sorted(sku_ids) if sku_ids else None,
    }
    if not (params["users"] or group_ids or sku_ids):
        scope["expected_state_path"] = os.path.abspath(params["expected_state_path"])
    return {"trusted_groups": trusted, "canary_size": params["canary_size"], "batch_size": params["batch_size"], "scope": scope}


def _fail_on_conflicts(module, path, kept, settings):
    conflicts = kept_plan_conflicts(kept, settings)
    if conflicts:
        module.fail_json(
            msg="plan %s exists and was made with other settings than this task asks for (%s). Run with the plan's "
            "settings to keep it, or set replace_plan to write a new plan (its batches, and so its approval, change)." % (path, "; ".join(conflicts))
        )


def _kept_plan_result(module, path, kept, settings):
    """The result keys of a kept plan; the tenant is compared now that it is read."""
    _fail_on_conflicts(module, path, kept, settings)
    recorded, content = kept.get("fingerprint"), kept["content_fingerprint"]
    if recorded and recorded != content:
        module.warn("plan %s was edited after it was written: its content has fingerprint %s, it was written with %s" % (path, content, recorded))
    script_path = planned_script_path(os.path.abspath(path))
    return {
        "plan_path": os.path.abspath(path),
        "plan_kept": True,
        "plan_fingerprint": content,
        "batches": kept["batches"],
        "batch_sizes": dict((str(batch), count) for batch, count in kept["batch_counts"].items()),
        "planned_script_path": script_path if os.path.exists(script_path) else None,
    }


def plan_names(catalog):
    """``{plan id: name}`` across the tenant's SKUs, for the report."""
    names = {}
    for sku_id in catalog.sku_ids():
        for plan_id, (name, dummy) in catalog.get(sku_id)["plans"].items():
            names[plan_id] = name
    return names
