"""The PostgreSQL store (``pip install keelflow[postgres]``): many workers on many hosts."""

from keel.store.postgres.store import PostgresStore, parse_url

__all__ = ["PostgresStore", "parse_url"]
