"""What an ``http`` step may connect to: public addresses, and what the worker's
``[http] allow`` lists (``keel.steps.http_config``). Nothing else, so a workflow (or
the data it is given) cannot make a worker call its cloud's metadata service
(169.254.169.254), a database on its private network or a port on its loopback.

The check is made where the socket is opened, not on the URL: ``GuardedBackend``
(the network backend of the client's connection pool) resolves the host itself, checks
every address it got, and connects to an allowed one *by that address*. So a host name
that resolves to a private address, a redirect to one, a second resolution that gives
another answer (DNS rebinding) or an address written oddly (``2130706433``,
``[::ffff:127.0.0.1]``, ``0x7f.1``) cannot slip past it: whatever the socket connects
to has been checked. TLS is unchanged: it still verifies the certificate against the
host name of the URL (and sends it as SNI).

Invariants: an address is refused when it is not public (``refusal``): private
(RFC 1918, ``fc00::/7``), loopback, link-local, unspecified, multicast, reserved,
shared (CGNAT ``100.64.0.0/10``), documentation and benchmark ranges, or an IPv6 address
that embeds a refused IPv4 one (IPv4-mapped, 6to4, NAT64, Teredo). A refusal is
``HttpAddressRefused`` (not retried: the next attempt would be refused too), raised
before any byte is sent to that address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpcore2
import httpx2

from keel.errors import NonRetryable
from keel.steps.http_config import HttpConfig

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class HttpAddressRefused(NonRetryable):
    """The host of a request resolved only to addresses an ``http`` step may not reach."""

    def __init__(self, host: str, address: Address, why: str, config: HttpConfig) -> None:
        where = config.source or "the worker's keel.toml"
        same = host.strip("[]") in (str(address), str(_plain(address)))
        named = host if same else f"{host} ({address})"
        super().__init__(
            f"refused to connect to {named}: {why}, which an http step may not "
            f'reach unless allowed: add "{_plain(address)}" (or a network holding it, or the '
            f"host name) to the allow list of [http] in {where}"
        )
        self.host = host
        self.address = address


def refusal(address: Address) -> str | None:
    """Why ``address`` is not public (words to put in a message), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            why = refusal(embedded)
            if why is not None:
                return f"{why} ({embedded}, inside an IPv6 address)"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (where cloud metadata services answer)"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED,
         "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )  # fmt: skip
    return next((why for refused, why in checks if refused), None)


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 one ``[http] allow`` matches it by."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allowed(host: str, address: Address, config: HttpConfig) -> bool:
    """Whether ``config`` allows ``address`` (reached as ``host``) although not public."""
    name = host.lower().rstrip(".")
    for entry in config.names:
        if name == entry or (entry.startswith("*.") and name.endswith(entry[1:])):
            return True
    plain = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(
        candidate.version == network.version and candidate in network
        for candidate in (address, plain) if candidate is not None
        for network in config.networks
    )  # fmt: skip


class GuardedBackend(httpcore2.SyncBackend):
    """A network backend that connects only to addresses ``refusal`` passes or the
    config allows (see the module)."""

    def __init__(self, config: HttpConfig) -> None:
        self.config = config

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        refused: HttpAddressRefused | None = None
        failed: Exception | None = None
        for address in _resolved(host, port, timeout):
            why = None if allowed(host, address, self.config) else refusal(address)
            if why is not None:
                refused = refused or HttpAddressRefused(host, address, why, self.config)
                continue
            try:  # by the address checked: no second resolution
                return super().connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failed = exc  # the next address, as socket.create_connection does
        if failed is not None:
            raise failed
        if refused is not None:
            raise refused
        raise httpcore2.ConnectError(f"{host} resolved to no address")


def _resolved(host: str, port: int, timeout: float | None) -> list[Address]:
    """The addresses of ``host``, each once, in the resolver's order; the lookup is given
    ``timeout`` seconds (it runs in a thread of its own, left to end by itself after)."""
    try:
        return [ipaddress.ip_address(host)]  # written as an address: nothing to look up
    except ValueError:
        pass
    pool = ThreadPoolExecutor(1, thread_name_prefix="keel-http-resolve")
    try:
        infos = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        return _addresses(infos.result(timeout))
    except FutureTimeout:
        raise httpcore2.ConnectTimeout(f"no address for {host} within the timeout") from None
    except (OSError, UnicodeError) as exc:
        raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from None
    finally:
        pool.shutdown(wait=False)


def _addresses(infos: list[Any]) -> list[Address]:
    found: list[Address] = []
    for family, *_, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


class GuardedTransport(httpx2.HTTPTransport):
    """httpx's transport over a connection pool whose backend is ``GuardedBackend``,
    with no proxy (one from the environment would connect in the guard's stead)."""

    def __init__(self, config: HttpConfig) -> None:
        # the CA bundle may come from SSL_CERT_FILE / SSL_CERT_DIR, as for httpx
        context = httpx2.create_ssl_context()
        super().__init__(verify=context, trust_env=False)
        self._pool = httpcore2.ConnectionPool(
            ssl_context=context, network_backend=GuardedBackend(config)
        )
