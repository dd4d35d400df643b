# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared fixtures: one Graph emulator per test worker, clients against it, test certificates."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphClient
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS, emulator_connection

EMULATOR_USERS = 120
EMULATOR_SEED = 7


def _self_signed(common_name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="session")
def certificate_files(tmp_path_factory):
    """PEM files holding a certificate and its key: plain, encrypted, and an unrelated pair."""
    folder = tmp_path_factory.mktemp("certificates")
    password = "correct horse battery staple"
    key, cert = _self_signed("entraops-licensing-tests")
    other_key, other_cert = _self_signed("someone-else")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def write(name, private_key, certificate, encryption):
        path = folder / name
        key_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        path.write_text(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii") + key_pem.decode("ascii"))
        return str(path)

    return {
        "plain": write("plain.pem", key, cert, serialization.NoEncryption()),
        "encrypted": write("encrypted.pem", key, cert, serialization.BestAvailableEncryption(password.encode("utf-8"))),
        "other": write("other.pem", other_key, other_cert, serialization.NoEncryption()),
        "password": password,
        "certificate_pem": cert_pem,
        "sha1": cert.fingerprint(hashes.SHA1()).hex().upper(),
    }


@pytest.fixture(scope="session")
def emulator_session():
    """One running emulator per xdist worker (session scope is per worker)."""
    from graph_emulator import Emulator, generate_tenant  # pylint: disable=import-outside-toplevel

    with Emulator(tenant=generate_tenant(users=EMULATOR_USERS, seed=EMULATOR_SEED), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session):
    """The worker's emulator with no faults, default knobs and fresh statistics for each test."""
    emulator_session.clear_faults()
    emulator_session.configure(throttling=False, latency_ms=0, time_scale=1.0, budget_scale=1.0, charge_refused=True, write_budget_left=1.0, **STRICT_KNOBS)
    emulator_session.reset_stats()
    yield emulator_session
    emulator_session.clear_faults()
    emulator_session.configure(throttling=False, latency_ms=0, **STRICT_KNOBS)


@pytest.fixture
def make_client(emulator):
    """Factory for clients against the emulator; every client is closed after the test."""
    clients = []

    def factory(**overrides):
        client = GraphClient(**emulator_connection(emulator, **overrides))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    """A secret-authenticated client with fast backoff (tests must not wait for seconds)."""
    return make_client(backoff_base=0.01, backoff_cap=0.05, max_retry_time=20)
