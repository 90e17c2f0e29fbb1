"""A Redis stream consumer killed (SIGKILL, a real process) in the middle of a batch
loses nothing and doubles nothing: another consumer of the group claims what it left
unacknowledged, and each distinct message id starts exactly one run, duplicates in the
stream included. Needs a Redis server on 127.0.0.1:6379 (skipped without one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.runtime.runs import RunCache
from keel.runtime.triggers.events import emit
from keel.runtime.triggers.redis_source import RedisSource
from keel.store.sqlite import SQLiteStore
from tests.processes import ROOT
from tests.server.hookflows import deploy_hooked

redis = pytest.importorskip("redis")
URL = "redis://127.0.0.1:6379/0"
MESSAGES = 1000
DISTINCT = 700
#: the last 300 messages repeat ids 400..699 (same data): the duplicates come after
#: where the first consumer dies, so none of them can hide a message it lost


def message_number(i: int) -> int:
    return i if i < DISTINCT else i - DISTINCT + (2 * DISTINCT - MESSAGES)


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    client = redis.Redis.from_url(URL, decode_responses=True)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    name = f"keel-test-{uuid.uuid4().hex}"
    try:
        yield client, name
    finally:
        client.delete(name, f"{name}:dead")
        client.close()


def publish(client: Any, name: str) -> None:
    with client.pipeline(transaction=False) as pipe:
        for i in range(MESSAGES):
            number = message_number(i)
            pipe.xadd(name, {"event": "order", "id": f"m-{number}",
                             "data": json.dumps({"amount": number + 1})})  # fmt: skip
        pipe.execute()


def wait_for(condition: Any, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"gave up waiting: {what}"
        time.sleep(0.01)


def test_a_consumer_killed_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, stream: tuple[Any, str]
) -> None:
    client, name = stream
    store = SQLiteStore(tmp_path / "keel.db")
    deploy_hooked(store)
    publish(client, name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "consumer-a.log"
    with log.open("wb") as output:
        first = subprocess.Popen(
            [sys.executable, "-m", "keel", "consume", URL, "--stream", name, "--consumer", "a",
             "--claim-after", "1", "--db", f"sqlite:///{tmp_path / 'keel.db'}"],
            env=env, stdout=subprocess.DEVNULL, stderr=output,
        )  # fmt: skip
    try:
        wait_for(lambda: first.poll() is not None or len(store.list_runs(limit=10_000)) >= 150,
                 "the first consumer to start 150 runs")  # fmt: skip
        assert first.poll() is None, log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    left = client.xpending(name, "keel")
    # it died holding entries it had read, maybe emitted, and not acknowledged
    assert left["pending"] > 0, "the kill fell between two batches: nothing left to claim"
    assert len(store.list_runs(limit=10_000)) < DISTINCT

    plans = RunCache(store, capacity=0)
    second = RedisSource(client, name, lambda n, d, m: emit(store, n, d, m, plans),
                         consumer="b", claim_after=1.0)  # fmt: skip
    done = False

    def drained() -> bool:
        nonlocal done
        handled = second.step(block=0.1)
        done = handled == 0 and client.xpending(name, "keel")["pending"] == 0
        return done

    wait_for(drained, "the second consumer to drain the stream")

    runs = store.list_runs(workflow="hooked", limit=10_000)
    assert len(runs) == DISTINCT
    assert sorted(r.input["amount"] for r in runs) == list(range(1, DISTINCT + 1))
    assert {r.started_by for r in runs} == {"event:order"}
    assert client.xlen(f"{name}:dead") == 0
    store.close()


def test_an_entry_no_run_can_take_is_dead_lettered_and_acknowledged(
    tmp_path: Path, stream: tuple[Any, str]
) -> None:
    client, name = stream
    store = SQLiteStore(tmp_path / "keel.db")
    deploy_hooked(store)
    client.xadd(name, {"data": "{}"})  # no event name
    client.xadd(name, {"event": "order", "data": "{nope"})
    client.xadd(name, {"event": "order", "data": '{"amount": "x"}'})  # the schema refuses it
    good = client.xadd(name, {"event": "order", "data": '{"amount": 1}'})  # id: the entry's
    source = RedisSource(client, name, lambda n, d, m: emit(store, n, d, m), consumer="c")
    source.prepare()
    assert source.step(block=0.1) == 4
    assert client.xpending(name, "keel")["pending"] == 0
    dead = client.xrange(f"{name}:dead")
    assert len(dead) == 3
    assert all(fields["error"] for _, fields in dead)
    (run,) = store.list_runs(workflow="hooked")
    assert run.input == {"amount": 1}
    client.xadd(name, {"event": "order", "data": '{"amount": 1}', "id": good})
    source.step(block=0.1)  # the same message id again: no second run
    assert len(store.list_runs(workflow="hooked")) == 1
    store.close()
