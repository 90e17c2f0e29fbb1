"""Ed25519 signatures over canonical JSON: what makes a checkpoint, a signed approval or
a tombstone provable by someone who trusts only a public key.

A hash chain proves a history was not edited *unless* someone rewrote the whole chain
(``keel.store.chain``); a signature by a key the database never holds closes that gap.
The signed bytes are always ``canonical_json(data)`` (sorted keys, no spaces), so the
signer and an offline verifier in another process or language agree on them.

Keys: a private key is a PKCS#8 PEM file (``keel audit keygen`` writes one, mode 0600);
its ``key_id`` is the first 16 hex digits of the SHA-256 of the raw 32-byte public key,
so a signature names the key that made it and rotation is: make a new key, point the
config at it, keep publishing the old public key (old signatures name the old id and
still verify against it). A public key travels as text: ``ed25519:<base64 raw key>``.

Invariant: nothing here reads or writes a private key anywhere but the file it is given;
errors name the file, never print key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from keel.errors import KeelError
from keel.store.chain import canonical_json

ALGORITHM = "ed25519"
_PREFIX = f"{ALGORITHM}:"

#: how ``verify_signature`` ends what it says of a key it was not given
UNTRUSTED = "which is not a trusted key"


class SigningError(KeelError, ValueError):
    """A key cannot be read or made, or a signature or public key is malformed; the
    message names the file or the value's role, never key material."""


def _key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def signed_bytes(data: Any) -> bytes:
    """Exactly what is signed for ``data``."""
    return canonical_json(data).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature and the key that made it (by id)."""

    key_id: str
    value: str  # base64 of the 64-byte Ed25519 signature
    algorithm: str = ALGORITHM

    def to_data(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "key_id": self.key_id, "value": self.value}

    @classmethod
    def from_data(cls, data: Any) -> Signature:
        if not isinstance(data, Mapping):
            raise SigningError(f"a signature must be an object, got {type(data).__name__}")
        try:
            return cls(
                key_id=str(data["key_id"]),
                value=str(data["value"]),
                algorithm=str(data.get("algorithm", ALGORITHM)),
            )
        except KeyError as exc:
            raise SigningError(f"a signature lacks {exc.args[0]!r}") from None


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A key that checks signatures; safe to publish, print and export."""

    key_id: str
    raw: bytes

    def to_text(self) -> str:
        return _PREFIX + base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        text = text.strip()
        if not text.startswith(_PREFIX):
            raise SigningError(f"a public key must start with {_PREFIX!r}")
        try:
            raw = base64.b64decode(text[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise SigningError("a public key is not valid base64") from None
        if len(raw) != 32:
            raise SigningError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
        return cls(_key_id(raw), raw)

    def verify(self, data: Any, signature: Signature) -> bool:
        """Whether ``signature`` is this key's over ``data``."""
        if signature.algorithm != ALGORITHM or signature.key_id != self.key_id:
            return False
        try:
            value = base64.b64decode(signature.value, validate=True)
            Ed25519PublicKey.from_public_bytes(self.raw).verify(value, signed_bytes(data))
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class SigningKey:
    """A private key: signs. Held by the processes that sign (the server, workers, the
    CLI of an operator), never stored in the database."""

    __slots__ = ("_private", "public_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = PublicKey(_key_id(raw), raw)

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, data: Any) -> Signature:
        value = self._private.sign(signed_bytes(data))
        return Signature(self.key_id, base64.b64encode(value).decode("ascii"))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: Path) -> None:
        """Write the key to a new file readable by its owner only; never overwrites."""
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SigningError(f"{path} exists: a key is never overwritten") from None
        except OSError as exc:
            raise SigningError(f"cannot write the key to {path}: {exc.strerror}") from None
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(self.pem())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read the signing key {path}: {exc.strerror}") from None
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise SigningError(
                f"{path} is not an unencrypted PEM private key (make one with `keel audit keygen`)"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
        return cls(private)


def verify_signature(data: Any, signature: Signature, keys: Mapping[str, PublicKey]) -> str | None:
    """None when ``signature`` over ``data`` is by one of ``keys`` (by id); else what is
    wrong, in words."""
    key = keys.get(signature.key_id)
    if key is None:
        return f"signed by key {signature.key_id}, {UNTRUSTED}"
    if not key.verify(data, signature):
        return f"the signature by key {signature.key_id} does not match what it signs"
    return None
