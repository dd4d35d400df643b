# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the Graph client: no HTTP."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import graph, graph_auth
from ansible_collections.entraops.licensing.plugins.module_utils.graph import (
    BatchResult,
    GraphClient,
    GraphConfigError,
    GraphError,
    GraphOutcomeUnknown,
    WritePacer,
    is_loopback_host,
    parse_retry_after,
    resolve_endpoints,
)


class FakeClock:
    """Monotonic clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def secret_client(**kwargs):
    options = dict(tenant_id="contoso.onmicrosoft.com", client_id="11111111-1111-1111-1111-111111111111", client_secret="not-used")
    options.update(kwargs)
    return GraphClient(**options)


class TestRetryAfter:
    def test_seconds(self):
        assert parse_retry_after("10") == 10.0
        assert parse_retry_after(" 0.25 ") == 0.25

    def test_negative_seconds_mean_now(self):
        assert parse_retry_after("-3") == 0.0

    def test_http_date(self):
        now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
        later = email.utils.format_datetime(now + datetime.timedelta(seconds=7), usegmt=True)
        assert parse_retry_after(later, now=now) == 7.0

    def test_http_date_in_the_past_is_zero(self):
        now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
        earlier = email.utils.format_datetime(now - datetime.timedelta(seconds=30), usegmt=True)
        assert parse_retry_after(earlier, now=now) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
    def test_unreadable_is_none(self, value):
        assert parse_retry_after(value) is None


class TestEndpoints:
    @pytest.mark.parametrize(
        "cloud, graph_root, authority_root",
        [
            ("public", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
            ("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
            ("usgov_dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
            ("china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
        ],
    )
    def test_clouds(self, cloud, graph_root, authority_root):
        assert resolve_endpoints(cloud) == (graph_root, authority_root)

    def test_scope_follows_the_cloud(self):
        assert secret_client(cloud="usgov").scope == "https://graph.microsoft.us/.default"

    def test_overrides_win_and_lose_trailing_slash(self):
        assert resolve_endpoints("china", "https://127.0.0.1:8443/", "https://127.0.0.1:8443") == ("https://127.0.0.1:8443", "https://127.0.0.1:8443")

    def test_unknown_cloud_names_the_value(self):
        with pytest.raises(GraphConfigError, match="'azure_germany'"):
            resolve_endpoints("azure_germany")

    def test_version_path_is_refused(self):
        with pytest.raises(GraphConfigError, match="without a version path"):
            resolve_endpoints("public", "https://graph.microsoft.com/v1.0")

    @pytest.mark.parametrize("url", ["http://graph.example.com", "http://10.1.2.3:8080", "http://[2001:db8::1]"])
    def test_plain_http_refused_for_non_loopback(self, url):
        with pytest.raises(GraphConfigError, match="Refusing to send an access token over plain http://"):
            secret_client(graph_url=url)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:1234", "http://[::1]:80"])
    def test_plain_http_allowed_for_loopback(self, url):
        assert secret_client(graph_url=url).api_root == url + "/v1.0"

    def test_loopback_detection(self):
        assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("LOCALHOST")
        assert not is_loopback_host("128.0.0.1") and not is_loopback_host("localhost.example.com")

    def test_http_authority_refused(self):
        with pytest.raises(GraphConfigError, match="authority_url must use https://"):
            resolve_endpoints("public", None, "http://127.0.0.1:9999")

    def test_next_link_to_another_host_is_refused(self):
        client = secret_client()
        assert client.url_for("https://graph.microsoft.com/v1.0/users?$skiptoken=x") == "https://graph.microsoft.com/v1.0/users?$skiptoken=x"
        with pytest.raises(GraphConfigError, match="Refusing to send the access token to https://evil.example"):
            client.url_for("https://evil.example/v1.0/users?$skiptoken=x")

    def test_relative_paths_go_under_the_version_root(self):
        assert secret_client().url_for("users/abc") == "https://graph.microsoft.com/v1.0/users/abc"


class TestCredentials:
    def test_exactly_one_credential(self):
        with pytest.raises(GraphConfigError, match="Exactly one of client_secret, client_certificate_path or access_token is needed, got none"):
            GraphClient(tenant_id="t", client_id="c")
        with pytest.raises(GraphConfigError, match="got client_secret, access_token"):
            GraphClient(tenant_id="t", client_id="c", client_secret="s", access_token="a")

    def test_secret_needs_tenant_and_client(self):
        with pytest.raises(GraphConfigError, match="tenant_id and client_id are required with client_secret"):
            GraphClient(client_secret="s")

    def test_access_token_needs_nothing_else(self):
        assert GraphClient(access_token="abc").graph_root == "https://graph.microsoft.com"

    def test_tenant_with_slash_is_refused(self):
        with pytest.raises(GraphConfigError, match="tenant_id must be a tenant GUID or domain name"):
            GraphClient(tenant_id="a/b", client_id="c", client_secret="s")

    def test_certificate_file_without_key(self, tmp_path):
        path = tmp_path / "cert.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        with pytest.raises(GraphConfigError, match="holds no PEM private key"):
            GraphClient(tenant_id="t", client_id="c", client_certificate_path=str(path))

    def test_missing_certificate_file(self, tmp_path):
        with pytest.raises(GraphConfigError, match="Cannot read client_certificate_path"):
            GraphClient(tenant_id="t", client_id="c", client_certificate_path=str(tmp_path / "absent.pem"))


class TestCertificateLoading:
    def test_plain_key(self, certificate_files):
        credential = graph.load_certificate_credential(certificate_files["plain"])
        assert "PRIVATE KEY" in credential["private_key"]
        assert credential["public_certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert "passphrase" not in credential

    def test_encrypted_key_needs_password(self, certificate_files):
        with pytest.raises(GraphConfigError, match="is encrypted; set client_certificate_password"):
            graph.load_certificate_credential(certificate_files["encrypted"])

    def test_encrypted_key_wrong_password(self, certificate_files):
        with pytest.raises(GraphConfigError, match="wrong client_certificate_password"):
            graph.load_certificate_credential(certificate_files["encrypted"], "wrong")

    def test_encrypted_key_right_password(self, certificate_files):
        credential = graph.load_certificate_credential(certificate_files["encrypted"], certificate_files["password"])
        assert credential["passphrase"] == certificate_files["password"]

    def test_password_for_plain_key(self, certificate_files):
        with pytest.raises(GraphConfigError, match="not encrypted"):
            graph.load_certificate_credential(certificate_files["plain"], "unneeded")

    def test_old_msal_gets_a_sha1_thumbprint(self, certificate_files, monkeypatch):
        monkeypatch.setattr(graph_auth, "_msal_version", lambda: (1, 30))
        credential = graph.load_certificate_credential(certificate_files["plain"])
        assert credential["thumbprint"] == certificate_files["sha1"]
        assert "public_certificate" not in credential

    def test_mismatched_key_and_certificate(self, certificate_files, tmp_path):
        plain = open(certificate_files["plain"]).read()
        other = open(certificate_files["other"]).read()
        key = plain[plain.index("-----BEGIN PRIVATE KEY-----") :]
        cert = other[other.index("-----BEGIN CERTIFICATE-----") :]
        path = tmp_path / "mixed.pem"
        path.write_text(key + "\n" + cert)
        with pytest.raises(GraphConfigError, match="No certificate in .* matches its private key"):
            graph.load_certificate_credential(str(path))


class TestWritePacer:
    def test_off_never_waits(self):
        clock = FakeClock()
        pacer = WritePacer(0, clock=clock, sleep=clock.sleep)
        for dummy in range(1000):
            pacer.acquire()
        assert clock.sleeps == []

    def test_rate_is_respected_after_the_burst(self):
        clock = FakeClock()
        pacer = WritePacer(10, clock=clock, sleep=clock.sleep)
        started = clock()
        for dummy in range(60):
            pacer.acquire()
        # 10 free in the first burst, then 50 more at 10 per second.
        assert clock() - started == pytest.approx(5.0)

    def test_batch_counts_every_item(self):
        clock = FakeClock()
        pacer = WritePacer(5, clock=clock, sleep=clock.sleep)
        pacer.acquire(5)
        assert pacer.acquire(20) == pytest.approx(4.0)

    def test_negative_rate_refused(self):
        with pytest.raises(GraphConfigError, match="write_rate"):
            WritePacer(-1)


class TestRetryBudget:
    def test_wait_within_budget_sleeps_exactly_until_the_deadline(self):
        clock = FakeClock()
        client = secret_client(clock=clock, sleep=clock.sleep, max_retry_time=30)
        error = GraphError("Please retry again later.", status=429, code="TooManyRequests", method="GET", path="/v1.0/users")
        client._wait_before_retry(10, started=clock(), received=clock(), error=error, attempt=1)
        assert clock.sleeps == [10]
        assert client.statistics()["retries"] == 1
        assert client.statistics()["seconds_waited"] == 10

    def test_wait_beyond_budget_raises_without_sleeping(self):
        clock = FakeClock()
        client = secret_client(clock=clock, sleep=clock.sleep, max_retry_time=30)
        started = clock()
        clock.now += 25
        error = GraphError("Please retry again later.", status=429, code="TooManyRequests", method="GET", path="/v1.0/users")
        with pytest.raises(graph.GraphRetryBudgetExceeded) as caught:
            client._wait_before_retry(10, started=started, received=clock(), error=error, attempt=4)
        assert clock.sleeps == []
        assert "max_retry_time of 30s" in str(caught.value)
        assert caught.value.status == 429 and caught.value.code == "TooManyRequests"

    def test_backoff_has_full_jitter_under_the_cap(self):
        client = secret_client(backoff_base=1, backoff_cap=8)
        waits = [client._backoff(attempt) for attempt in range(1, 12) for dummy in range(20)]
        assert all(0 <= wait <= 8 for wait in waits)
        assert max(waits) > 4  # the ceiling grows with attempts


class TestMayResend:
    @pytest.mark.parametrize("status", [429, 502, 503, 504])
    def test_reads_retry_transient_statuses(self, status):
        assert GraphClient._may_resend(status, None, is_write=False, idempotent=True)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
    def test_reads_do_not_retry_others(self, status):
        assert not GraphClient._may_resend(status, None, is_write=False, idempotent=True)

    def test_writes_retry_only_when_nothing_was_applied(self):
        assert GraphClient._may_resend(429, None, is_write=True, idempotent=False)
        assert GraphClient._may_resend(503, 2.0, is_write=True, idempotent=False)
        for status in (500, 502, 504):
            assert not GraphClient._may_resend(status, 2.0, is_write=True, idempotent=False)
        assert not GraphClient._may_resend(503, None, is_write=True, idempotent=False)

    def test_idempotent_write_retries_like_a_read(self):
        assert GraphClient._may_resend(504, None, is_write=True, idempotent=True)


class TestErrors:
    def test_graph_error_text(self):
        error = GraphError(
            "Insufficient privileges to complete the operation.",
            status=403,
            code="Authorization_RequestDenied",
            request_id="rid-1",
            client_request_id="crid-1",
            method="GET",
            path="/v1.0/users",
        )
        assert str(error) == (
            "Graph returned 403 Authorization_RequestDenied for GET /v1.0/users: Insufficient privileges to "
            "complete the operation. (request-id rid-1, client-request-id crid-1)"
        )
        assert error.to_dict()["code"] == "Authorization_RequestDenied"

    def test_local_error_text(self):
        error = GraphOutcomeUnknown("no reply within the timeout", method="POST", path="/v1.0/users/x/assignLicense")
        assert str(error) == "POST /v1.0/users/x/assignLicense: no reply within the timeout"
        assert isinstance(error, GraphError)

    def test_identity_error_fields(self):
        body = {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
            "trace_id": "t",
            "correlation_id": "c",
        }
        assert graph._error_fields(body) == ("invalid_client", "AADSTS7000215: Invalid client secret provided.", "t", "c")

    def test_batch_result_error(self):
        body = {
            "error": {
                "code": "Request_ResourceNotFound",
                "message": "Resource 'x' does not exist.",
                "innerError": {"request-id": "r", "client-request-id": "c"},
            }
        }
        result = BatchResult(0, "1", "GET", "/users/x?$select=id", 404, {}, body)
        error = result.error()
        assert not result.ok
        assert str(error) == ("Graph returned 404 Request_ResourceNotFound for GET /users/x: Resource 'x' does not exist. (request-id r, client-request-id c)")

    def test_unknown_batch_result_is_not_ok(self):
        result = BatchResult(0, "1", "POST", "/users/x/assignLicense", 504, {}, None, outcome_unknown=True)
        assert not result.ok
        assert isinstance(result.error(), GraphOutcomeUnknown)


class TestBatchPreparation:
    def test_ids_are_assigned_and_content_type_added(self):
        items = secret_client()._prepare_batch_items(
            [
                {"method": "get", "url": "/users/a"},
                {"method": "POST", "url": "/users/a/assignLicense", "body": {"addLicenses": [], "removeLicenses": []}},
            ]
        )
        assert [item["id"] for item in items] == ["1", "2"]
        assert items[0]["method"] == "GET" and items[0]["idempotent"] and not items[0]["is_write"]
        assert items[1]["headers"] == {"Content-Type": "application/json"} and not items[1]["idempotent"]

    def test_duplicate_ids_are_refused(self):
        with pytest.raises(GraphConfigError, match="'A' is repeated"):
            secret_client()._prepare_batch_items([{"id": "a", "url": "/users"}, {"id": "A", "url": "/groups"}])

    @pytest.mark.parametrize("url", ["users", "/v1.0/users", "https://graph.microsoft.com/v1.0/users"])
    def test_urls_must_be_relative(self, url):
        with pytest.raises(GraphConfigError, match="must be relative to the version root"):
            secret_client()._prepare_batch_items([{"url": url}])

    def test_empty_batch_sends_nothing(self):
        client = secret_client()
        assert client.batch([]) == []
        assert client.statistics()["requests"] == 0


class TestSessionEnvironment:
    def test_proxies_kept_but_ca_variables_ignored(self, monkeypatch, tmp_path):
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/env-bundle.pem")
        monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/curl-bundle.pem")
        client = secret_client(ca_bundle=str(tmp_path / "mine.pem"))
        remote = client.session.merge_environment_settings("https://graph.microsoft.com/v1.0/users", {}, None, None, None)
        assert remote["proxies"].get("https") == "http://proxy.example:3128"
        assert remote["verify"] == str(tmp_path / "mine.pem")
        local = client.session.merge_environment_settings("https://127.0.0.1:8443/v1.0/users", {}, None, None, None)
        assert not local["proxies"].get("https")

    def test_default_verification_is_on(self, monkeypatch):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/env-bundle.pem")
        client = secret_client()
        settings = client.session.merge_environment_settings("https://graph.microsoft.com/v1.0/users", {}, None, None, None)
        assert settings["verify"] is True
        assert client.session.trust_env is False
