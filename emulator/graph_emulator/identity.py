"""The emulated Microsoft identity platform: discovery, client-credentials tokens, token checks.

It also holds the one table of which application permission each Graph route needs
(``ROUTE_PERMISSIONS``), so the server enforces and the README documents the same thing.
"""

import base64
import hashlib
import time
import uuid
from datetime import datetime, timezone

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .engine import GraphError
from .tenant import COLLECTION_PERMISSIONS

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TOKEN_LIFETIME = 3599

# Route template -> (least privileged application permission, higher ones also accepted).
# Source: the permission sections of Microsoft's v1.0 API pages as summarised in
# reference/graph-api.md; where the reference is silent the current Learn page's
# application column was used. `auditLogs` needs BOTH permissions (see ALL_OF_PERMISSIONS).
ROUTE_PERMISSIONS = {
    "GET /v1.0/users": ("User.Read.All", ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
    "GET /v1.0/users/$count": ("User.Read.All", ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
    "GET /v1.0/users/{id}": ("User.Read.All", ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
    "POST /v1.0/users": ("User.ReadWrite.All", ("Directory.ReadWrite.All",)),
    "PATCH /v1.0/users/{id}": ("User.ReadWrite.All", ("Directory.ReadWrite.All",)),
    "DELETE /v1.0/users/{id}": ("User.ReadWrite.All", ("Directory.ReadWrite.All",)),
    "POST /v1.0/users/{id}/assignLicense": ("LicenseAssignment.ReadWrite.All", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
    "POST /v1.0/users/{id}/reprocessLicenseAssignment": ("LicenseAssignment.ReadWrite.All", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
    # Learn currently says "Application: Not supported" (UNCONFIRMED in practice); older pages
    # list User.Read.All / Directory.Read.All, which is what app-only callers use today.
    "GET /v1.0/users/{id}/licenseDetails": (
        "LicenseAssignment.Read.All",
        ("User.Read.All", "LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/users/{id}/memberOf": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    # The cast keeps memberOf's permissions (same relationship, groups only).
    "GET /v1.0/users/{id}/memberOf/microsoft.graph.group": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    # user-list-transitivememberof: application least privileged User.Read.All.
    "GET /v1.0/users/{id}/transitiveMemberOf": ("User.Read.All", ("Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "GroupMember.Read.All")),
    "GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group": (
        "User.Read.All",
        ("Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "GroupMember.Read.All"),
    ),
    "GET /v1.0/groups": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/groups/$count": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/groups/{id}": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    # beta: only what the dynamic-membership status needs (routes/beta.py); the same permissions as v1.0
    "GET /beta/groups/{id}": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "POST /v1.0/groups": ("Group.Create", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
    "PATCH /v1.0/groups/{id}": ("Group.ReadWrite.All", ("Directory.ReadWrite.All",)),
    "DELETE /v1.0/groups/{id}": ("Group.ReadWrite.All", ("Directory.ReadWrite.All",)),
    "GET /v1.0/groups/{id}/members": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/groups/{id}/members/microsoft.graph.user": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/groups/{id}/transitiveMembers": (
        "GroupMember.ReadBasic.All",
        ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "GET /v1.0/groups/{id}/membersWithLicenseErrors": (
        "GroupMember.Read.All",
        ("Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    "POST /v1.0/groups/{id}/members/$ref": ("GroupMember.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
    "DELETE /v1.0/groups/{id}/members/{id}/$ref": ("GroupMember.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
    "POST /v1.0/groups/{id}/assignLicense": ("LicenseAssignment.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
    "GET /v1.0/subscribedSkus": ("Organization.Read.All", ("Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All")),
    "GET /v1.0/subscribedSkus/{id}": ("Organization.Read.All", ("Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All")),
    "GET /v1.0/organization": ("Organization.Read.All", ("Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All")),
    "GET /v1.0/auditLogs/directoryAudits": ("AuditLog.Read.All", ()),
}

# Routes whose documentation lists several permissions that are ALL required.
ALL_OF_PERMISSIONS = {
    "GET /v1.0/auditLogs/directoryAudits": ("AuditLog.Read.All", "Directory.Read.All"),
}

# What the emulator's default app holds: the permissions of generated tenants' app, the README's least-privilege table.
DEFAULT_APP_PERMISSIONS = COLLECTION_PERMISSIONS
# PATCH /groups/{id} whose body only adds members (members@odata.bind) is the "add multiple members" form of
# group-post-members, which documents GroupMember.ReadWrite.All as least privileged.
MEMBER_BIND_PERMISSIONS = ("GroupMember.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All"))


def is_allowed(route, roles):
    """True when ``roles`` (the token's application permissions) allow ``route``."""
    held = set(roles or ())
    if route in ALL_OF_PERMISSIONS:
        return all(p in held for p in ALL_OF_PERMISSIONS[route])
    least, higher = ROUTE_PERMISSIONS[route]
    return least in held or any(p in held for p in higher)


def is_allowed_call(route, roles, body):
    """is_allowed, plus the members@odata.bind-only PATCH of a group that GroupMember.ReadWrite.All may send."""
    if is_allowed(route, roles):
        return True
    if route == "PATCH /v1.0/groups/{id}" and isinstance(body, dict) and body and set(body) == {"members@odata.bind"}:
        least, higher = MEMBER_BIND_PERMISSIONS
        return least in set(roles or ()) or any(p in set(roles or ()) for p in higher)
    return False


class TokenEndpointError(Exception):
    """An AADSTS-style error answer of the token endpoint."""

    def __init__(self, status, error, aadsts, description):
        super().__init__(f"AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, correlation_id):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        # Entra puts the trace, correlation and time on lines of their own, separated by CRLF.
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {now}",
            "error_codes": [self.aadsts],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def certificate_thumbprints(certificate_pem):
    """(x5t, x5t#S256) header values for a PEM certificate: base64url of SHA-1 / SHA-256 of DER."""
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return _b64url(hashlib.sha1(der).digest()), _b64url(hashlib.sha256(der).digest())  # noqa: S324


class IdentityService:
    """Issues and checks tokens for the apps registered in the Directory."""

    def __init__(self, directory, token_lifetime=DEFAULT_TOKEN_LIFETIME):
        self.directory = directory
        self.token_lifetime = int(token_lifetime)
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = self._signing_key.public_key()
        self.key_id = _b64url(
            hashlib.sha256(self._public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
        )[:27]

    # -- tenants and apps ---------------------------------------------------------------
    def tenant_aliases(self):
        aliases = {self.directory.tenant_id.lower(), "organizations"}
        if getattr(self.directory, "default_domain", None):
            aliases.add(self.directory.default_domain.lower())
        return aliases

    def knows_tenant(self, tenant):
        return tenant.lower() in self.tenant_aliases()

    def find_app(self, client_id):
        wanted = (client_id or "").lower()
        for app in self.directory.apps:
            if app["clientId"].lower() == wanted:
                return app
        return None

    def issuer(self):
        return f"https://sts.windows.net/{self.directory.tenant_id}/"

    # -- discovery ------------------------------------------------------------------------
    def openid_configuration(self, base_url, tenant):
        root = f"{base_url}/{tenant}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base_url}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "graph-emulator.local",
        }

    def jwks(self):
        numbers = self._public_key.public_numbers()

        def encode(value):
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.key_id, "n": encode(numbers.n), "e": encode(numbers.e), "alg": "RS256"}]}

    # -- token endpoint -------------------------------------------------------------------
    def token(self, base_url, tenant, form, basic_auth=None):
        """Answer a token request; returns the JSON body or raises TokenEndpointError."""
        if form.get("grant_type") != "client_credentials":
            raise TokenEndpointError(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.")
        client_id = form.get("client_id") or (basic_auth[0] if basic_auth else "")
        app = self.find_app(client_id)
        if app is None:
            raise TokenEndpointError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.directory.tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant.",
            )
        if tenant.lower() in ("organizations", "common"):
            # graph-api.md 9: {tenant} is the tenant GUID or a domain; an app token is bound to that tenant.
            # The code and wording follow Entra's refusal of /common for single-tenant apps (AADSTS50194; exact text UNCONFIRMED).
            raise TokenEndpointError(
                400,
                "invalid_request",
                50194,
                f"Application '{client_id}' is not configured as a multi-tenant application. Usage of the /{tenant.lower()} endpoint is not "
                "supported for the client credentials flow. Use a tenant-specific endpoint.",
            )
        self._authenticate(app, base_url, tenant, form, basic_auth)
        audience = self._audience_from_scope(base_url, form.get("scope", ""))
        lifetime = self.token_lifetime
        access_token = self.issue(app, audience=audience, expires_in=lifetime)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}

    def _authenticate(self, app, base_url, tenant, form, basic_auth):
        secret = form.get("client_secret") or (basic_auth[1] if basic_auth else None)
        assertion = form.get("client_assertion")
        if secret is not None:
            if secret not in app.get("secrets", ()):
                raise TokenEndpointError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app['clientId']}'.",
                )
            return
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise TokenEndpointError(401, "invalid_client", 700027, f"Client assertion type is not supported: expected '{ASSERTION_TYPE}'.")
            self._check_assertion(app, base_url, tenant, assertion)
            return
        raise TokenEndpointError(
            401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
        )

    def _check_assertion(self, app, base_url, tenant, assertion):
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise TokenEndpointError(401, "invalid_client", 700027, "Client assertion failed signature validation: the assertion is not a JWT.") from None
        certificate = self._certificate_for(app, header)
        audiences = [f"{base_url}/{alias}/oauth2/v2.0/token" for alias in self.tenant_aliases() | {tenant}]
        audiences.append(f"https://login.microsoftonline.com/{self.directory.tenant_id}/oauth2/v2.0/token")
        public_key = x509.load_pem_x509_certificate(certificate.encode()).public_key()
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256", "PS256"], audience=audiences, options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.ExpiredSignatureError:
            raise TokenEndpointError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.") from None
        except jwt.InvalidAudienceError:
            raise TokenEndpointError(
                401, "invalid_client", 700027, f"Client assertion contains an invalid audience: expected the token endpoint {audiences[0]}."
            ) from None
        except jwt.PyJWTError as error:
            raise TokenEndpointError(401, "invalid_client", 700027, f"Client assertion failed signature validation ({type(error).__name__}).") from None
        if str(claims.get("iss", "")).lower() != app["clientId"].lower() or str(claims.get("sub", "")).lower() != app["clientId"].lower():
            raise TokenEndpointError(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")

    @staticmethod
    def _certificate_for(app, header):
        certificates = list(app.get("certificates", ()))
        if not certificates:
            raise TokenEndpointError(401, "invalid_client", 700027, f"No certificate is registered on application '{app['clientId']}'.")
        # msal keeps the base64 padding, RFC 7515 drops it: compare without it
        sha1 = (header.get("x5t") or "").rstrip("=")
        sha256 = (header.get("x5t#S256") or "").rstrip("=")
        for certificate in certificates:
            x5t, x5t_s256 = certificate_thumbprints(certificate)
            if (sha256 and sha256 == x5t_s256) or (sha1 and sha1 == x5t):
                return certificate
        if not sha1 and not sha256 and len(certificates) == 1:
            return certificates[0]
        raise TokenEndpointError(
            401,
            "invalid_client",
            700027,
            f"The certificate with identifier used to sign the client assertion is not registered on application '{app['clientId']}'.",
        )

    def _audience_from_scope(self, base_url, scope):
        scopes = scope.split()
        accepted = {
            f"{base_url}/.default": base_url,
            f"{GRAPH_RESOURCE}/.default": GRAPH_RESOURCE,
            f"{GRAPH_RESOURCE}//.default": GRAPH_RESOURCE,
            f"{GRAPH_APP_ID}/.default": GRAPH_RESOURCE,
        }
        if len(scopes) == 1 and scopes[0] in accepted:
            return accepted[scopes[0]]
        if not scopes:
            raise TokenEndpointError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
        raise TokenEndpointError(
            400,
            "invalid_scope",
            70011,
            f"The provided request must include a 'scope' input parameter. The provided value "
            f"for the input parameter 'scope' is not valid. The scope {scope} is not valid. "
            "Client credential flows must have a scope value with /.default suffixed to the "
            "resource identifier (application ID URI).",
        )

    def issue(self, app, audience=GRAPH_RESOURCE, expires_in=None, roles=None):
        """Sign an app-only access token the way Entra shapes v1 Graph tokens."""
        now = int(time.time())
        lifetime = self.token_lifetime if expires_in is None else int(expires_in)
        claims = {
            "aud": audience,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.directory.tenant_id,
            "appid": app["clientId"],
            "app_displayname": app.get("displayName", ""),
            "appidacr": "1",
            "idtyp": "app",
            "oid": app.get("servicePrincipalId") or str(uuid.uuid5(uuid.NAMESPACE_URL, app["clientId"])),
            "sub": app.get("servicePrincipalId") or str(uuid.uuid5(uuid.NAMESPACE_URL, app["clientId"])),
            "roles": sorted(set(app.get("permissions", ())) if roles is None else set(roles)),
            "ver": "1.0",
            "uti": _b64url(uuid.uuid4().bytes),
        }
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": self.key_id, "typ": "JWT"})

    # -- Graph side -------------------------------------------------------------------------
    def validate(self, authorization, base_url):
        """Claims of a valid bearer token, else GraphError 401 InvalidAuthenticationToken."""
        if not authorization:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = jwt.decode(
                token.strip(), self._public_key, algorithms=["RS256"], options={"verify_aud": False, "require": ["exp", "nbf", "aud", "iss", "tid"]}
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.") from None
        except jwt.PyJWTError:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None
        if claims["aud"] not in (GRAPH_RESOURCE, GRAPH_APP_ID, base_url, GRAPH_RESOURCE + "/"):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        if claims["iss"] != self.issuer() or str(claims["tid"]).lower() != self.directory.tenant_id.lower():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer.")
        return claims
