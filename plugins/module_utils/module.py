# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Base for every module of the collection: one connection option set, one client, one way to fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.entraops.licensing.plugins.module_utils.graph import (
    CLOUDS,
    GRAPH_DEPS,
    GRAPH_DEPS_IMPORT_ERROR,
    HAS_GRAPH_DEPS,
    GraphClient,
    GraphError,
)

# Credentials are taken from the environment only when none is given as an option, so a
# variable left in the environment never conflicts with what a play sets explicitly.
# The order is azure-identity's EnvironmentCredential order (secret, then certificate).
CREDENTIAL_ENVIRONMENT = (
    ("client_secret", "AZURE_CLIENT_SECRET"),
    ("client_certificate_path", "AZURE_CLIENT_CERTIFICATE_PATH"),
    ("access_token", "GRAPH_ACCESS_TOKEN"),
)
CREDENTIAL_OPTIONS = tuple(name for name, dummy in CREDENTIAL_ENVIRONMENT)


def graph_argument_spec():
    """The connection options shared by every module (documented in the entraops.licensing.graph doc fragment)."""
    return dict(
        tenant_id=dict(type="str", fallback=(env_fallback, ["AZURE_TENANT_ID"])),
        client_id=dict(type="str", fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
        client_secret=dict(type="str", no_log=True),
        client_certificate_path=dict(type="path"),
        client_certificate_password=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_CERTIFICATE_PASSWORD"])),
        access_token=dict(type="str", no_log=True),
        cloud=dict(type="str", default="public", choices=sorted(CLOUDS), fallback=(env_fallback, ["AZURE_CLOUD"])),
        graph_url=dict(type="str"),
        authority_url=dict(type="str"),
        ca_bundle=dict(type="path", fallback=(env_fallback, ["REQUESTS_CA_BUNDLE"])),
        timeout=dict(type="int", default=30),
        max_retry_time=dict(type="int", default=300),
        write_rate=dict(type="float", default=20),
    )


SWITCH_INTERVAL = 0.0005


class GraphModule:
    """AnsibleModule plus the Graph connection: option spec, credential checks, lazy client, error reporting."""

    def __init__(self, argument_spec=None, supports_check_mode=True, mutually_exclusive=None, **kwargs):
        spec = graph_argument_spec()
        spec.update(argument_spec or {})
        exclusive = [list(CREDENTIAL_OPTIONS)] + list(mutually_exclusive or [])
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, mutually_exclusive=exclusive, **kwargs)
        self.params = self.module.params
        self._client = None
        self.credential_source = None
        # Pages arrive in a background thread while this one works on the previous page. With the
        # interpreter's 5 ms switch interval the paging thread waits up to 5 ms for every hand-off of
        # the GIL while reading a page (1 MB in many reads): about 6 % more time per page of 999 users
        # at 100 ms latency (benchmarks/README.md). This process is the module's own.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        if not HAS_GRAPH_DEPS:
            self.module.fail_json(msg=missing_required_lib(GRAPH_DEPS), exception=GRAPH_DEPS_IMPORT_ERROR)
        self._resolve_credentials()
        self._check_connection_options()

    # Delegation to the wrapped AnsibleModule.
    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        return self.module._diff

    def warn(self, message):
        self.module.warn(message)

    def exit_json(self, **result):
        self.close()
        self.module.exit_json(**result)

    def fail_json(self, msg, **result):
        self.close()
        self.module.fail_json(msg=msg, **result)

    def close(self):
        """Close the client's connections now, not at some later garbage collection (a caller may run many modules in one process)."""
        if self._client is not None:
            self._client.close()

    def _resolve_credentials(self):
        given = [name for name in CREDENTIAL_OPTIONS if self.params.get(name)]
        if given:
            self.credential_source = given[0]
            return
        for name, variable in CREDENTIAL_ENVIRONMENT:
            value = os.environ.get(variable)
            if value:
                if name == "client_certificate_path":
                    value = os.path.expanduser(os.path.expandvars(value))
                else:
                    self.module.no_log_values.add(value)
                self.params[name] = value
                self.credential_source = variable
                return

    def _check_connection_options(self):
        for option in ("timeout", "max_retry_time"):
            if self.params[option] is not None and self.params[option] <= 0:
                self.fail_json(msg="%s must be a positive number of seconds, got %s" % (option, self.params[option]))
        if self.params["write_rate"] is not None and self.params["write_rate"] < 0:
            self.fail_json(
                msg="write_rate must be 0 (no pacing) or a positive number of writes per second (Graph's budget: 20), got %s" % self.params["write_rate"]
            )
        credential = next((name for name in CREDENTIAL_OPTIONS if self.params.get(name)), None)
        if credential is None:
            self.fail_json(
                msg="No Graph credentials: set one of client_secret, client_certificate_path or access_token "
                "(or one of the environment variables %s)" % ", ".join(env for dummy, env in CREDENTIAL_ENVIRONMENT)
            )
        if credential == "access_token":
            return
        missing = [
            "%s (or %s)" % (name, env) for name, env in (("tenant_id", "AZURE_TENANT_ID"), ("client_id", "AZURE_CLIENT_ID")) if not self.params.get(name)
        ]
        if missing:
            source = credential if credential == self.credential_source else "%s from %s" % (credential, self.credential_source)
            self.fail_json(msg="%s %s required with %s" % (" and ".join(missing), "is" if len(missing) == 1 else "are", source))

    @property
    def client(self):
        """The GraphClient, built on first use (msal contacts the authority only when a token is needed)."""
        if self._client is None:
            try:
                self._client = GraphClient(
                    tenant_id=self.params.get("tenant_id"),
                    client_id=self.params.get("client_id"),
                    client_secret=self.params.get("client_secret"),
                    client_certificate_path=self.params.get("client_certificate_path"),
                    client_certificate_password=self.params.get("client_certificate_password"),
                    access_token=self.params.get("access_token"),
                    cloud=self.params.get("cloud"),
                    graph_url=self.params.get("graph_url"),
                    authority_url=self.params.get("authority_url"),
                    ca_bundle=self.params.get("ca_bundle"),
                    timeout=self.params.get("timeout"),
                    max_retry_time=self.params.get("max_retry_time"),
                    write_rate=self.params.get("write_rate"),
                )
            except GraphError as exc:
                self.fail_from_graph_error(exc)
        return self._client

    def graph_statistics(self):
        """Request counters of this run (requests, retries, throttled, seconds_waited, ...); zeros when nothing was sent."""
        if self._client is None:
            return None
        return self._client.statistics()

    def fail_from_graph_error(self, exc, msg=None, **result):
        """Fail with Graph's status, code, message and request ids; no traceback for an expected error."""
        if not isinstance(exc, GraphError):
            self.fail_json(msg="%s%s" % ("%s: " % msg if msg else "", exc), exception=traceback.format_exc(), **result)
        text = str(exc)
        if msg:
            text = "%s: %s" % (msg, text)
        result["graph_error"] = exc.to_dict()
        self.fail_json(msg=text, **result)
