"""Signatures over canonical JSON: what a checkpoint, an approval and a tombstone rest on."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.audit.signing import PublicKey, Signature, SigningError, SigningKey, verify_signature


def test_a_signature_verifies_and_any_change_of_the_data_breaks_it() -> None:
    key = SigningKey.generate()
    data = {"run": "abc", "heads": {"abc": "0" * 64}, "at": 1.5}
    signature = key.sign(data)
    keys = {key.key_id: key.public_key}

    assert (
        verify_signature({"at": 1.5, "heads": {"abc": "0" * 64}, "run": "abc"}, signature, keys)
        is None
    )
    changed = verify_signature({**data, "at": 1.6}, signature, keys)
    assert changed is not None
    assert "does not match" in changed


def test_a_signature_by_an_unknown_key_is_named() -> None:
    signer, other = SigningKey.generate(), SigningKey.generate()
    signature = signer.sign({"a": 1})
    problem = verify_signature({"a": 1}, signature, {other.key_id: other.public_key})
    assert problem is not None
    assert signer.key_id in problem
    assert "not a trusted key" in problem


def test_keys_and_signatures_round_trip_as_text(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "audit.pem"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = SigningKey.load(path)
    assert loaded.key_id == key.key_id
    public = PublicKey.from_text(key.public_key.to_text())
    signature = Signature.from_data(loaded.sign([1, 2]).to_data())
    assert public.verify([1, 2], signature)
    with pytest.raises(SigningError, match="never overwritten"):
        key.save(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [("rsa:AAAA", "must start with"), ("ed25519:***", "base64"), ("ed25519:AAAA", "32 bytes")],
)
def test_a_malformed_public_key_is_refused_with_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(SigningError, match=words):
        PublicKey.from_text(text)


def test_a_file_that_is_no_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "not-a-key.pem"
    path.write_text("hello")
    with pytest.raises(SigningError, match=r"not-a-key\.pem"):
        SigningKey.load(path)
