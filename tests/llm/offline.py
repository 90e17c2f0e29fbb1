"""A guard for tests of code that must never reach the network: every way out through
the ``socket`` module (connecting, and resolving a name) raises instead."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkUsedError(AssertionError):
    """Raised by the guard: the code under test tried the network."""


def refuse_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsedError(f"network used: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
