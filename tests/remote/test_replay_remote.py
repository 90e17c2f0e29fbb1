"""``keel replay`` through a server (``KEEL_SERVER_URL``): the story is the API's, the
same as the database gives; ``--code`` checks code against the history the API gives,
split by the kind of each event (the recorded definition is not read over HTTP), and
finds what the database's check finds."""

from __future__ import annotations

import json
from pathlib import Path

from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel
from tests.server.serverflows import REVIEW_YAML

ADDED = REVIEW_YAML.replace(
    "nodes:\n", "nodes:\n  - id: first\n    task: tests.server.serverflows:book\n", 1
)


def test_the_story_through_the_server_is_the_databases(served: Served) -> None:
    for run in (served.failed, served.waiting):
        remote = keel(served, "replay", run, "--json")
        local = keel(served, "replay", run, "--json", db=True)
        assert remote.exit_code == local.exit_code == 0, (remote.stdout, remote.stderr)
        assert json.loads(remote.stdout) == json.loads(local.stdout)
        told = keel(served, "replay", run[:8], columns=80)
        assert told.stdout == keel(served, "replay", run[:8], db=True, columns=80).stdout


def test_code_is_checked_through_the_server_as_on_the_database(
    served: Served, tmp_path: Path
) -> None:
    same, added = tmp_path / "review.yaml", tmp_path / "added.yaml"
    same.write_text(REVIEW_YAML)
    added.write_text(ADDED)

    for code, status in ((same, 0), (added, 1)):
        remote = keel(served, "replay", served.failed, "--code", str(code), "--json")
        local = keel(served, "replay", served.failed, "--code", str(code), "--json", db=True)
        assert (remote.exit_code, local.exit_code) == (status, status), remote.stderr
        found, expected = json.loads(remote.stdout), json.loads(local.stdout)
        assert found == expected
    assert found["divergence"]["seq"] == 2
    assert found["divergence"]["decided"]["node"] == "first"
    assert "a node added before a recorded node" in found["divergence"]["explanation"]
