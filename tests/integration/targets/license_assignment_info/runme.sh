#!/usr/bin/env bash
# Start the Graph emulator on a free loopback port with the migration tenant, run the playbook, stop it.
set -eux

# shellcheck source=../setup_emulator/emulator.sh
source ../setup_emulator/emulator.sh
"$PYTHON" ../setup_emulator/migration_tenant.py "$WORK/tenant.json"
start_emulator --tenant "$WORK/tenant.json"

ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PYTHON" -e "emulator_info_file=$INFO" \
    -e "work_dir=$WORK" play.yml "$@"
