"""Twenty copies of one delivery sent at once to a real server (uvicorn on a free port,
TCP, the server's thread pool, SQLite): one run starts, every copy answers with it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from tests.remote.conftest import Served
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed

COPIES = 20


def test_concurrent_copies_of_a_delivery_start_one_run(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_hooked(served.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    content, headers = signed({"amount": 7}, delivery="delivery-1")
    together = threading.Barrier(COPIES)

    def send(_: int) -> tuple[int, str]:
        with httpx2.Client(base_url=served.url, timeout=30) as http:
            together.wait()
            response = http.post("/hooks/orders", content=content, headers=headers)
        (run,) = response.json()["runs"]
        return response.status_code, run["id"]

    with ThreadPoolExecutor(COPIES) as pool:
        answers = list(pool.map(send, range(COPIES)))

    assert sorted(status for status, _ in answers) == [200] * (COPIES - 1) + [201]
    assert len({run for _, run in answers}) == 1
    (record,) = served.store.list_runs(workflow="hooked")
    assert record.id == answers[0][1]
