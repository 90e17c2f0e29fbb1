"""``keel verify --json``: one list with a document per run, as ``GET /runs/{id}/verify``
answers, and exit 1 when one is not intact: what a script checking runs reads."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from tests.e2e.test_audit_cli import finished_run, keel
from tests.e2e.test_run_cli import Keel

__all__ = ["keel"]


def test_verify_json_lists_each_run_and_fails_on_an_edited_one(keel: Keel) -> None:
    intact, edited = finished_run(keel), finished_run(keel)

    both = keel.ok("verify", intact, edited, "--json")
    documents = json.loads(both.stdout)
    assert [(d["run_id"], d["intact"]) for d in documents] == [(intact, True), (edited, True)]
    assert all(len(d["head_hash"]) == 64 for d in documents)

    with closing(sqlite3.connect(keel.db)) as db, db:
        db.execute("UPDATE events SET data = replace(data, '\"output\":32', '\"output\":33') "
                   "WHERE run_id = ? AND data LIKE '%node_succeeded%'", (edited,))  # fmt: skip
    failed = keel("verify", "--all", "--json")
    assert failed.returncode == 1
    found = {d["run_id"]: d for d in json.loads(failed.stdout)}
    assert found[intact]["intact"] is True
    assert found[edited]["intact"] is False
    assert found[edited]["problems"]
