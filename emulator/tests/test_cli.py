"""The graph-emulator command: serve in another process, info file, clean SIGTERM; generate."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import msal
import requests

CLI = [sys.executable, "-m", "graph_emulator.cli"]


def wait_for_file(path, process, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if process.poll() is not None:
            raise AssertionError(f"graph-emulator exited early: {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


@contextlib.contextmanager
def served(info_path, *args):
    """``graph-emulator serve ARGS --info-file INFO_PATH``: yield its info and an HTTPS session trusting its CA; stop it with
    SIGTERM after the block and require exit status 0."""
    process = subprocess.Popen(CLI + ["serve", *args, "--info-file", str(info_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(str(info_path), process)
        info = json.loads(info_path.read_text())
        session = requests.Session()
        session.trust_env = False
        session.verify = info["ca_path"]
        yield info, session
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_serve_writes_info_file_serves_msal_and_stops_on_sigterm(tmp_path):
    info_path = tmp_path / "info.json"
    process = subprocess.Popen(
        CLI + ["serve", "--port", "0", "--users", "25", "--seed", "3", "--info-file", str(info_path), "--time-scale", "2", "--throttling"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(str(info_path), process)
        info = json.loads(info_path.read_text())
        assert set(info) >= {"base_url", "ca_path", "tenant_id", "client_id", "client_secret", "pid"}
        assert info["pid"] == process.pid
        assert oct(info_path.stat().st_mode & 0o777) == "0o600"
        session = requests.Session()
        session.trust_env = False
        session.verify = info["ca_path"]
        app = msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"{info['base_url']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=session,
        )
        token = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]
        users = session.get(f"{info['base_url']}/v1.0/users?$select=id", headers={"Authorization": f"Bearer {token}"}).json()["value"]
        assert len(users) == 25
        config = session.get(f"{info['base_url']}/_emulator/config").json()
        assert config["throttling"] is True and config["time_scale"] == 2.0
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert f"listening on {info['base_url']}" in stdout
    assert info["ca_path"] in stdout
    assert info["client_secret"] not in stdout + stderr
    assert not info_path.exists()
    assert not os.path.exists(info["ca_path"]), "temporary TLS material is removed on exit"


def test_generate_writes_a_tenant_file(tmp_path):
    out = tmp_path / "tenant.json"
    result = subprocess.run(CLI + ["generate", "--users", "7", "--seed", "1", "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    tenant = json.loads(out.read_text())
    assert len(tenant["users"]) == 7
    again = tmp_path / "again.json"
    subprocess.run(CLI + ["generate", "--users", "7", "--seed", "1", "--out", str(again)], check=True, timeout=60)
    assert json.loads(again.read_text()) == tenant


def test_generate_with_the_seed_profile_writes_the_seed_example(tmp_path):
    out = tmp_path / "seed.json"
    subprocess.run(CLI + ["generate", "--users", "30", "--seed", "1", "--profile", "seed", "--out", str(out)], check=True, capture_output=True, timeout=60)
    tenant = json.loads(out.read_text())
    assert [g["displayName"] for g in tenant["groups"]] == ["All users", "Contractors"]


def test_bad_arguments_are_refused_with_a_clear_message(tmp_path):
    result = subprocess.run(CLI + ["serve", "--time-scale", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "time-scale" in result.stderr
    missing = subprocess.run(CLI + ["serve", "--tenant", str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "nope.json" in missing.stderr


def test_serve_takes_the_dynamic_and_sync_knobs_and_the_hybrid_profile(tmp_path):
    serve_args = ("--users", "40", "--seed", "1", "--profile", "hybrid", "--dynamic-rate", "50", "--sync-interval-s", "0")
    with served(tmp_path / "info.json", *serve_args) as (info, session):
        config = session.get(f"{info['base_url']}/_emulator/config").json()
        assert config["dynamic_rate"] == 50.0 and config["sync_interval_s"] == 0.0
        state = session.get(f"{info['base_url']}/_emulator/state").json()
        all_users = next(g for g in state["groups"] if g["displayName"] == "All users")
        assert all_users["onPremisesSyncEnabled"] is True
        assert sum(1 for u in state["users"] if not u.get("onPremisesSyncEnabled")) == 5
    refused = subprocess.run(CLI + ["serve", "--sync-interval-s", "-1"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "sync-interval-s" in refused.stderr
