# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""GraphModule: option spec, credential resolution, secrets masking, failure reporting (no HTTP)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest.mock import patch

import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.entraops.licensing.plugins.doc_fragments.graph import ModuleDocFragment
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError, GraphOutcomeUnknown
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule, graph_argument_spec
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import (
    AnsibleFailJson,
    _fail_json,
    set_module_args,
)

VARIABLES = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "GRAPH_ACCESS_TOKEN",
    "AZURE_CLOUD",
    "REQUESTS_CA_BUNDLE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def build(args):
    with set_module_args(args):
        with patch.object(basic.AnsibleModule, "fail_json", _fail_json):
            return GraphModule(argument_spec=dict(extra=dict(type="str")))


def build_failure(args):
    with pytest.raises(AnsibleFailJson) as caught:
        build(args)
    return caught.value.result["msg"]


def test_spec_and_doc_fragment_agree():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = graph_argument_spec()
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert sorted(documented[name].get("choices") or []) == sorted(option.get("choices") or []), name


def test_every_secret_option_is_no_log():
    spec = graph_argument_spec()
    assert [name for name, option in spec.items() if option.get("no_log")] == ["client_secret", "client_certificate_password", "access_token"]


def test_secret_from_environment_is_masked(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "secret-from-the-environment")
    module = build({})
    assert module.params["client_secret"] == "secret-from-the-environment"
    assert module.credential_source == "AZURE_CLIENT_SECRET"
    assert "secret-from-the-environment" in module.module.no_log_values


def test_environment_order_secret_then_certificate_then_token(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", "~/cert.pem")
    monkeypatch.setenv("GRAPH_ACCESS_TOKEN", "token-from-the-environment")
    module = build({})
    assert module.credential_source == "AZURE_CLIENT_CERTIFICATE_PATH"
    assert module.params["client_certificate_path"].endswith("/cert.pem") and "~" not in module.params["client_certificate_path"]
    assert module.params["access_token"] is None


def test_explicit_credential_ignores_environment(monkeypatch):
    monkeypatch.setenv("GRAPH_ACCESS_TOKEN", "token-from-the-environment")
    module = build({"tenant_id": "t", "client_id": "c", "client_secret": "explicit"})
    assert module.credential_source == "client_secret"
    assert module.params["access_token"] is None


def test_missing_client_id_names_the_variable():
    assert build_failure({"tenant_id": "t", "client_secret": "s"}) == "client_id (or AZURE_CLIENT_ID) is required with client_secret"


def test_missing_tenant_and_client_with_environment_credential(monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s")
    assert build_failure({}) == ("tenant_id (or AZURE_TENANT_ID) and client_id (or AZURE_CLIENT_ID) are required with client_secret from AZURE_CLIENT_SECRET")


def test_no_credentials():
    assert build_failure({"tenant_id": "t", "client_id": "c"}).startswith("No Graph credentials")


@pytest.mark.parametrize("option, value", [("timeout", 0), ("max_retry_time", -1)])
def test_non_positive_durations_are_refused(option, value):
    assert build_failure({"access_token": "a", option: value}) == "%s must be a positive number of seconds, got %s" % (option, value)


def test_negative_write_rate_is_refused():
    assert build_failure({"access_token": "a", "write_rate": -2}).startswith("write_rate must be 0 (no pacing)")


def test_unknown_cloud_is_refused():
    assert "value of cloud must be one of: china, public, usgov, usgov_dod, got: germany" in build_failure({"access_token": "a", "cloud": "germany"})


def test_client_is_built_lazily_with_the_options():
    module = build({"access_token": "a", "cloud": "usgov", "timeout": 5, "write_rate": 2.5})
    assert module._client is None and module.graph_statistics() is None
    client = module.client
    assert client is module.client
    assert client.api_root == "https://graph.microsoft.us/v1.0"
    assert client.timeout == 5 and client.pacer.rate == 2.5
    assert module.graph_statistics()["requests"] == 0


def test_bad_graph_url_fails_when_the_client_is_built():
    module = build({"access_token": "a", "graph_url": "http://graph.example.com"})
    with patch.object(basic.AnsibleModule, "fail_json", _fail_json):
        with pytest.raises(AnsibleFailJson) as caught:
            module.client  # pylint: disable=pointless-statement
    assert "Refusing to send an access token over plain http://" in caught.value.result["msg"]
    assert caught.value.result["graph_error"]["status"] is None


def test_fail_from_graph_error_carries_ids_and_no_traceback():
    module = build({"access_token": "a"})
    error = GraphOutcomeUnknown(
        "server error (outcome unknown)",
        status=504,
        code="GatewayTimeout",
        request_id="r",
        client_request_id="c",
        method="POST",
        path="/v1.0/users/u/assignLicense",
    )
    with patch.object(basic.AnsibleModule, "fail_json", _fail_json):
        with pytest.raises(AnsibleFailJson) as caught:
            module.fail_from_graph_error(error, msg="Cannot remove the direct license", user="u")
    result = caught.value.result
    assert result["msg"] == (
        "Cannot remove the direct license: Graph returned 504 GatewayTimeout for POST /v1.0/users/u/assignLicense: "
        "server error (outcome unknown) (request-id r, client-request-id c)"
    )
    assert result["graph_error"]["request_id"] == "r" and result["user"] == "u"
    assert "exception" not in result


def test_unexpected_exception_keeps_its_traceback():
    module = build({"access_token": "a"})
    with patch.object(basic.AnsibleModule, "fail_json", _fail_json):
        with pytest.raises(AnsibleFailJson) as caught:
            try:
                raise KeyError("servicePlans")
            except KeyError as exc:
                module.fail_from_graph_error(exc, msg="Unexpected reply")
    assert caught.value.result["msg"] == "Unexpected reply: 'servicePlans'"
    assert "KeyError" in caught.value.result["exception"]
    assert isinstance(GraphError("x"), Exception)
