"""``keel versions`` and ``keel diff`` with ``KEEL_SERVER_URL`` set: through the server
they print what they print against the database, refusals included (exit status 2)."""

from __future__ import annotations

from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def test_versions_and_diffs_print_what_the_database_gives(served: Served) -> None:
    version = served.store.deployments("review")[-1].version
    for args in (
        ["versions", "review"], ["versions", "review", "--json"],
        ["diff", served.waiting[:8], served.failed[:8]],
        ["diff", f"run:{served.waiting}", served.failed, "--json"],
        ["diff", f"review@{version[:8]}", version[:10]],
        ["diff", version, version, "--graph", "mermaid"],
    ):  # fmt: skip
        assert ok(keel(served, *args)) == ok(keel(served, *args, db=True)), args
    assert "nodes.check.status" in ok(keel(served, "diff", served.waiting, served.failed))


def test_refusals_are_the_same_line_and_status(served: Served) -> None:
    for args in (["diff", "nothing", served.failed], ["versions", "nothing"],
                 ["diff", served.failed, "version:000000000000"]):  # fmt: skip
        remote, local = keel(served, *args), keel(served, *args, db=True)
        assert (remote.exit_code, local.exit_code) == (2, 2), args
        assert remote.stderr == local.stderr, args
        assert len(remote.stderr.strip().splitlines()) == 1
