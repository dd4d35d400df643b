#!/usr/bin/env bash
# Start the Graph emulator on a free loopback port with a generated tenant, run the playbook, stop it.
set -eux

PYTHON="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
WORK="$(mktemp -d)"
INFO="$WORK/emulator.json"
TENANT="$WORK/tenant.json"
"$PYTHON" -m graph_emulator.cli generate --users 40 --seed 5 --out "$TENANT"
"$PYTHON" -m graph_emulator.cli serve --port 0 --tenant "$TENANT" --info-file "$INFO" >"$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
trap 'kill "$EMULATOR_PID" 2>/dev/null || true; wait "$EMULATOR_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

for _ in $(seq 1 100); do
    [ -s "$INFO" ] && break
    kill -0 "$EMULATOR_PID" || { cat "$WORK/emulator.log"; exit 1; }
    sleep 0.1
done
[ -s "$INFO" ] || { echo "the emulator wrote no info file"; cat "$WORK/emulator.log"; exit 1; }

ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PYTHON" -e "emulator_info_file=$INFO" \
    -e "tenant_file=$TENANT" play.yml "$@"
