"""A database URL is never shown with its password: not by the worker's banner, not in
an error about the URL (``keel.store.urls.masked_url`` is the one place that hides it)."""

from __future__ import annotations

import pytest

from keel.errors import StoreError
from keel.runtime.stores import open_store
from keel.store.urls import masked_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db.example:5432/keel?schema=k",
         "postgresql://ann:***@db.example:5432/keel?schema=k"),
        ("postgresql://ann:p@ss@db.example/keel", "postgresql://ann:***@db.example/keel"),
        ("postgresql://ann:p/ss@db.example/keel", "postgresql://ann:***@db.example/keel"),
        ("postgres://ann@db.example/keel", "postgres://ann@db.example/keel"),
        ("postgresql://db.example/keel?sslmode=require&password=s3cret&schema=k",
         "postgresql://db.example/keel?sslmode=require&password=***&schema=k"),
        ("postgresql://ann:@db.example/keel", "postgresql://ann:***@db.example/keel"),
        ("sqlite:///.keel/keel.db", "sqlite:///.keel/keel.db"),
        (".keel/keel.db", ".keel/keel.db"),
    ],
)  # fmt: skip
def test_the_password_is_masked_and_nothing_else_changes(url: str, shown: str) -> None:
    assert masked_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ann:s3cret@127.0.0.1:5432/test?schema=Not-A-Name",
        "mysql://ann:s3cret@127.0.0.1/keel",
        "sqlite://ann:s3cret@/?synchronous=full",
        "sqlite:///tmp/keel.db?password=s3cret",
        "postgresql://ann:s3cret@127.0.0.1:1/test?password=s3cret",  # nothing listens there
    ],
)
def test_an_error_about_a_url_does_not_show_its_password(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        open_store(url)
    assert "s3cret" not in str(raised.value)
    assert "***" in str(raised.value)
