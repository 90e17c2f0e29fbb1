"""API tokens as the store keeps them: a name (the identity recorded in histories), a
role, groups, and the SHA-256 of the secret, never the secret itself.

A token row is never deleted: revoking it stamps ``revoked_at``, so every ``by`` in a
history keeps naming an identity that can be looked up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    groups: tuple[str, ...]
    created_at: float
    created_by: str | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None

    def usable_at(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def token_of(row: Sequence[Any]) -> TokenRecord:
    """A token as both backends select it (``select_tokens``'s columns, in order)."""
    name, role, groups, created_at, created_by, expires_at, revoked_at, revoked_by = row
    return TokenRecord(
        name=name, role=role, groups=tuple(json.loads(groups)), created_at=created_at,
        created_by=created_by, expires_at=expires_at, revoked_at=revoked_at,
        revoked_by=revoked_by,
    )  # fmt: skip
