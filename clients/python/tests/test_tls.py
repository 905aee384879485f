"""TLS and mutual TLS from PEM files, against a server that requires client certificates."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from credvault import CredvaultClient, Tls, Unavailable, RetryPolicy

from conftest import Server, start_server


def _issue(directory: Path, name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False,
           server: bool = False) -> tuple[x509.Name, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / f"{name}.key").chmod(0o600)
    return subject, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, fake_vultr: str) -> Iterator[tuple[Server, Path]]:
    pki = tmp_path_factory.mktemp("pki")
    ca = _issue(pki, "ca", None, ca=True)
    _issue(pki, "server", ca, server=True)
    _issue(pki, "client", ca)
    args = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), "--tls-client-ca", str(pki / "ca.pem")]
    running = start_server(tmp_path_factory.mktemp("credvault-tls"), fake_vultr, args)
    yield running, pki
    running.stop()


def test_mutual_tls_from_pem_files(tls_server: tuple[Server, Path]) -> None:
    server, pki = tls_server
    tls = Tls(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
    with CredvaultClient(server.target, server.token, tls=tls) as vault:
        stored = vault.store(server.customer_id, "vultr", "Over mTLS", {"api_key": "k"})
        assert vault.get(stored.id).to_seed_dict() == {"api_key": "k"}
    # Without a client certificate the server refuses the connection.
    with CredvaultClient(server.target, server.token, tls=Tls(ca=pki / "ca.pem"), retry=RetryPolicy(deadline=1)) as anonymous:
        with pytest.raises(Unavailable):
            anonymous.summary(server.customer_id)
    with pytest.raises(ValueError, match="both cert and key"):
        Tls(ca=pki / "ca.pem", cert=pki / "client.pem").credentials()
