"""End to end, in real ``keel`` processes: a run whose step returns 200 KB behaves as
any other (``keel run`` prints it, ``keel history`` and ``keel show`` give it whole),
its history rows stay small, and ``keel verify`` names a blob altered or removed in the
database file behind keel's back (``keel.store.blobs``)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel, find

FLOW = """
import keel


@keel.task
def report(size: int) -> dict:
    return {"lines": ["x" * 99] * (size // 100)}


@keel.task
def count(report: dict) -> int:
    return len(report["lines"])


@keel.workflow
def big(size: int) -> dict:
    made = report(size)
    return {"report": made, "lines": count(made)}
"""


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    (tmp_path / "big_flow.py").write_text(FLOW)
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def sql(keel: Keel, query: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(keel.db)) as conn, conn:
        return conn.execute(query, params).fetchall()


def test_a_200_kb_output_is_read_back_whole_and_verified(keel: Keel) -> None:
    ran = keel.run("big_flow.py", "-i", "size=200000", "-q")

    expected = {"lines": ["x" * 99] * 2000}
    assert ran.output == {"report": expected, "lines": 2000}
    events = keel.history(ran.run_id)
    (made,) = find(events, "node_succeeded", "report")
    assert made["output"] == expected
    (scheduled,) = find(events, "node_scheduled", "count")
    assert scheduled["args"] == {"report": expected}
    assert keel.show(ran.run_id)["output"] == ran.output
    longest = sql(keel, "SELECT max(length(data)) FROM events WHERE run_id = ?", ran.run_id)
    assert longest[0][0] < 1_000
    # the report (output, argument, and inside the run's output: a blob of its own)
    assert len(sql(keel, "SELECT name FROM blobs")) == 2

    verified = keel("verify", ran.run_id)
    assert verified.returncode == 0, verified.stderr
    assert f"run {ran.run_id}: {len(events)} events intact" in verified.stdout


def test_verify_names_a_blob_altered_or_removed_in_the_database(keel: Keel) -> None:
    ran = keel.run("big_flow.py", "-i", "size=200000", "-q")
    events = keel.history(ran.run_id)
    (made,) = find(events, "node_succeeded", "report")
    ((data,),) = sql(keel, "SELECT data FROM events WHERE run_id = ? AND seq = ?",
                     ran.run_id, made["seq"])  # fmt: skip
    name = json.loads(str(data))["output"]["$blob"]

    altered = sql(keel, "UPDATE blobs SET data = replace(data, 'xx', 'xy') WHERE name = ?", name)
    assert altered == []
    verified = keel("verify", ran.run_id)
    assert verified.returncode == 1
    said = " ".join(verified.stderr.split())
    assert f"run {ran.run_id}: the history was altered" in said
    assert f"event {made['seq']}: blob {name} (output) does not match its hash" in said

    sql(keel, "DELETE FROM blobs WHERE name = ?", name)
    verified = keel("verify", ran.run_id)
    assert verified.returncode == 1
    said = " ".join(verified.stderr.split())
    assert f"event {made['seq']}: blob {name} (output) is missing" in said
    assert "Traceback" not in verified.stderr
    history = keel("history", ran.run_id)
    assert history.returncode == 1
    assert f"blob {name} (output) is missing" in " ".join(history.stderr.split())
    assert "Traceback" not in history.stderr
