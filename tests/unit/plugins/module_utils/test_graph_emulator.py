# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Graph client end to end: real msal, real HTTPS, against the Graph emulator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import logging
import time

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.graph import (
    GraphAuthError,
    GraphError,
    GraphOutcomeUnknown,
    GraphRetryBudgetExceeded,
)

NOOP_LICENSE_CHANGE = {"addLicenses": [], "removeLicenses": []}


def user_ids(client, count):
    ids = []
    for user in client.get_all("/users", params={"$select": "id", "$top": 999}):
        ids.append(user["id"])
        if len(ids) == count:
            break
    return ids


def log_for(emulator, method, path_end, in_batch=None):
    return [
        entry
        for entry in emulator.request_log()
        if entry["method"] == method and entry["path"].endswith(path_end) and (in_batch is None or entry["in_batch"] == in_batch)
    ]


class TestAuthentication:
    def test_secret(self, emulator, client):
        skus = client.get("/subscribedSkus")["value"]
        assert skus and all("skuId" in sku for sku in skus)
        client.get("/subscribedSkus")
        # msal's cache serves the second request: one token for the run.
        assert client.statistics()["token_acquisitions"] == 1
        assert client.statistics()["requests"] == 2

    @pytest.mark.parametrize("encrypted", [False, True])
    def test_certificate(self, emulator, make_client, certificate_files, encrypted):
        app = emulator.add_app(permissions=["Organization.Read.All"], certificate_pem=certificate_files["certificate_pem"])
        client = make_client(
            client_id=app["clientId"],
            client_secret=None,
            client_certificate_path=certificate_files["encrypted" if encrypted else "plain"],
            client_certificate_password=certificate_files["password"] if encrypted else None,
        )
        assert client.get("/subscribedSkus")["value"]
        assert client.statistics()["token_acquisitions"] == 1

    def test_certificate_not_registered(self, emulator, make_client, certificate_files):
        app = emulator.add_app(permissions=["Organization.Read.All"], secret="unused-secret-value")
        client = make_client(client_id=app["clientId"], client_secret=None, client_certificate_path=certificate_files["plain"])
        with pytest.raises(GraphAuthError, match="Could not acquire a token .* invalid_client"):
            client.get("/subscribedSkus")

    def test_wrong_secret(self, emulator, make_client):
        client = make_client(client_secret="definitely-wrong-secret")
        with pytest.raises(GraphAuthError) as caught:
            client.get("/subscribedSkus")
        assert "invalid_client" in str(caught.value) and "AADSTS" in str(caught.value)
        assert "definitely-wrong-secret" not in str(caught.value)

    def test_access_token(self, emulator, make_client):
        token = emulator.issue_token()
        client = make_client(client_secret=None, tenant_id=None, client_id=None, access_token=token)
        assert client.get("/subscribedSkus")["value"]
        assert client.statistics()["token_acquisitions"] == 0

    def test_expired_access_token_fails_clearly(self, emulator, make_client):
        token = emulator.issue_token(expires_in=-60)
        client = make_client(client_secret=None, access_token=token)
        with pytest.raises(GraphAuthError) as caught:
            client.get("/subscribedSkus")
        text = str(caught.value)
        assert text.startswith("Graph returned 401 InvalidAuthenticationToken for GET /v1.0/subscribedSkus")
        assert "cannot be refreshed" in text
        assert token not in text
        assert len(log_for(emulator, "GET", "/subscribedSkus")) == 1

    def test_token_expiring_mid_run_is_replaced(self, emulator, client):
        emulator.configure(token_lifetime=1)
        try:
            first = client.get("/subscribedSkus")["value"]
            time.sleep(1.2)  # the first token has now expired on the emulator's side
            second = client.get("/subscribedSkus")["value"]
        finally:
            emulator.configure(token_lifetime=3599)
        assert first == second
        # Whole-second expiry can also reject a token right after issue: the 401 path then refreshes it.
        assert client.statistics()["token_acquisitions"] >= 2
        assert log_for(emulator, "GET", "/subscribedSkus")[-1]["status"] == 200

    def test_401_forces_one_refresh(self, emulator, client):
        client.get("/subscribedSkus")
        emulator.add_fault(method="GET", route="/subscribedSkus$", status=401, count=1)
        assert client.get("/subscribedSkus")["value"]
        assert client.statistics()["token_acquisitions"] == 2
        assert [entry["status"] for entry in log_for(emulator, "GET", "/subscribedSkus")] == [200, 401, 200]

    def test_401_after_refresh_fails_clearly(self, emulator, client):
        emulator.add_fault(method="GET", route="/subscribedSkus$", status=401, count=2)
        with pytest.raises(GraphAuthError, match="a freshly acquired token was rejected as well"):
            client.get("/subscribedSkus")
        assert len(log_for(emulator, "GET", "/subscribedSkus")) == 2

    def test_403_is_mapped(self, emulator, make_client):
        app = emulator.add_app(permissions=["User.Read.All"], secret="reader-secret-123")
        client = make_client(client_id=app["clientId"], client_secret="reader-secret-123")
        with pytest.raises(GraphError) as caught:
            client.get("/subscribedSkus")
        error = caught.value
        assert (error.status, error.code, error.method, error.path) == (403, "Authorization_RequestDenied", "GET", "/v1.0/subscribedSkus")
        assert str(error).startswith(
            "Graph returned 403 Authorization_RequestDenied for GET /v1.0/subscribedSkus: Insufficient privileges to complete the operation. (request-id "
        )
        assert error.request_id and error.client_request_id
        assert error.request_id == log_for(emulator, "GET", "/subscribedSkus")[0]["request_id"]


class TestTransport:
    def test_ca_bundle_wins_over_environment(self, emulator, make_client, monkeypatch, certificate_files):
        # A CA that did not sign the emulator's certificate: requests would use it if trust_env were on.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate_files["plain"])
        monkeypatch.setenv("CURL_CA_BUNDLE", certificate_files["plain"])
        client = make_client()
        assert client.get("/subscribedSkus")["value"]

    def test_without_ca_bundle_tls_fails_clearly(self, emulator, make_client):
        client = make_client(ca_bundle=None)
        with pytest.raises(GraphError, match="TLS verification failed .* set ca_bundle"):
            client.get("/subscribedSkus")

    def test_fresh_client_request_id_per_request(self, emulator, client):
        client.get("/subscribedSkus")
        client.get("/subscribedSkus")
        ids = [entry["client_request_id"] for entry in log_for(emulator, "GET", "/subscribedSkus")]
        assert len(ids) == 2 and len(set(ids)) == 2 and all(ids)


class TestPaging:
    def test_pages_are_lazy_and_counted(self, emulator, client):
        emulator.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
        pages = client.iter_pages("/users", params={"$select": "id,userPrincipalName", "$top": 25})
        assert inspect.isgenerator(pages)
        first = next(pages)
        assert len(first["value"]) == 25
        assert len(log_for(emulator, "GET", "/users")) == 1  # nothing fetched ahead
        rest = list(pages)
        total = emulator.user_count()
        assert 1 + len(rest) == -(-total // 25)
        assert len(log_for(emulator, "GET", "/users")) == 1 + len(rest)
        ids = [user["id"] for page in [first] + rest for user in page["value"]]
        assert len(ids) == len(set(ids)) == total

    def test_get_all_is_a_generator_over_every_item(self, emulator, client):
        items = client.get_all("/users", params={"$select": "id", "$top": 50})
        assert inspect.isgenerator(items)
        assert sum(1 for dummy in items) == emulator.user_count()

    def test_consistency_level_goes_to_every_page(self, emulator, client):
        params = {"$filter": "userPrincipalName ne 'nobody@example.invalid'", "$count": "true", "$top": 30, "$select": "id"}
        pages = list(client.iter_pages("/users", params=params, headers={"ConsistencyLevel": "eventual"}))
        assert len(pages) > 2
        assert pages[0]["@odata.count"] == emulator.user_count()
        assert all(entry["status"] == 200 for entry in log_for(emulator, "GET", "/users"))


class TestRetries:
    def test_429_storm_honours_retry_after_exactly(self, emulator, client):
        emulator.add_fault(method="GET", route="/subscribedSkus$", in_batch=False, status=429, retry_after=1, count=2)
        started = time.monotonic()
        assert client.get("/subscribedSkus")["value"]
        elapsed = time.monotonic() - started
        assert elapsed >= 2.0
        assert emulator.stats()["early_retries"] == 0
        stats = client.statistics()
        assert stats["throttled"] == 2 and stats["retries"] == 2 and stats["seconds_waited"] > 1.9
        assert [entry["status"] for entry in log_for(emulator, "GET", "/subscribedSkus")] == [429, 429, 200]

    def test_retry_budget_is_respected(self, emulator, make_client):
        # Its own app: the emulator keeps the last Retry-After window open per app after this test gives up.
        app = emulator.add_app(permissions=["Organization.Read.All"], secret="budget-test-secret")
        client = make_client(client_id=app["clientId"], client_secret="budget-test-secret", max_retry_time=2)
        emulator.add_fault(method="GET", route="/subscribedSkus$", status=429, retry_after=1, count=None)
        started = time.monotonic()
        with pytest.raises(GraphRetryBudgetExceeded) as caught:
            client.get("/subscribedSkus")
        elapsed = time.monotonic() - started
        assert elapsed < 3.0
        assert "max_retry_time of 2s" in str(caught.value) and caught.value.status == 429
        assert emulator.stats()["early_retries"] == 0
        assert len(log_for(emulator, "GET", "/subscribedSkus")) <= 3

    def test_write_504_is_unknown_and_not_resent(self, emulator, client):
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", status=504, count=None)
        with pytest.raises(GraphOutcomeUnknown) as caught:
            client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE)
        assert caught.value.status == 504
        assert "outcome unknown" in str(caught.value)
        assert len(log_for(emulator, "POST", "/assignLicense")) == 1

    def test_write_429_is_resent(self, emulator, client):
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", status=429, retry_after=1, count=1)
        response = client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE)
        assert response.status == 200
        assert [entry["status"] for entry in log_for(emulator, "POST", "/assignLicense")] == [429, 200]
        assert emulator.stats()["early_retries"] == 0

    def test_write_503_with_retry_after_is_resent(self, emulator, client):
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", status=503, retry_after=1, count=1)
        assert client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE).status == 200
        assert [entry["status"] for entry in log_for(emulator, "POST", "/assignLicense")] == [503, 200]

    def test_idempotent_write_is_resent_after_504(self, emulator, client):
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", status=504, count=1)
        assert client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE, idempotent=True).status == 200
        assert [entry["status"] for entry in log_for(emulator, "POST", "/assignLicense")] == [504, 200]

    def test_dropped_read_is_retried(self, emulator, client):
        emulator.add_fault(method="GET", route="/subscribedSkus$", drop=True, count=1)
        assert client.get("/subscribedSkus")["value"]
        statuses = [entry["status"] for entry in log_for(emulator, "GET", "/subscribedSkus")]
        assert statuses == [0, 200], statuses
        assert client.statistics()["retries"] == 1, client.statistics()

    def test_dropped_write_is_unknown(self, emulator, client):
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", drop=True, apply_then=True, count=1)
        with pytest.raises(GraphOutcomeUnknown, match="outcome unknown"):
            client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE)
        assert len(log_for(emulator, "POST", "/assignLicense")) == 1

    def test_read_timeout_on_write_is_unknown(self, emulator, make_client):
        client = make_client(timeout=1)
        user_id = user_ids(client, 1)[0]
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/assignLicense$", delay_ms=1500, count=1)
        with pytest.raises(GraphOutcomeUnknown, match="no reply .* within the timeout"):
            client.post("/users/%s/assignLicense" % user_id, NOOP_LICENSE_CHANGE)


class TestBatch:
    def test_chunks_of_twenty_in_input_order(self, emulator, client):
        ids = user_ids(client, 45)
        emulator.reset_stats()
        results = client.batch([{"method": "GET", "url": "/users/%s?$select=id" % user_id} for user_id in ids])
        assert [result.status for result in results] == [200] * 45
        assert [result.body["id"] for result in results] == ids
        assert [result.id for result in results] == [str(number) for number in range(1, 46)]
        assert len(log_for(emulator, "POST", "/$batch", in_batch=False)) == 3
        assert sum(1 for entry in emulator.request_log() if entry["in_batch"]) == 45
        assert client.statistics()["batch_requests"] == 3

    def test_throttled_item_is_retried_after_its_own_retry_after(self, emulator, client):
        ids = user_ids(client, 5)
        emulator.reset_stats()
        emulator.add_fault(method="GET", route="/users/%s$" % ids[2], in_batch=True, status=429, retry_after=1, count=1)
        started = time.monotonic()
        results = client.batch([{"method": "GET", "url": "/users/%s" % user_id} for user_id in ids])
        assert time.monotonic() - started >= 1.0
        assert all(result.ok for result in results)
        assert [result.attempts for result in results] == [1, 1, 2, 1, 1]
        assert emulator.stats()["early_retries"] == 0
        item_log = [entry["status"] for entry in log_for(emulator, "GET", "/users/%s" % ids[2], in_batch=True)]
        assert item_log == [429, 200]
        assert len(log_for(emulator, "POST", "/$batch", in_batch=False)) == 2

    def test_write_item_5xx_is_unknown_and_not_resent(self, emulator, client):
        ids = user_ids(client, 3)
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/users/%s/assignLicense$" % ids[1], in_batch=True, status=504, count=None)
        results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user_id, "body": NOOP_LICENSE_CHANGE} for user_id in ids])
        assert [result.ok for result in results] == [True, False, True]
        assert results[1].outcome_unknown and results[1].status == 504
        assert isinstance(results[1].error(), GraphOutcomeUnknown)
        assert len(log_for(emulator, "POST", "/users/%s/assignLicense" % ids[1], in_batch=True)) == 1
        assert client.statistics()["writes"] == 3

    def test_write_item_429_is_resent(self, emulator, client):
        ids = user_ids(client, 2)
        emulator.reset_stats()
        emulator.add_fault(method="POST", route="/users/%s/assignLicense$" % ids[0], in_batch=True, status=429, retry_after=1, count=1)
        results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user_id, "body": NOOP_LICENSE_CHANGE} for user_id in ids])
        assert all(result.ok for result in results)
        assert [entry["status"] for entry in log_for(emulator, "POST", "/users/%s/assignLicense" % ids[0], in_batch=True)] == [429, 200]
        assert emulator.stats()["early_retries"] == 0

    def test_outer_batch_timeout_marks_writes_unknown_and_retries_reads(self, emulator, make_client):
        # A slow item makes the whole $batch time out on the client: its write may have been
        # applied, its read is safe to repeat.
        client = make_client(timeout=1, backoff_base=0.01, backoff_cap=0.05)
        ids = user_ids(client, 2)
        emulator.reset_stats()
        # Items in request order, so that the write has run when the slow read makes the envelope time out
        # (with Graph's any-order execution the write could also run after the client gave up).
        emulator.configure(batch_shuffle=False)
        emulator.add_fault(method="GET", route="/users/%s$" % ids[1], in_batch=True, delay_ms=1500, count=1)
        results = client.batch(
            [{"method": "POST", "url": "/users/%s/assignLicense" % ids[0], "body": NOOP_LICENSE_CHANGE}, {"method": "GET", "url": "/users/%s" % ids[1]}]
        )
        assert results[0].outcome_unknown and not results[0].ok and results[0].status is None
        assert "outcome unknown" in str(results[0].error())
        assert results[1].ok and results[1].attempts == 2
        assert len(log_for(emulator, "POST", "/users/%s/assignLicense" % ids[0], in_batch=True)) == 1
        # The timed-out $batch is still running on the emulator: let it finish so that its log
        # entries do not land in the next test's request log.
        deadline = time.monotonic() + 5
        while len(log_for(emulator, "POST", "/$batch", in_batch=False)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(log_for(emulator, "POST", "/$batch", in_batch=False)) == 2

    def test_outer_batch_429_is_resent_after_exactly_retry_after(self, emulator, client):
        ids = user_ids(client, 3)
        emulator.reset_stats()
        emulator.add_fault(method="POST", route=r"/\$batch$", in_batch=False, status=429, retry_after=1, count=1)
        started = time.monotonic()
        results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user_id, "body": NOOP_LICENSE_CHANGE} for user_id in ids])
        elapsed = time.monotonic() - started
        assert all(result.ok for result in results)
        assert [result.attempts for result in results] == [1, 1, 1]  # the envelope was re-sent, not the items
        assert [entry["status"] for entry in log_for(emulator, "POST", "/$batch", in_batch=False)] == [429, 200]
        for user_id in ids:
            assert [entry["status"] for entry in log_for(emulator, "POST", "/users/%s/assignLicense" % user_id, in_batch=True)] == [200]
        assert emulator.stats()["early_retries"] == 0
        stats = client.statistics()
        assert stats["throttled"] == 1 and stats["retries"] == 1
        # Retry-After is honoured from the 429's arrival (the emulator counts an earlier resend as an early retry, asserted 0
        # above): the client's own sleep starts a few milliseconds later, so it may be that much shorter than 1 s.
        assert 0.95 <= stats["seconds_waited"] < 1.3 and 1.0 <= elapsed < 2.0

    def test_outer_batch_dropped_after_apply_leaves_writes_unknown_and_not_resent(self, emulator, client):
        ids = user_ids(client, 3)
        emulator.reset_stats()
        emulator.add_fault(method="POST", route=r"/\$batch$", in_batch=False, apply_then=True, drop=True, count=1)
        results = client.batch(
            [
                {"method": "POST", "url": "/users/%s/assignLicense" % ids[0], "body": NOOP_LICENSE_CHANGE},
                {"method": "POST", "url": "/users/%s/assignLicense" % ids[1], "body": NOOP_LICENSE_CHANGE},
                {"method": "GET", "url": "/users/%s" % ids[2]},
            ]
        )
        for result in results[:2]:
            assert result.outcome_unknown and not result.ok and result.status is None and result.attempts == 1
            assert isinstance(result.error(), GraphOutcomeUnknown) and "outcome unknown" in str(result.error())
        assert results[2].ok and results[2].attempts == 2  # the read is safe to repeat
        for user_id in ids[:2]:
            # applied once by the dropped envelope, never re-sent
            assert [entry["status"] for entry in log_for(emulator, "POST", "/users/%s/assignLicense" % user_id, in_batch=True)] == [200]
        assert [entry["status"] for entry in log_for(emulator, "GET", "/users/%s" % ids[2], in_batch=True)] == [200, 200]
        assert [entry["status"] for entry in log_for(emulator, "POST", "/$batch", in_batch=False)] == [0, 200]
        assert client.statistics()["outcome_unknown"] == 2

    def test_write_rate_paces_batch_items(self, emulator, make_client):
        client = make_client(write_rate=20)
        ids = user_ids(client, 30)
        started = time.monotonic()
        results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user_id, "body": NOOP_LICENSE_CHANGE} for user_id in ids])
        elapsed = time.monotonic() - started
        assert all(result.ok for result in results)
        stats = client.statistics()
        # A burst of 20 goes at once; the other 10 wait for the bucket to refill at 20 per second.
        assert stats["writes"] == 30 and stats["batch_requests"] == 2
        assert 0.45 <= stats["seconds_paced"] <= 0.6
        assert elapsed >= 0.45


class TestNoSecretsLeak:
    def test_secret_and_token_never_in_errors_or_logs(self, emulator, make_client, caplog):
        caplog.set_level(logging.DEBUG)
        token = emulator.issue_token(expires_in=-60)
        texts = []
        good = make_client()
        good.get("/subscribedSkus")
        live_token = good._token_provider.get_token()
        for kwargs in ({"client_secret": "wrong-" + emulator.client_secret}, {"client_secret": None, "access_token": token}):
            with pytest.raises(GraphError) as caught:
                make_client(**kwargs).get("/subscribedSkus")
            texts.append(str(caught.value))
            texts.append(repr(caught.value.to_dict()))
        emulator.add_fault(method="GET", route="/subscribedSkus$", status=403, count=1)
        with pytest.raises(GraphError) as caught:
            good.get("/subscribedSkus")
        texts.append(str(caught.value))
        everything = "\n".join(texts) + "\n" + caplog.text
        assert caplog.text  # debug logging really was captured
        for secret in (emulator.client_secret, token, live_token):
            assert secret not in everything
