"""End to end, in real ``keel`` processes: the saga example compensates, a failed
compensation is visible, and failed runs are continued by hand (``keel retry``,
``keel retry --node``, ``keel skip``) with who did it in the history."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel, find, flow


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


EXAMPLE = str(Path(__file__).parents[2] / "examples" / "trip.py")


def kinds_and_nodes(events: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(event["kind"], event.get("node")) for event in events]


def test_the_saga_example_cancels_what_it_booked_newest_first(keel: Keel) -> None:
    ran = keel.run(EXAMPLE, "-i", "traveller=Ada", "-i", "city=Reykjavik")

    assert ran.proc.returncode == 1
    events = keel.history(ran.run_id)
    steps = [e["node"] for e in find(events, "node_succeeded")]
    assert steps == ["book_flight", "book_hotel", "compensate:book_hotel",
                     "compensate:book_flight", "run:on_failure"]  # fmt: skip
    (failing,) = find(events, "run_failing")
    assert failing["node"] == "book_car"
    (undo_hotel,) = find(events, "node_scheduled", "compensate:book_hotel")
    (hotel,) = find(events, "node_succeeded", "book_hotel")
    assert undo_hotel["args"]["output"] == hotel["output"]
    (told,) = find(events, "node_succeeded", "run:on_failure")
    assert "compensate" not in told["output"]
    assert "book_flight succeeded, book_hotel succeeded" in told["output"]
    assert events[-1]["kind"] == "run_failed"
    assert events[-1]["compensation_failed"] == []


def test_the_saga_example_books_everything_when_nothing_fails(keel: Keel) -> None:
    ran = keel.run(EXAMPLE, "-i", "traveller=Ada", "-i", "city=Lisbon")

    assert ran.proc.returncode == 0, ran.proc.stderr
    assert set(json.loads(ran.proc.stdout)) == {"flight", "hotel", "car"}
    assert not find(keel.history(ran.run_id), "run_failing")


def test_a_failed_compensation_is_visible(keel: Keel) -> None:
    ran = keel.run(flow("undo_fails"))

    assert ran.proc.returncode == 1
    events = keel.history(ran.run_id)
    assert [e["attempt"] for e in find(events, "node_failed", "compensate:take_money")] == [1, 2]
    assert events[-1]["compensation_failed"] == ["take_money"]
    (listed,) = json.loads(keel.ok("failed", "--json").stdout)
    assert "compensation failed for take_money" in listed["reason"]


def test_retry_continues_a_failed_run_from_its_failed_node(keel: Keel, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={marker}")
    assert ran.proc.returncode == 1

    marker.write_text("here")
    retried = keel("retry", ran.run_id[:8], "--by", "ana", "--yes")

    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {"result": "FIRST SAW FALSE; MARKER FOUND"}
    events = keel.history(ran.run_id)
    (manual,) = find(events, "run_retried")
    assert (manual["by"], manual["nodes"]) == ("ana", ["needs_marker", "last_step"])
    assert len(find(events, "node_started", "first_step")) == 1  # not run again
    # the retry's attempt has a new number: a new idempotency key
    assert [e["attempt"] for e in find(events, "node_started", "needs_marker")] == [1, 2]


def test_retry_node_reruns_that_node_and_what_depends_on_it(keel: Keel, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={marker}")
    marker.write_text("here")

    retried = keel("retry", ran.run_id, "--node", "first_step", "--yes")

    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {"result": "FIRST SAW TRUE; MARKER FOUND"}
    events = keel.history(ran.run_id)
    (manual,) = find(events, "run_retried")
    assert manual["nodes"] == ["first_step", "needs_marker", "last_step"]
    assert manual["by"]  # the OS user by default


def test_skip_sets_a_node_output_by_hand_and_the_run_goes_on(keel: Keel, tmp_path: Path) -> None:
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={tmp_path / 'never'}")
    assert ran.proc.returncode == 1

    skipped = keel(
        "skip", ran.run_id, "needs_marker", "--output", '"done by hand"', "--by", "bob",
        "--reason", "checked the file myself", "--yes",
    )  # fmt: skip

    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout) == {"result": "DONE BY HAND"}
    events = keel.history(ran.run_id)
    (manual,) = find(events, "node_set_by_hand")
    assert (manual["node"], manual["by"], manual["output"]) == (
        "needs_marker",
        "bob",
        "done by hand",
    )
    assert manual["reason"] == "checked the file myself"
    assert len(find(events, "node_started", "needs_marker")) == 1


def test_retry_refuses_a_run_that_did_not_fail(keel: Keel, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("here")
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={marker}")
    assert ran.proc.returncode == 0

    refused = keel("retry", ran.run_id)

    assert refused.returncode != 0
    assert "only a failed run can be retried" in refused.stderr
    assert not find(keel.history(ran.run_id), "run_retried")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], dict[str, object]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_webhook_is_told_of_the_failure(keel: Keel) -> None:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        keel.env["KEEL_TEST_WEBHOOK"] = f"http://127.0.0.1:{server.server_port}/hook"
        ran = keel.run(flow("notified"))
    finally:
        server.shutdown()
        server.server_close()

    assert ran.proc.returncode == 1
    assert sorted(body["event"] for _, body in _Hook.received) == ["retry_exhausted", "run_failed"]
    for headers, body in _Hook.received:
        assert body["run_id"] == ran.run_id
        assert headers["X-Team"] == "payments"
        assert headers["Idempotency-Key"]
    exhausted = next(body for _, body in _Hook.received if body["event"] == "retry_exhausted")
    assert (exhausted["node"], exhausted["attempt"]) == ("always_down", 2)
    assert exhausted["error"]["type"] == "ConnectionError"  # type: ignore[index]
