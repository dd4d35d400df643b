#!/usr/bin/env bash
# Start the Graph emulator on a free loopback port, run the playbook against it, stop it.
set -eux

# shellcheck source=../setup_emulator/emulator.sh
source ../setup_emulator/emulator.sh
start_emulator --users 40 --seed 3

ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PYTHON" -e "emulator_info_file=$INFO" play.yml "$@"
