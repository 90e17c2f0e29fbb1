"""A run's stored history checked as ``keel verify`` checks it: its hash chain against
the run's head, and the blobs (large values) its events name. One function, so
``keel verify`` and ``keel prune`` (which never signs a tombstone for a history that
does not verify) judge a history the same way."""

from __future__ import annotations

from keel.store.blobs import names_in, verify_blobs
from keel.store.chain import ChainReport, verify_chain
from keel.store.protocol import Store
from keel.store.records import RunRecord


def checked_history(store: Store, record: RunRecord) -> tuple[ChainReport, list[str]]:
    """The chain's report, and what is wrong with the blobs its events name (none:
    each is there and hashes to its name)."""
    links = store.chain_links(record.id)
    report = verify_chain(record.id, links, record.last_seq, record.head_hash)
    return report, verify_blobs(links, store.blobs(names_in(link.payload for link in links)))
