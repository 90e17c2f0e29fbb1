"""The worker's ``[http]`` settings for ``http`` steps, from its ``keel.toml``:

    [http]
    # addresses, networks (CIDR) and host names a step may reach although they are
    # private, loopback, link-local or otherwise not public (``keel.steps.http_guard``)
    allow = ["127.0.0.1", "10.0.0.0/8", "::1", "internal.example.com", "*.corp.example"]
    # the response size limit of a step that does not set its own
    max_response_bytes = 10485760

A host name allows every address it resolves to (the operator vouches for the name);
``*.corp.example`` allows the names under ``corp.example`` (not the name itself).

Invariants: a key that is set but wrong (a typo, a bad address, a number out of range)
raises ``HttpConfigError`` naming the file and the key, never ignored. The settings are
read once per folder and process (``http_config``); ``forget_http_config`` makes the next
attempt read them again (the step does so after a refusal, so an operator who widens
``allow`` needs no restart). This module only reads.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from keel.errors import NonRetryable
from keel.runtime.worker.config_sections import check_keys, config_place, find_section, table_of

KEYS = ("allow", "max_response_bytes")
#: the largest response a step may be allowed (as the node's own field)
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HttpConfigError(NonRetryable):
    """An ``[http]`` setting is wrong; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class HttpConfig:
    #: networks a step may reach although not public (an address is a /32 or /128)
    networks: tuple[Network, ...] = ()
    #: host names (lower case, no trailing dot) whose every address a step may reach;
    #: one starting ``*.`` stands for the names under it
    names: tuple[str, ...] = ()
    #: the response size limit of a step that sets none (None: the node's default)
    max_response_bytes: int | None = None
    #: the file the settings came from or were looked for in, for messages
    #: (``config_sections.config_place``; None: not read from a file)
    source: str | None = None


@functools.cache
def http_config(folder: Path) -> HttpConfig:
    """The ``[http]`` settings of the config file above ``folder`` (read once)."""
    found = find_section(folder, "http", HttpConfigError)
    if found is None:
        return HttpConfig(source=config_place(folder, "http"))
    return parse_http_table(found[0], found[2])


def forget_http_config() -> None:
    """Have the next ``http_config`` read the file again."""
    http_config.cache_clear()


def parse_http_table(label: str, raw: object) -> HttpConfig:
    """The ``http`` table of a file; ``label`` names the file in errors."""
    raw = table_of(label, "http", raw, HttpConfigError)
    check_keys(label, "http", raw, KEYS, HttpConfigError)
    allow = raw.get("allow", [])
    if not isinstance(allow, list):
        raise HttpConfigError(
            f"{label}: http.allow must be a list of addresses, networks or host names, "
            f'e.g. ["127.0.0.1", "10.0.0.0/8", "internal.example.com"]'
        )
    networks: list[Network] = []
    names: list[str] = []
    for entry in allow:
        network, name = _entry(label, entry)
        if network is not None:
            networks.append(network)
        if name is not None:
            names.append(name)
    limit = raw.get("max_response_bytes")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int)
        or not 1 <= limit <= MAX_RESPONSE_BYTES
    ):  # fmt: skip
        raise HttpConfigError(
            f"{label}: http.max_response_bytes must be a whole number of bytes from 1 to "
            f"{MAX_RESPONSE_BYTES}, got {limit!r}"
        )
    return HttpConfig(tuple(networks), tuple(names), limit, label)


def _entry(label: str, entry: object) -> tuple[Network | None, str | None]:
    if not isinstance(entry, str) or not entry.strip():
        raise HttpConfigError(
            f"{label}: http.allow: each item is an address, a network or a host name "
            f"(a string), got {entry!r}"
        )
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False), None
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    if "/" in text or ":" in text or not _HOST.match(name):
        raise HttpConfigError(
            f"{label}: http.allow: {entry!r} is not an address (127.0.0.1, ::1), a network "
            "(10.0.0.0/8) nor a host name (internal.example.com, *.corp.example)"
        )
    return None, name
