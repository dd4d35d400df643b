# shellcheck shell=bash
# Sourced by the runme.sh of every target that talks to the Graph emulator (their aliases name
# needs/target/setup_emulator). It sets PYTHON (ansible-test's interpreter, where graph_emulator is
# installed) and WORK (a scratch folder); start_emulator ARGS... starts `graph-emulator serve --port 0
# ARGS...` in the background, waits until it listens and sets INFO (its info file: base URL, CA path,
# tenant and app). When the target's script exits, the emulator stops and WORK is removed (kept when
# KEEP_WORK is set, for debugging).

PYTHON="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
WORK="$(mktemp -d)"
INFO="$WORK/emulator.json"
EMULATOR_PID=""
export PYTHON WORK INFO

stop_emulator() {
    if [ -n "$EMULATOR_PID" ]; then
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
    fi
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap stop_emulator EXIT

start_emulator() {
    "$PYTHON" -m graph_emulator.cli serve --port 0 "$@" --info-file "$INFO" >"$WORK/emulator.log" 2>&1 &
    EMULATOR_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$INFO" ] && return 0
        kill -0 "$EMULATOR_PID" 2>/dev/null || { cat "$WORK/emulator.log"; return 1; }
        sleep 0.1
    done
    echo "the emulator wrote no info file within 10 s"
    cat "$WORK/emulator.log"
    return 1
}
