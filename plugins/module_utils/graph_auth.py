# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Authentication of the Microsoft Graph client: where a token may go, and where it comes from.

The endpoints (national clouds or explicit roots; an access token never goes over plain http
except to a loopback address), then one token source per way to authenticate, each a small
class with ``get_token(force_refresh=False)`` and ``can_refresh``: a static access token, or
msal's client credentials (a secret or a certificate) behind one option set (``token_provider``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import json
import logging
import re
import threading

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported, keeps the import sanity test quiet
    from urlparse import urlsplit  # type: ignore

try:
    import msal
    import requests
except ImportError:  # the client refuses to start without them (graph.HAS_GRAPH_DEPS)
    msal = None
    requests = None

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import (
    GraphAuthError,
    GraphConfigError,
    _error_fields,
    _path_root,
    _short,
)

_LOGGER = logging.getLogger("ansible_collections.entraops.licensing.graph")


# Hosts per national cloud (Microsoft Graph "national cloud deployments").
CLOUDS = {
    "public": {"graph_url": "https://graph.microsoft.com", "authority_url": "https://login.microsoftonline.com"},
    "usgov": {"graph_url": "https://graph.microsoft.us", "authority_url": "https://login.microsoftonline.us"},
    "usgov_dod": {"graph_url": "https://dod-graph.microsoft.us", "authority_url": "https://login.microsoftonline.us"},
    "china": {"graph_url": "https://microsoftgraph.chinacloudapi.cn", "authority_url": "https://login.chinacloudapi.cn"},
}


def is_loopback_host(host):
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_root(url, option):
    """Validate a configured root URL (scheme, host, no version path) and drop the trailing slash."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise GraphConfigError("%s must be an https:// URL with a host name, got %r" % (option, url))
    if parts.query or parts.fragment:
        raise GraphConfigError("%s must not contain a query or fragment, got %r" % (option, url))
    if re.search(r"/(v1\.0|beta)$", parts.path):
        raise GraphConfigError("%s must be a root without a version path (like https://graph.microsoft.com), got %r" % (option, url))
    return url


def resolve_endpoints(cloud="public", graph_url=None, authority_url=None):
    """(graph_root, authority_root) for a cloud name, with explicit roots taking precedence."""
    cloud = cloud or "public"
    if cloud not in CLOUDS:
        raise GraphConfigError("cloud must be one of %s, got %r" % (", ".join(sorted(CLOUDS)), cloud))
    graph_root = _normalise_root(graph_url or CLOUDS[cloud]["graph_url"], "graph_url")
    authority_root = _normalise_root(authority_url or CLOUDS[cloud]["authority_url"], "authority_url")
    graph_parts = urlsplit(graph_root)
    if graph_parts.scheme == "http" and not is_loopback_host(graph_parts.hostname):
        raise GraphConfigError(
            "Refusing to send an access token over plain http:// to %s; use https:// (plain http is allowed only for loopback addresses)" % graph_parts.hostname
        )
    if urlsplit(authority_root).scheme != "https":
        raise GraphConfigError("authority_url must use https:// (msal refuses other schemes), got %r" % authority_root)
    return graph_root, authority_root


def load_certificate_credential(path, password=None):
    """An msal client_credential dict from a PEM file holding the certificate and its private key."""
    try:
        with open(path, "rb") as handle:
            pem = handle.read().decode("ascii", "replace")
    except (IOError, OSError) as exc:
        raise GraphConfigError("Cannot read client_certificate_path %s: %s" % (path, exc.strerror or exc))
    key_blocks = re.findall(r"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z0-9 ]+ )?PRIVATE KEY-----", pem, re.S)
    cert_blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if not key_blocks:
        raise GraphConfigError("client_certificate_path %s holds no PEM private key; expected the certificate and its private key in one PEM file" % path)
    if not cert_blocks:
        raise GraphConfigError("client_certificate_path %s holds no PEM certificate; expected the certificate and its private key in one PEM file" % path)
    if not HAS_CRYPTOGRAPHY:
        raise GraphConfigError("Certificate authentication needs the Python library cryptography (a dependency of msal)")
    password_bytes = password.encode("utf-8") if password else None
    try:
        private_key = load_pem_private_key(key_blocks[0].encode("ascii"), password=password_bytes)
    except TypeError:
        if password_bytes:
            raise GraphConfigError("client_certificate_password was given but the private key in %s is not encrypted" % path)
        raise GraphConfigError("The private key in %s is encrypted; set client_certificate_password" % path)
    except ValueError:
        raise GraphConfigError("Cannot load the private key in %s: wrong client_certificate_password or unsupported key format" % path)
    leaf = None
    for block in cert_blocks:
        cert = x509.load_pem_x509_certificate(block.encode("ascii"))
        if cert.public_key().public_numbers() == private_key.public_key().public_numbers():
            leaf = (block, cert)
            break
    if leaf is None:
        raise GraphConfigError("No certificate in %s matches its private key" % path)
    credential = {"private_key": key_blocks[0]}
    if password:
        credential["passphrase"] = password
    if _msal_version() >= (1, 35):
        # msal derives the SHA-256 thumbprint (PS256 assertion) from the certificate itself.
        credential["public_certificate"] = leaf[0]
    else:
        credential["thumbprint"] = leaf[1].fingerprint(hashes.SHA1()).hex().upper()  # nosec - x5t header, not a security hash
    return credential


def _msal_version():
    try:
        return tuple(int(part) for part in re.findall(r"\d+", msal.__version__)[:2])
    except (AttributeError, ValueError):
        return (0, 0)


def token_claims(token):
    """The payload claims of a JWT (its base64url JSON middle part) as a dict, or None when ``token`` is not one.

    No signature check and no exception that could carry the token: callers use the claims as hints only.
    """
    if not isinstance(token, str):
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = base64.urlsafe_b64decode((parts[1] + "=" * (-len(parts[1]) % 4)).encode("ascii"))
        claims = json.loads(payload.decode("utf-8"))
    except (ValueError, TypeError, UnicodeError):  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    return claims if isinstance(claims, dict) else None


class _StaticToken:
    """A token acquired elsewhere: used as is, cannot be refreshed."""

    can_refresh = False

    def __init__(self, token):
        self._token = token

    def get_token(self, force_refresh=False):
        return self._token


class _MsalToken:
    """Client-credentials token from msal, cached by msal for the run and refreshed when it expires."""

    can_refresh = True

    def __init__(self, client, authority, client_id, credential, scope, instance_discovery):
        self._client = client
        self._authority = authority
        self._client_id = client_id
        self._credential = credential
        self._scope = scope
        self._instance_discovery = instance_discovery
        self._app = None
        self._lock = threading.Lock()

    def _application(self):
        if self._app is None:
            kwargs = {"client_credential": self._credential, "authority": self._authority, "http_client": self._client.session}
            if not self._instance_discovery:
                kwargs["instance_discovery"] = False
            try:
                # The constructor already fetches the OpenID configuration.
                self._app = msal.ConfidentialClientApplication(self._client_id, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise GraphAuthError(
                    "TLS verification failed for the authority %s: %s; set ca_bundle to the CA that signs it" % (_path_root(self._authority), _short(exc))
                )
            except requests.exceptions.RequestException as exc:
                raise GraphAuthError("Cannot reach the authority %s: %s" % (_path_root(self._authority), _short(exc)))
            except ValueError as exc:
                raise GraphAuthError("The authority %s was refused: %s" % (self._authority, _short(exc)))
        return self._app

    def get_token(self, force_refresh=False):
        with self._lock:
            app = self._application()
            if force_refresh:
                cache = app.token_cache
                for entry in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
            try:
                result = app.acquire_token_for_client(scopes=[self._scope])
            except requests.exceptions.RequestException as exc:
                raise GraphAuthError("Cannot reach the token endpoint of %s: %s" % (self._authority, _short(exc)))
            except ValueError as exc:
                raise GraphAuthError("Token request to %s failed: %s" % (self._authority, _short(exc)))
        if not result or "access_token" not in result:
            code, message, trace_id, correlation_id = _error_fields(result or {})
            raise GraphAuthError(
                "Could not acquire a token from %s for client %s: %s%s"
                % (self._authority, self._client_id, code or "unknown_error", ": %s" % message if message else ""),
                code=code,
                request_id=trace_id,
                client_request_id=correlation_id,
            )
        if result.get("token_source") != "cache":
            self._client.stats.add("token_acquisitions")
            _LOGGER.debug("acquired a new access token from %s (expires in %ss)", self._authority, result.get("expires_in"))
        return result["access_token"]


def token_provider(client, tenant_id, client_id, client_secret, certificate_path, certificate_password, access_token, instance_discovery):
    """The token source for ``client``: exactly one of client_secret, client_certificate_path or access_token."""
    given = [name for name, value in (("client_secret", client_secret), ("client_certificate_path", certificate_path), ("access_token", access_token)) if value]
    if len(given) != 1:
        raise GraphConfigError(
            "Exactly one of client_secret, client_certificate_path or access_token is needed, got %s" % (", ".join(given) if given else "none")
        )
    if access_token:
        return _StaticToken(access_token)
    missing = [name for name, value in (("tenant_id", tenant_id), ("client_id", client_id)) if not value]
    if missing:
        raise GraphConfigError("%s %s required with %s" % (" and ".join(missing), "is" if len(missing) == 1 else "are", given[0]))
    if not re.match(r"^[A-Za-z0-9.\-_]+$", tenant_id):
        raise GraphConfigError("tenant_id must be a tenant GUID or domain name, got %r" % tenant_id)
    credential = client_secret if client_secret else load_certificate_credential(certificate_path, certificate_password)
    authority = "%s/%s" % (client.authority_root, tenant_id)
    return _MsalToken(client, authority, client_id, credential, client.scope, instance_discovery)
