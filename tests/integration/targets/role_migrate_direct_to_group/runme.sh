#!/usr/bin/env bash
# The role phase by phase against the Graph emulator: dry run, groups, licenses, verify, canary,
# an interrupted batch and its resumption, the rest, the report, then the rollback playbook; every
# change window relaunched once (as AWX relaunches a job) sends no further write.
set -eux

# shellcheck source=../setup_emulator/emulator.sh
source ../setup_emulator/emulator.sh
"$PYTHON" build_tenant.py "$WORK/tenant.json"
start_emulator --tenant "$WORK/tenant.json"

# One inventory host per tenant, its connection in host variables (as an operator's inventory would have it).
"$PYTHON" - "$INFO" "$WORK/inventory.yml" "$PYTHON" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
host = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.argv[3],
        'entra_tenant_id': info['tenant_id'], 'entra_client_id': info['client_id'], 'entra_client_secret': info['client_secret'],
        'entra_graph_url': info['base_url'], 'entra_authority_url': info['base_url'], 'entra_ca_bundle': info['ca_path']}
json.dump({'tenants': {'hosts': {'contoso': host}}}, open(sys.argv[2], 'w'))
PY

OUT="$WORK/out"
migrate() {
    ansible-playbook -i "$WORK/inventory.yml" entraops.licensing.migrate -e @vars.yml \
        -e "migrate_direct_to_group_output_dir=$OUT" "$@"
}
# The emulator's control API (faults), without a playbook run.
control() {
    "$PYTHON" - "$INFO" "$1" "$2" "${3:-}" <<'PY'
import json, ssl, sys, urllib.request
info = json.load(open(sys.argv[1]))
body = sys.argv[4].encode() if sys.argv[4] else None
request = urllib.request.Request(info['base_url'] + '/_emulator/' + sys.argv[3], data=body, method=sys.argv[2],
                                 headers={'Content-Type': 'application/json'})
urllib.request.urlopen(request, context=ssl.create_default_context(cafile=info['ca_path'])).read()
PY
}
python_json() {
    "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}
check() {
    ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PYTHON" -e "emulator_info_file=$INFO" \
        -e "out_dir=$OUT" -e "check_step=$1" check.yml
}
# An AWX relaunch of the change window just run (a timeout, a second click): the same play again must send
# no Graph write and report nothing changed.
relaunch() {
    control DELETE requests
    local output
    output="$(migrate "$@")"
    echo "$output"
    grep -Eq 'contoso +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' <<<"$output"
    check relaunched
}

# Preflight stops on the permissions the selected phases need and the token lacks (an app that may only read).
control POST apps '{"client_id": "0d9c4b52-4a8e-4c0e-9f1e-7d3b2a1c0e01", "secret": "reader-only-secret",
                    "permissions": ["User.Read.All", "GroupMember.Read.All", "Organization.Read.All"]}'
if denied="$(migrate -e '{"migrate_direct_to_group_phases": ["preflight", "group", "assign"]}' -e "migrate_direct_to_group_output_dir=$WORK/denied" \
        -e entra_client_id=0d9c4b52-4a8e-4c0e-9f1e-7d3b2a1c0e01 -e entra_client_secret=reader-only-secret 2>&1)"; then
    echo "preflight should have stopped on the missing permissions"
    exit 1
fi
for needed in "Group.Create, needed by the group phase" "GroupMember.ReadWrite.All, needed by the group phase" \
        "LicenseAssignment.ReadWrite.All, needed by the assign phase"; do
    grep -q "lacks the Graph application permission $needed" <<<"$denied"
done
# No blocker for the reading permissions it has; the preflight recorded the stop.
if grep -q "needed to read" <<<"$denied"; then
    echo "the reading permissions it holds were reported missing"
    exit 1
fi
[ "$(python_json "$WORK/denied/contoso-phase-preflight.json" status)" = blocked ]

# A dry run of everything, removal included, writes nothing to the tenant.
migrate --check --diff -e '{"migrate_direct_to_group_remove_batches": "all"}'
check dry_run

# Change window 1: preflight and groups; window 2: licenses, wait, verify (the plan).
migrate -e '{"migrate_direct_to_group_phases": ["preflight", "group"]}'
relaunch -e '{"migrate_direct_to_group_phases": ["preflight", "group"]}'
migrate -e '{"migrate_direct_to_group_phases": ["assign", "wait", "verify", "report"]}'
relaunch -e '{"migrate_direct_to_group_phases": ["assign", "wait", "verify", "report"]}'
check planned

# Canary, of the plan the change record approved (its fingerprint, from the verify phase's record); relaunched once.
FINGERPRINT="$(python_json "$OUT/contoso-phase-verify.json" plan_fingerprint)"
migrate -e '{"migrate_direct_to_group_phases": ["remove", "report"], "migrate_direct_to_group_remove_batches": [0]}' \
    -e "migrate_direct_to_group_plan_fingerprint=$FINGERPRINT"
check canary
relaunch -e '{"migrate_direct_to_group_phases": ["remove", "report"], "migrate_direct_to_group_remove_batches": [0]}' \
    -e "migrate_direct_to_group_plan_fingerprint=$FINGERPRINT"
check canary

# A fingerprint that is not the plan's stops the batch before any Graph call, naming both (on a copy of the
# run's files, so that the records of this refused window stay out of the checks below).
cp -a "$OUT" "$WORK/refused"
control DELETE requests
if refused="$(migrate -e '{"migrate_direct_to_group_phases": ["remove"], "migrate_direct_to_group_remove_batches": [1]}' \
        -e "migrate_direct_to_group_output_dir=$WORK/refused" \
        -e "migrate_direct_to_group_plan_fingerprint=sha256:$(printf '0%.0s' {1..64})" 2>&1)"; then
    echo "a plan that is not the approved one should have been refused"
    exit 1
fi
grep -q "is not the approved plan: its content has fingerprint $FINGERPRINT" <<<"$refused"
check relaunched

# Batches 1 and 2 with Graph failing every removal after the first two: the run stops (budget 0) and reports.
control POST faults '{"method": "POST", "route": "assignLicense", "status": 500, "skip": 2, "count": null}'
if migrate -e '{"migrate_direct_to_group_phases": ["remove", "report"], "migrate_direct_to_group_remove_batches": [1, 2]}'; then
    echo "the run should have stopped on the failed removals"
    exit 1
fi
check interrupted

# The same change window again, without the fault: it resumes from the journal and finishes.
control DELETE faults
migrate -e '{"migrate_direct_to_group_phases": ["remove", "report"], "migrate_direct_to_group_remove_batches": [1, 2]}'
check resumed
relaunch -e '{"migrate_direct_to_group_phases": ["remove", "report"], "migrate_direct_to_group_remove_batches": [1, 2]}'

# Everything that is left, then the report.
migrate -e '{"migrate_direct_to_group_phases": ["verify", "remove", "report"], "migrate_direct_to_group_remove_batches": "all"}'
check migrated
relaunch -e '{"migrate_direct_to_group_phases": ["verify", "remove", "report"], "migrate_direct_to_group_remove_batches": "all"}'
check migrated

# Rollback from the journal puts every direct assignment back; a second run restores nothing.
ansible-playbook -i "$WORK/inventory.yml" entraops.licensing.rollback -e "migrate_direct_to_group_output_dir=$OUT"
ansible-playbook -i "$WORK/inventory.yml" entraops.licensing.rollback -e "migrate_direct_to_group_output_dir=$OUT"
check rolled_back
