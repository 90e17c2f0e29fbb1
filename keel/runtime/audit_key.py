"""The audit settings of a process: the key it signs with, the keys it trusts, and how
often a worker signs a checkpoint by itself.

```toml
[audit]
key_file = "secrets/keel-audit.pem"      # relative to this file's folder
trusted_keys = ["ed25519:...", "ed25519:..."]  # old keys after a rotation, a peer's
checkpoint_every = "1h"                  # keel worker: sign a checkpoint this often
```

The signing key file is ``KEEL_AUDIT_KEY_FILE`` when set (relative to the current
folder), else ``key_file`` of the ``[audit]`` table of the config file the worker reads
(``keel.toml``, or ``[tool.keel.audit]`` of ``pyproject.toml``; found as
``keel.runtime.worker.config.config_tables`` finds it), else none: nothing is signed.
``keel serve``, ``keel worker`` and the CLI read it the same way (this module).

Anything wrong (a key that is not a list of public keys, a key file that is missing,
unreadable or not an Ed25519 key) is an ``AuditConfigError`` naming the file or
variable and the key, never a quietly unsigned process. The private key is read only
from its file, and only when asked for (``signing_key``); it is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keel.audit.signing import PublicKey, SigningError, SigningKey
from keel.errors import KeelError
from keel.runtime.worker.config import WorkerConfigError, config_tables
from keel.spec.durations import parse_duration

#: the environment variable naming the signing key file
KEY_FILE_ENV = "KEEL_AUDIT_KEY_FILE"
KEYS = ("key_file", "trusted_keys", "checkpoint_every")
#: what to do when no key is configured
HOW_TO_CONFIGURE = (
    "make one with `keel audit keygen FILE`, then set KEEL_AUDIT_KEY_FILE=FILE or add "
    '[audit] key_file = "FILE" to keel.toml'
)


class AuditConfigError(KeelError, ValueError):
    """The audit settings are wrong; the message names the file or variable and the key."""


@dataclass(frozen=True, slots=True)
class AuditConfig:
    #: the signing key's file, or None (nothing is signed)
    key_file: Path | None = None
    #: where ``key_file`` was set ("environment (KEEL_AUDIT_KEY_FILE)", "keel.toml (...)")
    key_source: str = ""
    #: public keys trusted besides the signing key's own (``[audit] trusted_keys``)
    trusted: tuple[PublicKey, ...] = ()
    #: seconds between two checkpoints a worker signs by itself (None: never)
    checkpoint_every: float | None = None

    def signing_key(self) -> SigningKey | None:
        """The key read from ``key_file`` (None when none is configured)."""
        if self.key_file is None:
            return None
        try:
            return SigningKey.load(self.key_file)
        except SigningError as exc:
            raise AuditConfigError(f"{self.key_source}: key_file: {exc}") from None

    def require_key(self) -> SigningKey:
        """The signing key; an error saying how to configure one when there is none."""
        key = self.signing_key()
        if key is None:
            raise AuditConfigError(f"no audit signing key is configured: {HOW_TO_CONFIGURE}")
        return key

    def trusted_keys(self, signing: SigningKey | None = None) -> dict[str, PublicKey]:
        """The keys a signature is checked against, by id: ``trusted_keys`` and the
        signing key's public key (``signing``, else the configured one's)."""
        keys = {key.key_id: key for key in self.trusted}
        own = signing if signing is not None else self.signing_key()
        if own is not None:
            keys[own.key_id] = own.public_key
        return keys


def load_audit_config(
    cwd: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> AuditConfig:
    """The audit settings of this process: ``environ`` and the config file above ``cwd``."""
    here = (cwd if cwd is not None else Path.cwd()).resolve()
    env = os.environ if environ is None else environ
    try:
        found = config_tables(here)
    except WorkerConfigError as exc:  # unreadable, not TOML
        raise AuditConfigError(str(exc)) from None
    folder, tables = found if found is not None else (here, [])
    label, raw = next(((lb, t["audit"]) for lb, t in tables if "audit" in t), (None, None))
    config = parse_audit_table(label, raw, folder) if label is not None else AuditConfig()
    from_env = env.get(KEY_FILE_ENV, "").strip()
    if from_env:
        path = (here / from_env).resolve()
        config = AuditConfig(path, f"environment ({KEY_FILE_ENV})", config.trusted,
                             config.checkpoint_every)  # fmt: skip
    return config


def parse_audit_table(label: str, raw: object, folder: Path) -> AuditConfig:
    """The ``audit`` table of a file (``label`` names it in errors; ``key_file`` is
    relative to ``folder``)."""
    if not isinstance(raw, dict):
        raise AuditConfigError(f"{label}: audit must be a table ([audit]), got {raw!r}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise AuditConfigError(f"{label}: audit: unknown key {', '.join(map(repr, unknown))} "
                               f"(known keys: {', '.join(KEYS)})")  # fmt: skip
    key_file = None
    if "key_file" in raw:
        value = raw["key_file"]
        if not isinstance(value, str) or not value.strip():
            raise AuditConfigError(
                f"{label}: audit.key_file must be the path of a key file, got {value!r}"
            )
        key_file = (folder / value.strip()).resolve()
    return AuditConfig(key_file, label, _trusted(label, raw.get("trusted_keys", [])),
                       _every(label, raw.get("checkpoint_every")))  # fmt: skip


def _trusted(label: str, value: object) -> tuple[PublicKey, ...]:
    if not isinstance(value, list):
        raise AuditConfigError(f"{label}: audit.trusted_keys must be a list of public keys "
                               f"('ed25519:...'), got {value!r}")  # fmt: skip
    keys: list[PublicKey] = []
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, str):
            raise AuditConfigError(
                f"{label}: audit.trusted_keys entry {index} must be a string, got {entry!r}"
            )
        try:
            keys.append(PublicKey.from_text(entry))
        except SigningError as exc:
            raise AuditConfigError(f"{label}: audit.trusted_keys entry {index}: {exc}") from None
    return tuple(keys)


def _every(label: str, value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise AuditConfigError(f"{label}: audit.checkpoint_every: {exc}") from None
    if seconds < 60:
        raise AuditConfigError(
            f"{label}: audit.checkpoint_every must be at least a minute ('1m'), got {value!r}"
        )
    return seconds
