"""TLS material for the emulator: a private CA and a server certificate it signs.

msal refuses plain-http authorities, so the emulator always serves HTTPS. Clients trust the
CA file (``ca_path``), never the server certificate directly, which is what a real deployment
with a corporate CA looks like.
"""

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
SERVER_CERT_FILE = "server-cert.pem"
SERVER_KEY_FILE = "server-key.pem"


@dataclass
class TlsMaterial:
    ca_path: str
    cert_path: str
    key_path: str

    def server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _new_tls_key():
    # P-256: every request is a new TLS handshake (werkzeug closes connections), and ECDSA
    # handshakes cost a fraction of RSA-2048 ones
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "graph-emulator"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    # back-dated a little so a client whose clock lags does not see "not yet valid"
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))


def _build_ca(days):
    key = _new_tls_key()
    name = _name("graph-emulator local CA")
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name)
    builder = _validity(builder, days).serial_number(x509.random_serial_number()).public_key(key.public_key())
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def _build_server(ca_key, ca_cert, days):
    key = _new_tls_key()
    builder = x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
    builder = _validity(builder, days).serial_number(x509.random_serial_number()).public_key(key.public_key())
    alt_names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1")), x509.DNSName("localhost")]
    builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path, data, private=False):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def create_tls_material(directory, days=30):
    """Generate a CA and a server certificate for 127.0.0.1/localhost into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    ca_key, ca_cert = _build_ca(days)
    server_key, server_cert = _build_server(ca_key, ca_cert, days)
    material = TlsMaterial(
        ca_path=os.path.join(directory, CA_FILE), cert_path=os.path.join(directory, SERVER_CERT_FILE), key_path=os.path.join(directory, SERVER_KEY_FILE)
    )
    _write(material.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    # the chain file holds server cert then CA so clients can build the path
    _write(material.cert_path, server_cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(
        material.key_path,
        server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
        private=True,
    )
    return material


def self_signed_client_certificate(common_name="graph-emulator client", days=30):
    """Key and self-signed certificate for an app credential (used by tests and the CLI).

    Returns ``(private_key_pem, certificate_pem, sha1_thumbprint_hex)``.
    """
    key = _new_key()
    name = _name(common_name)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name)
    builder = _validity(builder, days).serial_number(x509.random_serial_number()).public_key(key.public_key())
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key_pem, cert_pem, cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - thumbprint, as Entra uses
