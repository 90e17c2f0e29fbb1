"""What an export carries besides events, from the store itself: the tombstone of a
pruned run and the blobs of large values, so that an offline verification covers them
(a pruned run verifies by its signed tombstone, a large value by its blob's hash)."""

from __future__ import annotations

import json

from keel.audit.export import Selection
from keel.audit.retention import prune
from keel.audit.signing import SigningKey
from keel.store import Store
from tests.audit.exports import export_of, lines_of, problems, verified
from tests.contract.conftest import T0, finished_three_node_run
from tests.contract.test_blobs_store import BIG_TEXT, big_run

KEY = SigningKey.generate()


def _typed(data: bytes, kind: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in lines_of(data)]
    return [line for line in lines if line["type"] == kind]


def test_a_pruned_run_is_exported_with_its_tombstone_and_verifies(store: Store) -> None:
    finished_three_node_run(store, "old")
    prune(store, T0 + 1000, now=lambda: T0 + 90 * 86_400, key=KEY, by="ops")

    data = export_of(store, Selection(runs=("old",)))

    (tombstone,) = _typed(data, "tombstone")
    assert tombstone["run_id"] == "old"
    assert _typed(data, "event") == []
    report = verified(data, [KEY.public_key])
    assert report is not None
    assert report.intact, report.problems
    forged = data.replace(b'"by":"ops"', b'"by":"eve"')
    assert forged != data
    assert problems(forged, [KEY.public_key])


def test_the_blobs_a_run_names_are_exported_once_and_checked(store: Store) -> None:
    store.blob_threshold = 1_000  # type: ignore[attr-defined]
    big_run(store)

    data = export_of(store, Selection(runs=("run-1",)))

    blobs = _typed(data, "blob")
    names = [blob["name"] for blob in blobs]
    assert len(names) == len(set(names)) >= 2  # the output, and the run's output holding it
    assert BIG_TEXT in [blob["text"] for blob in blobs]
    report = verified(data)
    assert report is not None
    assert report.intact, report.problems
    altered = data.replace(b"xxxxxxxxxx", b"xxxxxxxxxy", 1)
    assert altered != data
    assert problems(altered)
