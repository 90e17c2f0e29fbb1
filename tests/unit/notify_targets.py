"""Notifier functions for the notify tests, resolved by import path
(``tests.unit.notify_targets:<name>``) exactly as ``deliver`` resolves a spec's notifier.

Tests clear ``received`` before they deliver.
"""

from __future__ import annotations

from typing import Any

#: every notification ``record`` was called with, in order
received: list[dict[str, Any]] = []


def record(notification: dict[str, Any]) -> None:
    received.append(notification)


async def record_async(notification: dict[str, Any]) -> None:
    received.append(notification)


def explode(notification: dict[str, Any]) -> None:
    raise RuntimeError(f"pager is down (event {notification['event']})")


#: not callable: resolving it as a notifier must fail clearly
not_a_function = 42
