"""``keel serve`` over HTTPS: half the TLS options are refused before anything starts,
and with a certificate and its key the API answers HTTPS only.

The certificate is made here with ``cryptography``, which keel does not depend on (it
comes with other test tools); without it that one test is skipped."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx2
import pytest

from tests.e2e.test_serve_e2e import keel, spawn, until
from tests.processes import free_port, stop_workers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("given", ["--ssl-certfile", "--ssl-keyfile"])
def test_half_the_tls_options_are_refused(tmp_path: Path, given: str) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    (tmp_path / "some.pem").write_text("not read")
    done = keel(url, "serve", given, str(tmp_path / "some.pem"), "--port", str(free_port()))
    assert done.returncode == 1
    assert "give both --ssl-certfile and --ssl-keyfile for HTTPS" in done.stderr
    assert not (tmp_path / "keel.db").exists()  # refused before the database was opened


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid for a day, and its key (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return cert_file, key_file


def test_serve_answers_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    made = keel(url, "token", "create", "reader", "--role", "viewer")
    assert made.returncode == 0, made.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    server = spawn(url, log, "serve", "--port", str(port), "--ssl-certfile", str(cert_file),
                   "--ssl-keyfile", str(key_file))  # fmt: skip
    trusted = ssl.create_default_context(cafile=str(cert_file))
    base = f"https://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx2.get(f"{base}/ready", verify=trusted, trust_env=False).status_code == 200
        except httpx2.TransportError:
            return False

    try:
        until("keel serve answers HTTPS", ready, [log])
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        runs = httpx2.get(f"{base}/runs", headers=headers, verify=trusted, trust_env=False)
        assert runs.status_code == 200, runs.text
        with pytest.raises(httpx2.TransportError):  # a client that does not trust it
            httpx2.get(f"{base}/health", trust_env=False)
        with pytest.raises(httpx2.TransportError):  # plain HTTP is not served
            httpx2.get(f"http://127.0.0.1:{port}/health", trust_env=False)
    finally:
        stop_workers([server])
    assert server.returncode == 0, log.read_text()
    assert f"keel serve: https://127.0.0.1:{port}" in log.read_text()
