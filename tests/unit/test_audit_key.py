"""The audit settings of a process (``keel.runtime.audit_key``): where the signing key
file comes from, the trusted keys, and a clear error naming the file and key for each
thing that can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.audit.signing import SigningKey
from keel.runtime.audit_key import (
    KEY_FILE_ENV,
    AuditConfig,
    AuditConfigError,
    load_audit_config,
)


def keyed(folder: Path, name: str = "audit.pem") -> SigningKey:
    made = SigningKey.generate()
    made.save(folder / name)
    return made


def write(folder: Path, text: str, name: str = "keel.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_means_no_key_and_nothing_trusted(tmp_path: Path) -> None:
    config = load_audit_config(tmp_path, environ={})
    assert config == AuditConfig()
    assert config.signing_key() is None
    assert config.trusted_keys() == {}
    with pytest.raises(AuditConfigError, match="keel audit keygen"):
        config.require_key()


def test_the_key_file_is_relative_to_the_config_files_folder(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    made = keyed(tmp_path / "secrets")
    write(tmp_path, '[audit]\nkey_file = "secrets/audit.pem"\n')
    below = tmp_path / "deep" / "er"
    below.mkdir(parents=True)

    config = load_audit_config(below, environ={})

    assert config.key_file == tmp_path / "secrets" / "audit.pem"
    assert "keel.toml" in config.key_source
    loaded = config.signing_key()
    assert loaded is not None
    assert loaded.key_id == made.key_id
    assert config.trusted_keys() == {made.key_id: made.public_key}


def test_the_environment_names_the_key_file_before_the_config(tmp_path: Path) -> None:
    keyed(tmp_path, "file.pem")
    from_env = keyed(tmp_path, "env.pem")
    old = SigningKey.generate()
    write(
        tmp_path, f'[audit]\nkey_file = "file.pem"\ntrusted_keys = ["{old.public_key.to_text()}"]\n'
    )

    config = load_audit_config(tmp_path, environ={KEY_FILE_ENV: "env.pem"})

    loaded = config.signing_key()
    assert loaded is not None
    assert loaded.key_id == from_env.key_id
    assert config.key_source == f"environment ({KEY_FILE_ENV})"
    assert set(config.trusted_keys()) == {from_env.key_id, old.key_id}


def test_pyproject_tool_keel_audit_is_read(tmp_path: Path) -> None:
    made = keyed(tmp_path)
    write(tmp_path, '[tool.keel.audit]\nkey_file = "audit.pem"\n', "pyproject.toml")
    loaded = load_audit_config(tmp_path, environ={}).signing_key()
    assert loaded is not None
    assert loaded.key_id == made.key_id


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('audit = "x"', "audit must be a table"),
        ("[audit]\nkey = 1", "unknown key 'key'"),
        ("[audit]\nkey_file = 3", "audit.key_file must be the path of a key file, got 3"),
        ('[audit]\nkey_file = " "', "audit.key_file must be the path"),
        ('[audit]\ntrusted_keys = "ed25519:x"', "audit.trusted_keys must be a list"),
        ("[audit]\ntrusted_keys = [1]", "trusted_keys entry 1 must be a string"),
        ('[audit]\ntrusted_keys = ["rsa:AAAA"]', "trusted_keys entry 1: a public key must start"),
        ('[audit]\ntrusted_keys = ["ed25519:AAAA"]', "has 32 bytes, this one 3"),
        ('[audit]\ncheckpoint_every = "soon"', "audit.checkpoint_every"),
        ('[audit]\ncheckpoint_every = "10s"', "at least a minute"),
    ],
)
def test_a_bad_audit_table_names_the_file_and_key(tmp_path: Path, table: str, said: str) -> None:
    path = write(tmp_path, table + "\n")
    with pytest.raises(AuditConfigError) as caught:
        load_audit_config(tmp_path, environ={})
    assert said in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_key_file_names_it_and_where_it_was_set(tmp_path: Path) -> None:
    path = write(tmp_path, '[audit]\nkey_file = "gone.pem"\n')
    config = load_audit_config(tmp_path, environ={})
    with pytest.raises(AuditConfigError) as caught:
        config.signing_key()
    message = str(caught.value)
    assert str(path) in message
    assert str(tmp_path / "gone.pem") in message
    assert "cannot read" in message


def test_an_unreadable_key_file_is_an_error(tmp_path: Path) -> None:
    """A folder where the file should be: unreadable as a file whoever runs the test
    (root reads a file whatever its mode)."""
    (tmp_path / "audit.pem").mkdir()
    config = load_audit_config(tmp_path, environ={KEY_FILE_ENV: "audit.pem"})
    with pytest.raises(AuditConfigError) as caught:
        config.signing_key()
    assert f"environment ({KEY_FILE_ENV}): key_file: cannot read the signing key" in str(
        caught.value
    )
    assert "Is a directory" in str(caught.value)


def test_a_file_that_is_not_a_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "audit.pem").write_text("not a key\n")
    config = load_audit_config(tmp_path, environ={KEY_FILE_ENV: "audit.pem"})
    with pytest.raises(AuditConfigError) as caught:
        config.signing_key()
    assert f"environment ({KEY_FILE_ENV})" in str(caught.value)
    assert "not an unencrypted PEM private key" in str(caught.value)


def test_the_worker_config_accepts_the_audit_table(tmp_path: Path) -> None:
    from keel.runtime.worker.config import load_worker_config

    write(tmp_path, '[audit]\ntrusted_keys = []\ncheckpoint_every = "1h"\n')
    load_worker_config(cwd=tmp_path, environ={})
    assert load_audit_config(tmp_path, environ={}).checkpoint_every == 3600.0
