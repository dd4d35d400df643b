# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection and authentication options of every module (plugins/module_utils/module.py graph_argument_spec).
    DOCUMENTATION = r"""
options:
  tenant_id:
    description:
      - The Microsoft Entra tenant, as its GUID or one of its domain names.
      - Required with O(client_secret) and O(client_certificate_path).
      - If not set, the environment variable E(AZURE_TENANT_ID) is used.
    type: str
  client_id:
    description:
      - The application (client) ID of the app registration the modules authenticate as.
      - Required with O(client_secret) and O(client_certificate_path).
      - If not set, the environment variable E(AZURE_CLIENT_ID) is used.
    type: str
  client_secret:
    description:
      - A client secret of the application.
      - Exactly one of O(client_secret), O(client_certificate_path) and O(access_token) authenticates.
        When none of them is set, the first of the environment variables E(AZURE_CLIENT_SECRET),
        E(AZURE_CLIENT_CERTIFICATE_PATH) and E(GRAPH_ACCESS_TOKEN) that is set is used, in that order.
    type: str
  client_certificate_path:
    description:
      - Path to a PEM file holding a certificate registered on the application and its private key.
      - Used when O(client_secret) is not set; see O(client_secret) for the environment variable E(AZURE_CLIENT_CERTIFICATE_PATH).
    type: path
  client_certificate_password:
    description:
      - Password of the private key in O(client_certificate_path), when it is encrypted.
      - If not set, the environment variable E(AZURE_CLIENT_CERTIFICATE_PASSWORD) is used.
    type: str
  access_token:
    description:
      - An access token for Microsoft Graph acquired elsewhere (for example with C(az account get-access-token)).
      - It is used as is and cannot be refreshed; a run fails with a clear message when Graph rejects it.
      - See O(client_secret) for the environment variable E(GRAPH_ACCESS_TOKEN).
    type: str
  cloud:
    description:
      - The Microsoft cloud holding the tenant. V(public) is the global service (also used by M365 GCC),
        V(usgov) is US Government L4 (GCC High), V(usgov_dod) is US Government L5 (DoD), V(china) is operated by 21Vianet.
      - If not set, the environment variable E(AZURE_CLOUD) is used.
    type: str
    default: public
    choices: [public, usgov, usgov_dod, china]
  graph_url:
    description:
      - Root URL of Microsoft Graph, without a version path, overriding the one of O(cloud)
        (for example V(https://127.0.0.1:8443) to rehearse against the Graph emulator).
      - The token scope is this root followed by C(/.default).
      - Plain C(http://) is accepted only for loopback addresses, so a token never crosses a network unencrypted.
    type: str
  authority_url:
    description:
      - Root URL of the identity platform (the login host), without the tenant, overriding the one of O(cloud).
      - When set, msal's instance discovery is turned off, since the host is not one Microsoft knows.
    type: str
  ca_bundle:
    description:
      - PEM file with the certificate authorities trusted for Graph and the login host
        (a TLS-inspecting proxy, or the Graph emulator's CA).
      - If not set, the environment variable E(REQUESTS_CA_BUNDLE) is used; otherwise the CAs bundled with requests (certifi).
      - Proxies are taken from the usual environment variables (E(HTTPS_PROXY), E(NO_PROXY)).
    type: path
  timeout:
    description:
      - Seconds to wait for a connection and for each reply of Graph or the login host.
    type: int
    default: 30
  max_retry_time:
    description:
      - Total seconds one request (or one C($batch) item) may spend waiting for retries after throttling (HTTP 429)
        or transient failures. Retries wait exactly as long as Graph's C(Retry-After) asks, never less.
      - When a retry would exceed this budget, the module fails (or reports the item as failed) naming the request.
    type: int
    default: 300
  write_rate:
    description:
      - Most write requests per second this run sends to Graph, counting each C($batch) item. The default is Graph's
        documented write budget per application and tenant (3,000 writes per 150 seconds).
      - The client adapts below this ceiling on its own. When Graph answers HTTP 429, every write waits until the latest
        C(Retry-After) has passed (Graph charges refused requests too, so nothing is sent early), the rate drops to 70%,
        one C($batch) envelope is in flight at a time, and the retries go out at the paced rate, not in one wave. The rate
        climbs back to the ceiling over 10 seconds without throttling. When Graph's C(x-ms-throttle-limit-percentage)
        says the budget is nearly used (0.8 or more), the client stops bursting and sends one C($batch) envelope at a
        time, and when it says the budget is used up (1.0 or more) the client runs at 95% of the ceiling until it
        recovers.
      - Reads are not paced until Graph throttles one; the audit logs are paced at their documented 5 requests per 10
        seconds.
      - V(0) turns pacing off; a 429 still pauses every write until its C(Retry-After). Use it only against a Graph
        emulator without throttling.
    type: float
    default: 20
requirements:
  - python >= 3.10
  - msal >= 1.24.0
  - requests >= 2.25.0
notes:
  - The application needs Microsoft Graph B(application) permissions; each module lists the least privileged ones it uses.
  - Secrets and tokens are never returned, logged or included in error messages.
  - Every error from Graph is reported with its HTTP status, error code, message and C(request-id).
"""

    # Membership of the action group declared in meta/runtime.yml.
    ACTION_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/entraops.licensing.graph) in C(module_defaults) to set the connection options once for every module of the collection.
    support: full
    membership:
      - entraops.licensing.graph
"""

    # For *_info modules: they read, never change anything.
    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: N/A
    details: The module changes nothing, so there is nothing to diff.
"""

    # For modules that change the tenant and can predict the change.
    STATEFUL_MODULE = r"""
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; the result predicts what would change.
  diff_mode:
    support: full
"""
