# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""direct_license's run: check the options, gather the rows (a plan, named users or a journal), hand them
to the removal engine with a journal, and report; the rollback script is rewritten beside the journal.

The module holds the options and their documentation and calls ``run_direct_license`` (the pattern of
kubernetes.core's ``module_utils/k8s/runner.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import MembershipIndex, read_tenant, resolve_groups, resolve_skus
from ansible_collections.entraops.licensing.plugins.module_utils.directory import iter_users_by_key, read_sku_catalog
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.journal import (
    Journal,
    JournalReader,
    iter_restorable,
    pending_states,
    restorable,
)
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.plan import (
    check_earlier_batches_journaled,
    check_plan_tenant,
    locked_plan,
    read_removal_rows,
)
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import rollback_script_path, write_rollback_script
from ansible_collections.entraops.licensing.plugins.module_utils.removal import SAMPLE_SIZE, RemovalEngine, max_failures_message, run_diff
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError
from ansible_collections.entraops.licensing.plugins.module_utils.verified_batches import BatchesStopped, VerifiedBatches


def run_direct_license(module):
    """Run the direct_license task of ``module`` (a GraphModule with direct_license's options); exits or fails it."""
    validate(module)
    # The plan's lock (taken in _run) is held until the module exits, the rollback script written.
    with contextlib.ExitStack() as exits:
        _run(module, exits)


def rows_from_users(client, users, sku_ids, catalog, disabled_plans=None):
    """(rows, missing keys): one row per existing user and SKU."""
    rows, missing = [], []
    for key, user in iter_users_by_key(client, users, select=("id", "userPrincipalName")):
        if user is None:
            missing.append(key)
            continue
        for sku_id in sku_ids:
            row = {
                "user_id": user["id"].lower(),
                "user_principal_name": user.get("userPrincipalName"),
                "sku_id": sku_id,
                "sku_part_number": catalog.part_number(sku_id),
                "batch": None,
            }
            if disabled_plans is not None:
                row["disabled_plans"] = sorted(catalog.resolve_plans(sku_id, disabled_plans))
            rows.append(row)
    return rows, missing


def validate(module):
    params = module.params
    if params["state"] == "absent":
        if bool(params["plan_path"]) == bool(params["users"]):
            module.fail_json(msg="state=absent needs either plan_path or users + skus (exactly one of plan_path and users)")
        if params["users"] and not params["skus"]:
            module.fail_json(msg="users needs skus: the SKUs whose direct assignment to remove")
        if params["restore_from"]:
            module.fail_json(msg="restore_from applies to state=present only")
    else:
        sources = [name for name in ("restore_from", "plan_path", "users") if params[name]]
        if len(sources) != 1:
            module.fail_json(
                msg="state=present needs exactly one of restore_from (a journal), plan_path (a plan: put back its rows' direct "
                "assignments) or users + skus (+ disabled_plans); got %s" % (" and ".join(sources) or "none of them")
            )
        if params["users"] and not params["skus"]:
            module.fail_json(msg="users needs skus: the SKUs whose direct assignment to put back")
        if params["plan_path"] and (params["skus"] or params["disabled_plans"]):
            module.fail_json(
                msg="a restore from plan_path puts back each row's SKU with the disabled plans the plan recorded: skus and disabled_plans apply to users only"
            )
        if params["restore_from"] and not params["journal_path"]:
            params["journal_path"] = params["restore_from"]
    if params["batches"] is not None and not params["plan_path"]:
        module.fail_json(msg="batches applies to plan_path only")
    if params["plan_fingerprint"] is not None and not params["plan_path"]:
        module.fail_json(msg="plan_fingerprint applies to plan_path only: it is the fingerprint of the approved plan")
    _validate_verify(module, params)
    if params["max_failures"] < 0:
        module.fail_json(msg="max_failures must be 0 or more, got %d" % params["max_failures"])
    if not module.check_mode and not params["journal_path"]:
        module.fail_json(msg="journal_path is required outside check mode: every removal and restore is journaled first")


def _validate_verify(module, params):
    verify = params.get("verify_batches")
    if verify is None:
        return
    if params["state"] != "absent" or not params["plan_path"]:
        module.fail_json(msg="verify_batches applies to state=absent with plan_path: it checks each batch of a plan on a fresh reading")
    for name, least in (("readd_threshold", 0), ("audit_max_requests", 1)):
        if verify[name] < least:
            module.fail_json(msg="verify_batches.%s: got %r, expected a whole number of at least %d" % (name, verify[name], least))


def _run(module, exits):
    params = module.params
    client = module.client
    journal = None
    journal_started = False
    engine = None
    tenant_guid = None
    missing_users = []
    plan_header = None
    rows = []
    verified = None
    try:
        if params["plan_path"]:
            # Read (and fingerprinted) before any Graph call: a plan that is not the approved one stops here.
            restoring = params["state"] == "present"
            rows, plan_header = read_removal_rows(params["plan_path"], params["batches"], params["plan_fingerprint"], for_restore=restoring)
            for row in rows if restoring else ():
                # A row found in place was never removed (or is back): nothing of it to journal.
                row["journaled"] = False
            if not module.check_mode:
                if not restoring:
                    # Batches after the first need the journal of the earlier ones: never an empty journal in its place.
                    check_earlier_batches_journaled(plan_header, params["batches"], params["journal_path"], params["plan_path"])
                exits.enter_context(locked_plan(params["plan_path"], "restoring from it" if restoring else "removing from it"))
        catalog = read_sku_catalog(client)
        tenant_guid, tenant_country = read_tenant(client)
        sku_ids = resolve_skus(catalog, params["skus"])
        trusted = list(resolve_groups(client, params["trusted_groups"])) if params["trusted_groups"] is not None else None
        if plan_header is not None:
            check_plan_tenant(plan_header, tenant_guid, params["plan_path"])
            if trusted is None and plan_header.get("trusted_groups") is not None:
                # Re-check with the trust the plan was made with, never with less.
                trusted = [group_id.lower() for group_id in plan_header["trusted_groups"]]
        else:
            rows, missing_users = _rows_without_plan(params, client, sku_ids, catalog)
        index = MembershipIndex(client).load_licensed_groups()
        if not module.check_mode:
            journal_started = not os.path.exists(params["journal_path"])
            journal = Journal(params["journal_path"], run_meta=_run_meta(params, plan_header))
        engine = RemovalEngine(
            client,
            catalog,
            journal=journal,
            trusted_groups=trusted,
            allow_service_loss=params["allow_service_loss"],
            max_failures=params["max_failures"],
            check_mode=module.check_mode,
            transitive_of=index.transitive_of,
            keep_all=module.check_mode or module.diff_mode,
            licensed_group_ids=list(index.groups),
            restore_usage_location=tenant_country if params["restore_usage_location"] == "tenant" else None,
        )
        engine.skip_users_not_found(missing_users)
        if params["journal_path"] and os.path.exists(params["journal_path"]):
            # Settle (and journal) what a killed run left in flight before acting on anything.
            engine.reconcile_pending(pending_states(JournalReader(params["journal_path"])))
        if params["state"] == "absent" and params.get("verify_batches") is not None:
            verified = VerifiedBatches(
                client,
                catalog,
                engine,
                params["verify_batches"],
                _reading_skus(catalog, params, plan_header),
                trusted,
                params["journal_path"],
                plan_header["content_fingerprint"],
                module.check_mode,
                own_app_ids=[params["client_id"]] if params.get("client_id") else (),
                warn=module.warn,
            )
            try:
                verified.run(rows, sorted(plan_header["batch_counts"]) if params["batches"] is None else sorted(set(params["batches"])))
            except BatchesStopped as exc:
                verified.stop = str(exc)
        elif params["state"] == "absent":
            engine.remove(rows)
        else:
            engine.restore(rows)
        rows = None  # a row per removal: let the rollback script (built below from the journal) reuse that memory
    except (LicensingInputError, RecordsError) as exc:
        _close(journal)
        module.fail_json(msg=str(exc), **_partial(engine, params, verified))
    except GraphError as exc:
        _close(journal)
        script = _write_script(module, params, tenant_guid)
        module.fail_from_graph_error(exc, msg="Stopped: a Graph read or write failed", rollback_script_path=script, **_partial(engine, params, verified))
    _close(journal)
    script = _write_script(module, params, tenant_guid) if journal is not None else None
    if journal_started and plan_header is not None:
        _warn_unjournaled(module, params, engine.result())
    _exit(module, params, engine.result(), plan_header, script, verified)


def _reading_skus(catalog, params, plan_header):
    """The SKU ids each verifying reading covers: verify_batches.skus, else the SKUs of the plan's scope."""
    given = params["verify_batches"].get("skus")
    if given:
        return resolve_skus(catalog, given)
    planned = ((plan_header or {}).get("scope") or {}).get("skus")
    if not planned:
        raise LicensingInputError(
            "verify_batches.skus is needed: plan %s was not made for a list of SKUs, so the readings that verify its batches cannot take theirs from it"
            % params["plan_path"]
        )
    return resolve_skus(catalog, planned)


def _warn_unjournaled(module, params, result):
    """A removal run that started its journal found rows of the plan already migrated: say where their removals are not."""
    done = result["skipped_by_verdict"].get("inherited_only", 0)
    if params["state"] == "absent" and done:
        module.warn(
            "journal %s was started by this run, but %d row(s) of the plan were already migrated (found inherited only): their "
            "removals are in no journal at this path. If an earlier journal of this plan is lost, restore them from the plan "
            "(state=present with plan_path)" % (params["journal_path"], done)
        )


def _rows_without_plan(params, client, sku_ids, catalog):
    """(rows, missing user keys) of a run without a plan: named users and SKUs, or a journal to restore."""
    if params["state"] == "absent":
        return rows_from_users(client, params["users"], sku_ids, catalog)
    if params["restore_from"]:
        return restorable(JournalReader(params["restore_from"])), []
    return rows_from_users(client, params["users"], sku_ids, catalog, disabled_plans=params["disabled_plans"])


def _exit(module, params, result, plan_header, script, verified=None):
    """Exit (or fail, past max_failures or at a verified batch's stop) with the run's result."""
    sample = None if module.check_mode else SAMPLE_SIZE  # check mode names every row: the change record's list
    output = dict(
        changed=bool(result["removed_total"] or result["restored_total"]),
        removed=result["removed"][:sample],
        removed_total=result["removed_total"],
        restored=result["restored"][:sample],
        restored_total=result["restored_total"],
        skipped_by_verdict=result["skipped_by_verdict"],
        skipped_sample=result["skipped_sample"],
        failures=result["failures"],
        reconciled=result["reconciled"],
        stopped=result["stopped"],
        journal_path=os.path.abspath(params["journal_path"]) if params["journal_path"] else None,
        rollback_script_path=script,
    )
    if plan_header is not None:
        output["plan_fingerprint"] = plan_header["content_fingerprint"]
    if module.diff_mode:
        output["diff"] = run_diff(result["removed"], result["restored"])
    if verified is not None:
        output.update(_verified_output(verified))
        if verified.stop:
            module.fail_json(msg=verified.stop, **output)
    if result["stopped"]:
        module.fail_json(msg=max_failures_message(result["failures"], params["max_failures"]), **output)
    if result["failures"]:
        module.warn("%d row(s) failed (within max_failures=%d); see failures" % (len(result["failures"]), params["max_failures"]))
    module.exit_json(**output)


def _run_meta(params, plan_header):
    """What the journal's run line says of the plan this run executes."""
    if plan_header is None:
        return None
    return {"plan_path": os.path.abspath(params["plan_path"]), "plan_fingerprint": plan_header["content_fingerprint"]}


def _close(journal):
    if journal is not None:
        journal.close()


def _verified_output(verified):
    return dict(batch_results=verified.records, reading_before=verified.reading_before, readings=verified.readings)


def _partial(engine, params, verified=None):
    if engine is None:
        return {}
    result = engine.result()
    return dict(
        _verified_output(verified) if verified is not None else {},
        removed=result["removed"][:SAMPLE_SIZE],
        removed_total=result["removed_total"],
        restored=result["restored"][:SAMPLE_SIZE],
        failures=result["failures"],
        journal_path=params.get("journal_path"),
    )


def _write_script(module, params, tenant_guid):
    """(Re)write the PowerShell rollback script beside the journal from everything still restorable."""
    if module.check_mode or not params.get("journal_path") or not os.path.exists(params["journal_path"]):
        return None
    try:
        # Streamed: the journal is read one line at a time and the script written one row at a time.
        total, rows = iter_restorable(JournalReader(params["journal_path"]))
        written = write_rollback_script(rows, rollback_script_path(os.path.abspath(params["journal_path"])), tenant_id=tenant_guid, total=total)
    except RecordsError as exc:
        module.warn("could not write the rollback script: %s" % exc)
        return None
    return written["path"]
