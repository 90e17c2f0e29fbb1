"""``keel audit export`` with ``KEEL_SERVER_URL`` set: streamed from the server's
``GET /audit/export`` over TCP, the same runs and events as an export of the database,
and a token that may not audit refused with the server's words."""

from __future__ import annotations

from pathlib import Path

from tests.audit.exports import lines_of, verified
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def records(path: Path) -> list[bytes]:
    """The run and event lines: what two exports of the same runs share (their headers
    say when each was made)."""
    return [line for line in lines_of(path.read_bytes())
            if line.startswith((b'{"type":"run"', b'{"type":"event"'))]  # fmt: skip


def test_an_export_through_the_server_is_the_databases(served: Served, tmp_path: Path) -> None:
    remote, local = tmp_path / "remote.jsonl", tmp_path / "local.jsonl"
    result = keel(served, "audit", "export", "-o", str(remote), role="auditor")
    assert result.exit_code == 0, result.stderr
    assert "exported 3 runs" in result.stderr
    ok(keel(served, "audit", "export", "-o", str(local), db=True))
    assert records(remote) == records(local)
    report = verified(remote.read_bytes())
    assert report is not None
    assert report.intact, report.problems

    piped = ok(keel(served, "audit", "export", served.failed[:8], "--format", "csv",
                    role="auditor"))  # fmt: skip
    assert piped.splitlines()[1].startswith(served.failed)


def test_a_token_that_may_not_audit_is_told_so(served: Served) -> None:
    result = keel(served, "audit", "export", role="viewer")
    assert result.exit_code == 1
    assert "auditor" in result.stderr
    assert "Traceback" not in result.stderr
