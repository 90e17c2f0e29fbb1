"""Where a process finds its audit key: the file ``KEEL_AUDIT_KEY_FILE`` names.

The key signs (tombstones of pruned runs here) and its public half is the key a
verification trusts. Nothing here reads the key but from that file; errors name the file
(``SigningError``), never key material.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel.audit.signing import PublicKey, SigningKey

ENVIRONMENT = "KEEL_AUDIT_KEY_FILE"


def configured_key() -> SigningKey | None:
    """The key ``KEEL_AUDIT_KEY_FILE`` names; None when it is not set. A set variable
    whose file cannot be read as a key raises ``SigningError`` (naming the file)."""
    path = os.environ.get(ENVIRONMENT, "").strip()
    return SigningKey.load(Path(path).expanduser()) if path else None


def trusted_keys(key: SigningKey | None = None) -> dict[str, PublicKey]:
    """The public keys a verification trusts, by id: the configured key's (or ``key``'s)."""
    key = configured_key() if key is None else key
    return {} if key is None else {key.key_id: key.public_key}
