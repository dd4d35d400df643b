# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Secrets never leave the process; files holding user data are owner-only; the transport stays verified.

Secrets: the migration chain runs under ansible-playbook -vvvv with a distinctive client secret,
certificate password and access token (and once with the secret from the environment); stdout,
stderr, the Ansible log and every file the run wrote (reports, plan, journal, rollback script,
HTML report) must contain none of them, nor any JWT. Failing tasks are part of the run, so error
messages are checked too.

Transport: a token is never sent over plain http off loopback, nor to another host than the
configured Graph; TLS verification has no off switch and environment variables cannot turn it off;
``ca_bundle`` wins over ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import stat
import subprocess
import sys

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphClient, GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.module import graph_argument_spec
from ansible_collections.entraops.licensing.plugins.modules import sku_info
from ansible_collections.entraops.licensing.tests.reliability.campaign import build_tenant, connection, reset, run
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import run_module

PLAYBOOK = os.path.join(os.path.dirname(__file__), "playbooks", "chain.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
CLIENT_SECRET = "RELIABILITY-client-secret-Zq8v~7h2K9w.Lp4"
CERTIFICATE_PASSWORD = "RELIABILITY-cert-password-Yv3!pX6q"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
E3_SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
USER_DATA_FILES = ("report.csv", "report.json", "plan.json", "journal.jsonl", "journal.rollback.ps1", "report.html", "summary.json")


def permissions():
    from graph_emulator.identity import DEFAULT_APP_PERMISSIONS  # pylint: disable=import-outside-toplevel

    return list(DEFAULT_APP_PERMISSIONS)


def encrypted_certificate(folder):
    """(PEM file holding a certificate and its key encrypted with CERTIFICATE_PASSWORD, certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entraops reliability")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(CERTIFICATE_PASSWORD.encode("utf-8"))
    ).decode("ascii")
    path = os.path.join(str(folder), "client-certificate.pem")
    with open(path, "w", encoding="ascii") as stream:
        stream.write(cert_pem + key_pem)
    os.chmod(path, 0o600)
    return path, cert_pem


def credential_for(emu, kind, folder):
    """(credential vars, environment additions, secrets that must not appear anywhere)."""
    if kind in ("secret", "environment"):
        app = emu.add_app(permissions=permissions(), secret=CLIENT_SECRET, display_name="reliability secret app")
        if kind == "environment":
            return {"client_id": app["clientId"]}, {"AZURE_CLIENT_SECRET": CLIENT_SECRET}, [CLIENT_SECRET]
        return {"client_id": app["clientId"], "client_secret": CLIENT_SECRET}, {}, [CLIENT_SECRET]
    if kind == "certificate":
        path, cert_pem = encrypted_certificate(folder)
        app = emu.add_app(permissions=permissions(), certificate_pem=cert_pem, display_name="reliability certificate app")
        return (
            {"client_id": app["clientId"], "client_certificate_path": path, "client_certificate_password": CERTIFICATE_PASSWORD},
            {},
            [CERTIFICATE_PASSWORD],
        )
    app = emu.add_app(permissions=permissions(), display_name="reliability token app")
    token = emu.issue_token(client_id=app["clientId"], permissions=permissions(), expires_in=3600)
    return {"access_token": token}, {}, [token, token.rsplit(".", 1)[-1]]


def files_under(folder):
    for root, dummy, names in os.walk(str(folder)):
        for name in names:
            yield os.path.join(root, name)


@pytest.mark.parametrize("kind", ["secret", "certificate", "token", "environment"])
def test_no_secret_in_output_or_files_and_user_data_is_owner_only(campaign_emulator, tmp_path, kind, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(24, seed=13))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    credential, environment, secrets = credential_for(emu, kind, tmp_path)
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(
        json.dumps(
            {
                "campaign": {"base_url": emu.base_url, "ca_path": emu.ca_path, "tenant_id": emu.tenant_id},
                "credential": credential,
                "out_dir": str(out_dir),
                "full_chain": kind == "secret",
            }
        )
    )
    os.chmod(str(extra_vars), 0o600)
    env = dict(
        os.environ,
        ANSIBLE_LOG_PATH=str(out_dir / "ansible.log"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        **environment,
    )
    if kind != "environment":
        env.pop("AZURE_CLIENT_SECRET", None)
    completed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-vvvv", PLAYBOOK, "-e", "@%s" % extra_vars],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
    )
    stdout, stderr = completed.stdout.decode("utf-8", "replace"), completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 0, stdout[-3000:] + stderr[-2000:]
    assert "no such group" in stdout and "NOT_A_SKU" in stdout  # the failing tasks ran and their messages were printed

    places = {"stdout": stdout, "stderr": stderr}
    for path in files_under(out_dir):
        with open(path, "rb") as stream:
            places[os.path.relpath(path, str(out_dir))] = stream.read().decode("utf-8", "replace")
    leaks = [
        "%s in %s" % ("a JWT" if secret is None else "secret #%d" % number, where)
        for where, text in places.items()
        for number, secret in enumerate(secrets + [None])
        if (JWT.search(text) if secret is None else secret in text)
    ]
    written = [name for name in USER_DATA_FILES if os.path.exists(str(out_dir / name))]
    too_open = [
        "%s %o" % (name, stat.S_IMODE(os.stat(str(out_dir / name)).st_mode)) for name in written if stat.S_IMODE(os.stat(str(out_dir / name)).st_mode) & 0o077
    ]
    figures(
        kind="secrets",
        what="%s%s at -vvvv" % (kind, " (whole chain)" if kind == "secret" else ""),
        places=len(places),
        leaks=len(leaks),
        files=len(written),
        open_files=len(too_open),
    )
    assert leaks == []
    # The secret run goes through the whole chain; the others authenticate, read and fail twice (no file written).
    assert set(written) == (set(USER_DATA_FILES) if kind == "secret" else set())
    assert too_open == [], "files holding user data readable by others: %s" % too_open


# ------------------------------------------------------------------------------------------ transport


def test_token_never_sent_over_plain_http_off_loopback(campaign_emulator, figures):
    for url in ("http://graph.example.com", "http://10.0.0.8:8443", "http://[2001:db8::1]"):
        with pytest.raises(GraphError) as refused:
            GraphClient(access_token="never-sent", graph_url=url, authority_url="https://login.example.com")
        assert "plain http" in str(refused.value) and "never-sent" not in str(refused.value)
    with pytest.raises(GraphError) as refused:
        GraphClient(tenant_id="t", client_id="c", client_secret="never-sent", graph_url="https://graph.example.com", authority_url="http://login.example.com")
    assert "https" in str(refused.value)
    # Loopback is the exception (an emulator or a local proxy): the client accepts it.
    GraphClient(access_token="local", graph_url="http://127.0.0.1:9", authority_url="https://login.example.com").close()
    figures(kind="transport", check="no token over plain http off loopback")


def test_token_never_follows_a_link_to_another_host(campaign_emulator, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(5, seed=3))
    token = emu.issue_token(permissions=permissions())
    client = GraphClient(access_token=token, graph_url=emu.base_url, authority_url=emu.authority_url, ca_bundle=emu.ca_path)
    try:
        emu.reset_stats()
        for link in ("https://evil.example.com/v1.0/users", "https://127.0.0.1:1/v1.0/users", "http://%s/v1.0/users" % emu.base_url.split("://")[1]):
            with pytest.raises(GraphError) as refused:
                client.get(link)
            assert "Refusing to send the access token" in str(refused.value)
        assert emu.request_log() == []
    finally:
        client.close()
    figures(kind="transport", check="no token to another host")


def run_without_ca_bundle(emu):
    options = connection(emu)
    del options["ca_bundle"]
    return run_module(sku_info.main, options)


def test_tls_verification_has_no_off_switch(campaign_emulator, monkeypatch, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(5, seed=3))
    names = set(graph_argument_spec())
    assert not names & set(["validate_certs", "verify", "verify_ssl", "insecure", "tls_verify", "ignore_certificate_errors"])
    # Without the emulator's CA the connection is refused, whatever the environment says about verification.
    for variable, value in (("REQUESTS_CA_BUNDLE", ""), ("CURL_CA_BUNDLE", ""), ("PYTHONHTTPSVERIFY", "0")):
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    result, failed = run_without_ca_bundle(emu)
    assert failed and "TLS verification failed" in result["msg"] and "ca_bundle" in result["msg"]
    figures(kind="transport", check="TLS verification cannot be turned off")


def test_ca_bundle_wins_over_requests_ca_bundle(campaign_emulator, monkeypatch, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(5, seed=3))
    import certifi  # pylint: disable=import-outside-toplevel

    # The environment names the emulator's CA, the option a bundle without it: the option decides (and fails).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_path)
    result, failed = run(emu, sku_info, ca_bundle=certifi.where())
    assert failed and "TLS verification failed" in result["msg"]
    # And the other way round: a wrong CA in the environment does not override a right option.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    result, failed = run(emu, sku_info, ca_bundle=emu.ca_path)
    assert not failed, result.get("msg")
    # Without the option, REQUESTS_CA_BUNDLE is its documented fallback.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_path)
    result, failed = run_without_ca_bundle(emu)
    assert not failed, result.get("msg")
    figures(kind="transport", check="ca_bundle wins over REQUESTS_CA_BUNDLE")


def test_user_data_files_are_created_owner_only_whatever_the_umask(tmp_path, figures):
    from ansible_collections.entraops.licensing.plugins.module_utils.journal import Journal  # pylint: disable=import-outside-toplevel
    from ansible_collections.entraops.licensing.plugins.module_utils.powershell import write_rollback_script  # pylint: disable=import-outside-toplevel
    from ansible_collections.entraops.licensing.plugins.module_utils.plan import write_plan  # pylint: disable=import-outside-toplevel
    from ansible_collections.entraops.licensing.plugins.module_utils.reports import write_report  # pylint: disable=import-outside-toplevel

    previous = os.umask(0o022)
    try:
        write_report(str(tmp_path / "report.csv"), [])
        write_report(str(tmp_path / "report.json"), [])
        write_plan(str(tmp_path / "plan.json"), [])
        with Journal(str(tmp_path / "journal.jsonl")) as journal:
            journal.intent("remove_direct", "00000000-0000-0000-0000-000000000001", "a@contoso.com", E3_SKU, "ENTERPRISEPACK", [])
        write_rollback_script([], str(tmp_path / "journal.rollback.ps1"))
    finally:
        os.umask(previous)
    modes = dict((path.name, stat.S_IMODE(path.stat().st_mode)) for path in tmp_path.iterdir())
    assert modes == dict((name, 0o600) for name in ("report.csv", "report.json", "plan.json", "journal.jsonl", "journal.rollback.ps1"))
    figures(kind="transport", check="user data files created 0600")
