#!/usr/bin/env bash
# Start the Graph emulator on a free loopback port with a generated tenant, run the playbook, stop it.
set -eux

# shellcheck source=../setup_emulator/emulator.sh
source ../setup_emulator/emulator.sh
TENANT="$WORK/tenant.json"
"$PYTHON" -m graph_emulator.cli generate --users 40 --seed 5 --out "$TENANT"
start_emulator --tenant "$TENANT"

ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PYTHON" -e "emulator_info_file=$INFO" \
    -e "tenant_file=$TENANT" play.yml "$@"
