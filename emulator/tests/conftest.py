"""Shared fixtures: a real emulator over HTTPS and a small Graph client built on requests + msal."""

import msal
import pytest
import requests

from graph_emulator import Emulator, generate_tenant
from graph_emulator.tls import self_signed_client_certificate

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # ENTERPRISEPACK, the generated tenant's main SKU
EMS_E5 = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"  # EMSPREMIUM, an extra SKU of the generated tenant


def https_session(emu):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE on this machine would override verify=
    session.verify = emu.ca_path
    return session


def msal_token(emu, client_id=None, credential=None, scope=None):
    app = msal.ConfidentialClientApplication(
        client_id or emu.client_id,
        client_credential=credential or emu.client_secret,
        authority=f"{emu.authority_url}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=https_session(emu),
    )
    return app.acquire_token_for_client(scopes=[scope or f"{emu.base_url}/.default"])


class Graph:
    """Thin test client: absolute Graph URLs, bearer token, JSON bodies."""

    def __init__(self, emu, token):
        self.emu = emu
        self.session = https_session(emu)
        self.token = token

    def url(self, path):
        return path if path.startswith("https://") else f"{self.emu.base_url}/v1.0/{path.lstrip('/')}"

    def request(self, method, path, body=None, headers=None, **kwargs):
        merged = {"Authorization": f"Bearer {self.token}"}
        merged.update(headers or {})
        return self.session.request(method, self.url(path), json=body, headers=merged, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body=body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.request("PATCH", path, body=body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def list_all(self, path, **kwargs):
        items, url, pages = [], path, 0
        while url:
            response = self.get(url, **kwargs)
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["value"])
            url = body.get("@odata.nextLink")
            pages += 1
        return items, pages


@pytest.fixture(scope="module")
def emu():
    with Emulator(tenant=generate_tenant(users=60, seed=11)) as emulator:
        yield emulator


@pytest.fixture()
def fresh_emu():
    """An emulator whose state a test may change freely."""
    with Emulator(tenant=generate_tenant(users=30, seed=5)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def graph(emu):
    return Graph(emu, emu.issue_token())


@pytest.fixture()
def fresh_graph(fresh_emu):
    return Graph(fresh_emu, fresh_emu.issue_token())


@pytest.fixture(scope="session")
def client_certificate():
    """(private key PEM, certificate PEM, SHA-1 thumbprint hex) made with cryptography."""
    return self_signed_client_certificate("emulator test client")


def users_of(emu):
    return [user for _, user in emu.directory.iter_users(0)]


def licensed_user(emu, sku=E3):
    for user in users_of(emu):
        if any(lic["skuId"] == sku for lic in user["assignedLicenses"]) and user["usageLocation"]:
            return user
    raise AssertionError(f"no user holds {sku}")


def assert_error_envelope(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert isinstance(inner["date"], str) and "T" in inner["date"]
    return error
