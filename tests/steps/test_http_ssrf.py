"""The ``http`` step's SSRF guard with real sockets: a step cannot reach the loopback,
a private or a link-local address, however the URL writes it, nor be led there by a
redirect, unless the worker's ``[http] allow`` says so; and TLS still checks the host
name when the guard connects by address. Each refused request is shown not to have
reached the server that listens there."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.errors import NonRetryable
from keel.steps.http_guard import HttpAddressRefused
from tests.steps.conftest import Step
from tests.steps.peers import Peer, Reply, json_reply

Allow = Callable[..., Path]


def _spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        f"http://2130706433:{port}/",  # 127.0.0.1 as one decimal number
        f"http://0x7f.0.0.1:{port}/",  # hexadecimal
        f"http://127.1:{port}/",  # short form
    ]


def test_every_spelling_of_the_loopback_is_refused_before_connecting(
    peer: Peer, worker_folder: Path, step: Step
) -> None:
    peer.routes["/"] = lambda got: json_reply({"reached": True})
    for url in _spellings(peer.port):
        with pytest.raises(HttpAddressRefused) as caught:
            step({"url": url})
        message = str(caught.value)
        assert "127.0.0.1" in message, url
        assert "loopback" in message, url
        assert "[http]" in message
        assert "allow" in message
        assert "keel.toml" in message
    with pytest.raises(NonRetryable, match="not a valid URL"):  # octal: httpx refuses it
        step({"url": f"http://0177.0.0.1:{peer.port}/"})
    assert peer.received == []  # none of them connected


def test_the_same_urls_pass_once_allowed(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")  # the control: the server was there to be reached
    peer.routes["/"] = lambda got: json_reply({"reached": True})
    for url in _spellings(peer.port):
        assert step({"url": url})["body"] == {"reached": True}, url
    assert len(peer.received) == len(_spellings(peer.port))


@pytest.fixture
def peer6() -> Iterator[Peer]:
    try:
        server = Peer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        yield server


def test_the_ipv6_loopback_is_refused(peer6: Peer, worker_folder: Path, step: Step) -> None:
    with pytest.raises(HttpAddressRefused, match=r"::1"):
        step({"url": peer6.url("/")})
    assert peer6.received == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://192.168.0.1:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://0.0.0.0/", "unspecified"),
    ],
)
def test_private_and_link_local_addresses_are_refused(
    url: str, why: str, worker_folder: Path, step: Step
) -> None:
    with pytest.raises(HttpAddressRefused) as caught:
        step({"url": url})
    assert why in str(caught.value)
    assert isinstance(caught.value, NonRetryable)


def test_a_redirect_to_a_refused_address_is_not_followed(allow: Allow, step: Step) -> None:
    allow("127.0.0.2")
    with Peer("127.0.0.2") as first, Peer("127.0.0.1") as target:
        first.routes["/a"] = lambda got: Reply(302, {"Location": "/b"})  # allowed to allowed
        # then to a name that resolves to a refused address: checked after resolution
        first.routes["/b"] = lambda got: Reply(302, {"Location": target.url("/c", "localhost")})
        target.routes["/c"] = lambda got: json_reply({"reached": True})
        with pytest.raises(HttpAddressRefused) as caught:
            step({"url": first.url("/a")})
        assert "localhost (127.0.0.1)" in str(caught.value)
        assert [got.path for got in first.received] == ["/a", "/b"]
        assert target.received == []


def test_a_redirect_to_the_metadata_address_is_refused(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    peer.routes["/go"] = lambda got: Reply(307, {"Location": "http://169.254.169.254/latest"})
    with pytest.raises(HttpAddressRefused, match=r"169\.254\.169\.254"):
        step({"url": peer.url("/go")})


def test_the_address_checked_is_the_address_connected_to(
    peer: Peer, worker_folder: Path, step: Step, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that resolves to a public address when checked and to the
    loopback afterwards. A rebinding DNS server cannot run offline, so the resolver is
    replaced for that one name (a fake, said so): the guard resolves once and connects
    to the address it checked, so the loopback server is never reached."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        asked.append(host)
        address = "192.0.0.9" if len(asked) == 1 else "127.0.0.1"  # 192.0.0.9: public
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    peer.routes["/"] = lambda got: json_reply({"reached": True})
    with pytest.raises((ConnectionError, TimeoutError)):  # 192.0.0.9 is not reachable here
        step({"url": f"http://rebind.test:{peer.port}/", "timeout": 2})
    assert asked == ["rebind.test"]
    assert peer.received == []


def _certificates(folder: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    """A test CA (its PEM file) and a server context with a certificate for ``name``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def made(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )  # fmt: skip
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = made("keel test CA", ca_key, "keel test CA", ca_key, True)
    cert = made(name, server_key, "keel test CA", ca_key, False)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file


@pytest.mark.parametrize(("certified", "passes"), [("localhost", True), ("other.example", False)])
def test_tls_checks_the_host_name_though_the_guard_connects_by_address(
    certified: str, passes: bool, allow: Allow, step: Step, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    allow("localhost")
    context, ca_file = _certificates(tmp_path, certified)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with Peer("127.0.0.1", tls=context) as server:
        server.routes["/"] = lambda got: json_reply({"secure": True})
        url = server.url("/", "localhost", scheme="https")
        if passes:
            assert step({"url": url})["body"] == {"secure": True}
            assert len(server.received) == 1
        else:
            with pytest.raises(ConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|hostname"):
                step({"url": url})
            assert server.received == []


def test_allowing_after_a_refusal_needs_no_restart(
    peer: Peer, worker_folder: Path, step: Step
) -> None:
    peer.routes["/"] = lambda got: json_reply({"reached": True})
    with pytest.raises(HttpAddressRefused):
        step({"url": peer.url("/")})
    (worker_folder / "keel.toml").write_text('[http]\nallow = ["127.0.0.0/8"]\n')
    assert step({"url": peer.url("/")})["body"] == {"reached": True}  # as `keel retry` would


def test_a_wrong_http_setting_fails_the_step_naming_file_and_key(
    worker_folder: Path, step: Step
) -> None:
    (worker_folder / "keel.toml").write_text('[http]\nalow = ["127.0.0.1"]\n')
    with pytest.raises(NonRetryable) as caught:
        step({"url": "http://127.0.0.1:9/"})
    assert "unknown key 'alow'" in str(caught.value)
    assert str(worker_folder / "keel.toml") in str(caught.value)
