"""Identity endpoints with real msal (secret and certificate) and Graph token checks."""

import re
import tempfile

import jwt
import msal
import pytest
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import Graph, assert_error_envelope, https_session, msal_token


def test_msal_with_client_secret_gets_a_token_graph_accepts(emu):
    result = msal_token(emu)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == emu.tenant_id
    assert claims["appid"] == emu.client_id
    assert "LicenseAssignment.ReadWrite.All" in claims["roles"]
    assert claims["aud"] == emu.base_url
    assert claims["exp"] - claims["iat"] == 3599
    response = Graph(emu, result["access_token"]).get("users?$top=1")
    assert response.status_code == 200


def test_msal_accepts_the_public_graph_scope_and_the_default_domain(emu):
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=f"{emu.authority_url}/{emu.directory.default_domain}",
        instance_discovery=False,
        http_client=https_session(emu),
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["aud"] == "https://graph.microsoft.com"
    assert Graph(emu, result["access_token"]).get("organization").json()["value"][0]["id"] == emu.tenant_id


def test_msal_with_certificate_and_sha1_thumbprint(emu, client_certificate):
    key_pem, cert_pem, thumbprint = client_certificate
    app = emu.add_app(permissions=["User.Read.All"], certificate_pem=cert_pem)
    result = msal_token(emu, app["clientId"], {"private_key": key_pem, "thumbprint": thumbprint})
    assert "access_token" in result, result.get("error_description")
    assert Graph(emu, result["access_token"]).get("users?$top=2").status_code == 200


def test_msal_with_certificate_uses_ps256_and_x5t_s256(emu, client_certificate):
    key_pem, cert_pem, _ = client_certificate
    app = emu.add_app(permissions=["User.Read.All"], certificate_pem=cert_pem)
    result = msal_token(emu, app["clientId"], {"private_key": key_pem, "public_certificate": cert_pem})
    assert "access_token" in result, result.get("error_description")
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["appid"] == app["clientId"]


def test_msal_with_certificate_from_a_pfx_file(emu, client_certificate):
    key_pem, cert_pem, _ = client_certificate
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    app = emu.add_app(permissions=["User.Read.All"], certificate_pem=cert_pem)
    with tempfile.NamedTemporaryFile(suffix=".pfx") as pfx:
        pfx.write(pkcs12.serialize_key_and_certificates(b"client", key, cert, None, NoEncryption()))
        pfx.flush()
        result = msal_token(emu, app["clientId"], {"private_key_pfx_path": pfx.name})
    assert "access_token" in result, result.get("error_description")


def test_certificate_not_registered_on_the_app_is_refused(emu, client_certificate):
    from graph_emulator.tls import self_signed_client_certificate

    _, registered_pem, _ = client_certificate
    other_key, other_cert, other_thumbprint = self_signed_client_certificate("someone else")
    app = emu.add_app(permissions=["User.Read.All"], certificate_pem=registered_pem)
    result = msal_token(emu, app["clientId"], {"private_key": other_key, "thumbprint": other_thumbprint})
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_assertion_signed_by_another_key_with_the_registered_thumbprint_fails_signature(emu, client_certificate):
    from graph_emulator.tls import self_signed_client_certificate

    _, cert_pem, thumbprint = client_certificate
    wrong_key, _, _ = self_signed_client_certificate("impostor")
    app = emu.add_app(permissions=["User.Read.All"], certificate_pem=cert_pem)
    result = msal_token(emu, app["clientId"], {"private_key": wrong_key, "thumbprint": thumbprint})
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert "signature" in result["error_description"]


def test_bad_secret_unknown_app_and_bad_scope(emu):
    bad_secret = msal_token(emu, credential="not-the-secret")
    assert bad_secret["error"] == "invalid_client"
    assert bad_secret["error_codes"] == [7000215]
    assert "not-the-secret" not in bad_secret["error_description"]
    unknown = msal_token(emu, client_id="11111111-2222-3333-4444-555555555555", credential="x")
    assert unknown["error"] == "unauthorized_client"
    assert unknown["error_codes"] == [700016]
    bad_scope = msal_token(emu, scope="https://graph.microsoft.com/User.Read")
    assert bad_scope["error"] == "invalid_scope"
    assert bad_scope["error_codes"] == [70011]


def test_unknown_tenant_discovery_fails(emu):
    response = https_session(emu).get(f"{emu.base_url}/00000000-0000-0000-0000-000000000001/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_discovery_document_points_back_at_the_emulator(emu):
    body = https_session(emu).get(f"{emu.base_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert body["token_endpoint"] == f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token"
    assert body["issuer"] == f"{emu.base_url}/{emu.tenant_id}/v2.0"
    assert body["authorization_endpoint"].startswith("https://")


def test_missing_malformed_expired_and_foreign_tokens_get_401(emu):
    graph = Graph(emu, "")
    response = graph.session.get(f"{emu.base_url}/v1.0/users")
    assert_error_envelope(response, 401, "InvalidAuthenticationToken")
    graph.token = "not.a.jwt"
    assert_error_envelope(graph.get("users"), 401, "InvalidAuthenticationToken")
    graph.token = emu.issue_token(expires_in=-60)
    error = assert_error_envelope(graph.get("users"), 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token has expired or is not yet valid."
    graph.token = emu.issue_token(audience="https://management.azure.com")
    error = assert_error_envelope(graph.get("users"), 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token validation failure. Invalid audience."
    forged = jwt.encode(
        {"aud": "https://graph.microsoft.com", "exp": 4102444800, "nbf": 0, "iss": "x", "tid": "y", "roles": ["Directory.ReadWrite.All"]},
        "an-hmac-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    graph.token = forged
    assert_error_envelope(graph.get("users"), 401, "InvalidAuthenticationToken")


def test_token_lifetime_knob_changes_expires_in(fresh_emu):
    fresh_emu.configure(token_lifetime=120)
    result = msal_token(fresh_emu)
    assert result["expires_in"] == 120
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["nbf"] == 120


@pytest.mark.parametrize(
    "path, method, body",
    [
        ("users?$top=1", "GET", None),
        ("subscribedSkus", "GET", None),
        ("auditLogs/directoryAudits", "GET", None),
    ],
)
def test_missing_permission_is_403_authorization_request_denied(emu, path, method, body):
    app = emu.add_app(permissions=["GroupMember.Read.All"], secret="s3cret-value")
    token = msal_token(emu, app["clientId"], "s3cret-value")["access_token"]
    error = assert_error_envelope(Graph(emu, token).request(method, path, body), 403, "Authorization_RequestDenied")
    assert error["message"] == "Insufficient privileges to complete the operation."


def test_least_privileged_and_higher_permissions_are_both_accepted(emu):
    user_id = next(emu.directory.iter_users(0))[1]["id"]
    body = {"addLicenses": [], "removeLicenses": []}
    for permissions, expected in ((["LicenseAssignment.ReadWrite.All"], 200), (["Directory.ReadWrite.All"], 200), (["User.Read.All"], 403)):
        token = emu.issue_token(permissions=permissions)
        assert Graph(emu, token).post(f"users/{user_id}/assignLicense", body).status_code == expected, permissions


def test_audit_logs_need_both_documented_permissions(emu):
    only_audit = Graph(emu, emu.issue_token(permissions=["AuditLog.Read.All"]))
    assert only_audit.get("auditLogs/directoryAudits").status_code == 403
    both = Graph(emu, emu.issue_token(permissions=["AuditLog.Read.All", "Directory.Read.All"]))
    assert both.get("auditLogs/directoryAudits").status_code == 200


def test_tokens_and_secrets_never_reach_the_request_log(emu):
    msal_token(emu, credential="wrong-secret-abc")
    token = emu.issue_token()
    Graph(emu, token).get("users?$top=1&$select=id")
    logged = repr(emu.request_log())
    assert emu.client_secret not in logged
    assert "wrong-secret-abc" not in logged
    assert token not in logged
    assert "$select" not in logged


def test_token_error_description_lines_are_separated_like_entra(emu):
    result = msal_token(emu, credential="not-the-secret")
    lines = result["error_description"].split("\r\n")
    assert lines[0] == (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is "
        "the client secret value, not the client secret ID, for a secret added to app "
        f"'{emu.client_id}'."
    )
    assert re.fullmatch(r"Trace ID: [0-9a-f-]{36}", lines[1]) and lines[1] == f"Trace ID: {result['trace_id']}"
    assert lines[2] == f"Correlation ID: {result['correlation_id']}"
    assert re.fullmatch(r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", lines[3]) and lines[3] == f"Timestamp: {result['timestamp']}"
    assert len(lines) == 4
