"""The PostgreSQL store (``pip install keelflow[postgres]``): many workers on many hosts."""

from keel.store.postgres.settings import parse_url
from keel.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "parse_url"]
