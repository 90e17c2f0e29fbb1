"""The store contract for large values: stored once by hash, named from small rows.

A value longer than the store's ``blob_threshold`` goes to the ``blobs`` table and the
event (or the run's ``input``/``output`` column) names it (``keel.store.blobs``). What a
reader of the store sees does not change: histories, first events and runs give every
value back whole. What is stored does: rows stay small, a value met many times is one
blob, and ``keel verify`` checks each blob an event names. Runs are real (driven through
the store as the runtime does); tampering is SQL on the database, as an intruder's.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from keel.engine import NodeScheduled, NodeSucceeded, RunCompleted, RunStarted
from keel.errors import StoreError
from keel.runtime.runs import RunCache
from keel.runtime.views.audit import verify_run
from keel.store import Store
from keel.store.blobs import BLOB_THRESHOLD, MARKER, blob_name, names_in, verify_blobs
from keel.store.chain import canonical_json, verify_chain
from tests.contract.conftest import Driver, three_node_spec

RUN = "run-1"
#: a node's output of 200 KB
BIG = {"text": "x" * 200_000, "n": 1}
BIG_TEXT = canonical_json(BIG)


def sql(store: Store, query: str) -> list[tuple[Any, ...]]:
    """Run ``query`` on the store's database itself, past the store (literals only)."""
    with store.dialect.write() as cur:  # type: ignore[attr-defined]
        rows = cur.execute(query)
        return list(rows.fetchall()) if query.lstrip().upper().startswith("SELECT") else []


def big_run(store: Store, run_id: str = RUN, run_input: Any = None) -> Driver:
    """A finished ``three_node_spec`` run: ``a`` outputs ``BIG``, which ``b`` takes as its
    argument ``x`` and outputs again; the run's output holds it once more (``b``)."""
    driver = Driver(store, three_node_spec(), run_id, run_input or {"n": 2})
    driver.start()
    (a,) = driver.claim()
    driver.succeed(a.lease, BIG)
    for claimed in sorted(driver.claim(), key=lambda c: c.lease.node):
        driver.succeed(claimed.lease, BIG if claimed.lease.node == "b" else ["C"])
    return driver


def event(store: Store, kind: type, node: str | None = None, run_id: str = RUN) -> Any:
    events = store.history(run_id)
    return next(
        s for s in events if isinstance(s.event, kind) and getattr(s.event, "node", None) == node
    )


def verified(store: Store, run_id: str = RUN) -> tuple[tuple[str, ...], list[str]]:
    report, mismatches = verify_run(store, store.get_run(run_id), RunCache(store).state)
    return report.problems, mismatches


# --- round trips ----------------------------------------------------------------------------


def test_a_200_kb_output_reads_back_whole_everywhere(store: Store) -> None:
    assert store.blob_threshold == BLOB_THRESHOLD  # type: ignore[attr-defined]
    big_run(store)

    assert event(store, NodeSucceeded, "a").event.output == BIG
    assert event(store, NodeScheduled, "b").event.args == {"x": BIG}
    assert event(store, RunCompleted).event.output == {"b": BIG, "c": ["C"]}
    record = store.get_run(RUN)
    assert (record.status, record.output) == ("succeeded", {"b": BIG, "c": ["C"]})
    (listed,) = store.list_runs()
    assert listed.output == record.output
    assert verified(store) == ((), [])


def test_the_history_rows_stay_small(store: Store) -> None:
    big_run(store)
    links = store.chain_links(RUN)

    longest = max(len(link.payload) for link in links)
    assert longest < 1_000, longest  # the 200 KB are in blobs, named by reference
    stored_a = next(json.loads(link.payload) for link in links
                    if link.kind == "node_succeeded" and link.node == "a")  # fmt: skip
    assert stored_a["$blobs"] == [["output"]]
    assert stored_a["output"] == {"$blob": blob_name(BIG_TEXT), "size": len(BIG_TEXT)}
    ((column,),) = sql(store, f"SELECT output FROM runs WHERE id = '{RUN}'")
    assert str(column).startswith("sha256:")  # the run's output is not copied in its row


def test_a_value_met_many_times_is_stored_once(store: Store) -> None:
    big_run(store, "run-1")
    big_run(store, "run-2")

    rows = sql(store, "SELECT name, size FROM blobs ORDER BY size")
    # BIG (a's output, b's argument x and b's output, in both runs) and the runs' output
    assert len(rows) == 2, rows
    assert next(int(size) for _, size in rows) == len(BIG_TEXT) == 200_017
    assert names_in(link.payload for link in store.chain_links("run-2")) == {
        name for name, _ in rows
    }


def test_a_value_no_longer_than_the_threshold_stays_inline(store: Store) -> None:
    store.blob_threshold = 1_000  # type: ignore[attr-defined]
    driver = Driver(store, three_node_spec(), RUN, {"n": 2})
    driver.start()
    (a,) = driver.claim()
    at_threshold = "y" * 998  # its JSON, quotes included: 1,000 characters
    driver.succeed(a.lease, at_threshold)
    b, c = sorted(driver.claim(), key=lambda claimed: claimed.lease.node)
    driver.succeed(b.lease, at_threshold + "y")  # one more: a blob
    driver.succeed(c.lease, {"$blob": "sha256:" + "0" * 64, "size": 3})  # data, not a reference

    links = {link.node: link.payload for link in store.chain_links(RUN)
             if link.kind == "node_succeeded"}  # fmt: skip
    assert not links["a"].startswith(MARKER)
    assert at_threshold in links["a"]
    assert links["b"].startswith(MARKER)
    assert at_threshold not in links["b"]
    assert not links["c"].startswith(MARKER)
    assert event(store, NodeSucceeded, "b").event.output == at_threshold + "y"
    assert event(store, NodeSucceeded, "c").event.output == {
        "$blob": "sha256:" + "0" * 64, "size": 3
    }  # fmt: skip
    assert verified(store) == ((), [])


def test_arguments_past_the_threshold_together_go_longest_first(store: Store) -> None:
    store.blob_threshold = 1_000  # type: ignore[attr-defined]
    driver = Driver(store, three_node_spec(), RUN, {"n": "z" * 600})
    driver.start()  # a's arguments: n (600), well under the threshold
    (a,) = driver.claim()
    driver.succeed(a.lease, "w" * 700)  # b's argument x: 700, itself under it too

    (scheduled,) = [json.loads(link.payload) for link in store.chain_links(RUN)
                    if link.kind == "node_scheduled" and link.node == "b"]  # fmt: skip
    assert "$blobs" not in scheduled  # 700 alone is not past 1,000
    assert event(store, NodeScheduled, "b").event.args == {"x": "w" * 700}

    big = {f"k{i}": "v" * 300 for i in range(5)}  # 1,500 together, 300 each
    first = json.loads(store.chain_links(RUN)[0].payload)
    assert "$blobs" not in first  # the input of 600
    Driver(store, three_node_spec(), "run-2", big).start()
    started = json.loads(store.chain_links("run-2")[0].payload)
    assert started["$blobs"] == [["input"]]  # a whole field: its 1,500 as one blob
    assert event(store, RunStarted, run_id="run-2").event.input == big
    assert store.first_event("run-2").event.input == big  # type: ignore[union-attr]
    assert store.get_run("run-2").input == big


def test_the_store_gives_what_an_export_needs_to_check_blobs(store: Store) -> None:
    big_run(store)
    record = store.get_run(RUN)
    links = store.chain_links(RUN)
    names = names_in(link.payload for link in links)

    blobs = store.blobs([*names, "sha256:" + "f" * 64])
    assert set(blobs) == names  # one the store lacks is left out
    assert all(blob_name(text) == name for name, text in blobs.items())
    assert verify_chain(RUN, links, record.last_seq, record.head_hash).intact
    assert verify_blobs(links, blobs) == []
    assert store.blobs([]) == {}


# --- tampering --------------------------------------------------------------------------------


def _name_of_a_output(store: Store) -> tuple[int, str]:
    link = next(link for link in store.chain_links(RUN)
                if link.kind == "node_succeeded" and link.node == "a")  # fmt: skip
    return link.seq, json.loads(link.payload)["output"]["$blob"]


def test_an_altered_blob_is_caught_by_verify_naming_the_event_and_the_blob(
    store: Store,
) -> None:
    big_run(store)
    seq, name = _name_of_a_output(store)
    sql(store, f"UPDATE blobs SET data = replace(data, '\"n\":1', '\"n\":2') WHERE name = '{name}'")

    problems, _ = verified(store)

    altered = [p for p in problems if name in p]
    assert altered
    assert all("does not match its hash (it was altered)" in p for p in altered)
    assert any(p.startswith(f"event {seq}: blob {name} (output)") for p in altered)
    # the chain itself is intact: the events name the blob they named
    record = store.get_run(RUN)
    assert verify_chain(RUN, store.chain_links(RUN), record.last_seq, record.head_hash).intact


def test_a_missing_blob_is_caught_by_verify_and_a_read_says_which(store: Store) -> None:
    big_run(store)
    seq, name = _name_of_a_output(store)
    sql(store, f"DELETE FROM blobs WHERE name = '{name}'")

    problems, mismatches = verified(store)
    assert f"event {seq}: blob {name} (output) is missing" in problems
    assert mismatches == []
    with pytest.raises(StoreError, match=f"run {RUN} event {seq}: blob {name}"):
        store.history(RUN)


# --- writers storing the same blob ------------------------------------------------------------


def test_runs_started_at_once_with_the_same_large_input_share_one_blob(store: Store) -> None:
    big_input = {"n": 2, "document": "d" * 100_000}
    drivers = [Driver(store, three_node_spec(), f"run-{i}", big_input) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda driver: driver.start(), drivers))

    assert len(sql(store, "SELECT name FROM blobs")) == 1
    for driver in drivers:
        assert store.get_run(driver.run_id).input == big_input
        assert event(store, RunStarted, run_id=driver.run_id).event.input == big_input


def test_a_group_commit_stores_a_value_its_transitions_share_once(store: Store) -> None:
    drivers = [Driver(store, three_node_spec(), f"run-{i}", {"n": 2}) for i in range(2)]
    steps = []
    for driver in drivers:
        driver.start()
        (a,) = driver.claim()
        steps.append(driver.step([NodeSucceeded(node="a", attempt=1, output=BIG)], (a.lease,)))

    results = store.commit(steps)

    assert [result.error for result in results] == [None, None]
    assert sql(store, "SELECT name FROM blobs") == [(blob_name(BIG_TEXT),)]
    for driver in drivers:
        assert event(store, NodeScheduled, "b", driver.run_id).event.args == {"x": BIG}
