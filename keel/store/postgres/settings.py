"""What a ``postgresql://`` URL means for the store: the connection string, the schema,
and the settings every connection of the store is made with."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict

from keel.errors import StoreError
from keel.store.urls import masked_url

DEFAULT_SCHEMA = "keel"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def parse_url(url: str) -> tuple[str, str]:
    """The psycopg connection string and the schema a ``postgresql://`` URL names
    (``?schema=NAME``, default ``keel``; every other option goes to libpq)."""
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept: list[tuple[str, str]] = []
    for key, value in options:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"{masked_url(url)}: schema={schema!r} must be lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    scheme = "postgresql"
    query = urlencode(kept, quote_via=quote)  # libpq reads "+" as itself, not a space
    conninfo = urlunsplit((scheme, parts.netloc, parts.path, query, parts.fragment))
    return conninfo, schema


def connection_settings(conninfo: str, schema: str) -> dict[str, Any]:
    """Settings of every connection the store makes: its schema, a name the server shows
    (``pg_stat_activity``), and a bound on how long a dead server can make it wait. The
    URL's own settings win."""
    given = conninfo_to_dict(conninfo)
    options = f"{given.get('options') or ''} -c search_path={schema}".strip()
    settings: dict[str, Any] = {"options": options}
    defaults: dict[str, Any] = {
        "application_name": f"keel {os.getpid()}",
        "connect_timeout": 10,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    settings.update({key: value for key, value in defaults.items() if key not in given})
    return settings
