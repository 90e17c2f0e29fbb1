"""``keel worker --log-format json`` in a real process on PostgreSQL (and ``keel serve``
with its worker, on SQLite): every line it writes is one JSON object, and every line
about an attempt (the task's own, the worker's) has the attempt's run id, node and
attempt; the lines the tasks logged are kept for ``keel logs`` (a process-isolated
task's too). Waits poll with a generous deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keel.engine.events import RunStarted
from keel.store.protocol import Store
from tests.processes import free_port, keel_on, until

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("logflows.py")
DEADLINE = 60.0

pytestmark = pytest.mark.slow


def detach(url: str, workflow: str, *inputs: str) -> str:
    done = keel_on(url, "run", f"{FLOWS}:{workflow}", *inputs, "--detach", deadline=DEADLINE)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_every_line_is_json_and_the_attempts_lines_say_which(
    url: str, store: Store, tmp_path: Path
) -> None:
    retried = detach(url, "retried", "-i", "word=json")
    isolated = detach(url, "isolated", "-i", "word=child")
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", str(FLOWS), "--log-format", "json"],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        until("the runs succeeded", lambda: all(store.get_run(run_id).status == "succeeded"
                                                for run_id in (retried, isolated)))  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0

    lines = [json.loads(line) for line in log.read_text().splitlines()]  # each one JSON
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["message"].startswith("keel worker ") for line in lines)  # the banner
    task_lines = [line for line in lines if line["logger"] == "keel.task.chatty"]
    assert [(line["run_id"], line["node"], line["attempt"], line["message"])
            for line in task_lines] == [
        (retried, "chatty", attempt, f"json {n} of attempt {attempt}")
        for attempt in (1, 2) for n in (1, 2, 3)
    ]  # fmt: skip
    (failed,) = [line for line in lines if "failed" in line["message"]
                 and line["logger"] == "keel.worker"]  # fmt: skip
    assert (failed["run_id"], failed["node"], failed["attempt"]) == (retried, "chatty", 1)
    started = store.history(retried)[0].event
    assert isinstance(started, RunStarted)
    assert started.trace is not None
    assert failed["trace_id"] == started.trace["trace_id"]  # the run's, though no span is on
    assert "ValueError: the first attempt fails" in failed["message"]
    child_lines = [line for line in lines if line["logger"] == "keel.task.boxed"]
    assert [(line["run_id"], line["node"], line["attempt"], line["level"])
            for line in child_lines] == [(isolated, "boxed", 1, "WARNING"),
                                         (isolated, "boxed", 1, "ERROR")]  # fmt: skip

    shown = keel_on(url, "logs", retried, "--json", deadline=DEADLINE)
    assert shown.returncode == 0, shown.stderr
    assert [json.loads(line)["attempt"] for line in shown.stdout.splitlines()] == [1] * 3 + [2] * 3
    kept = store.task_logs(isolated)
    assert [line.message.split("\n")[0] for line in kept] == ["from the child: child", "caught it"]


def test_a_secret_a_task_lets_out_is_in_no_line_the_worker_writes_or_keeps(
    url: str, store: Store, tmp_path: Path
) -> None:
    """A task that logs its secret (its logger and a library's), raises with it and
    returns it: the worker's own output (JSON lines), the lines kept for ``keel logs``,
    the recorded error and the output all say ``[secret API_TOKEN]`` instead."""
    token = "tok-e2e-5c1d7a9f3b"
    run_id = detach(url, "secretive")
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url,
           "KEEL_SECRET_API_TOKEN": token}  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", str(FLOWS), "--log-format", "json"],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        until("the run succeeded", lambda: store.get_run(run_id).status == "succeeded")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0

    written = log.read_text()
    assert token not in written
    messages = [json.loads(line)["message"] for line in written.splitlines()]
    assert "calling with [secret API_TOKEN]" in messages
    assert "header Authorization: Bearer [secret API_TOKEN]" in messages
    assert any("the server refused [secret API_TOKEN]" in message for message in messages)
    for command in (("logs", run_id, "--json"), ("history", run_id, "--json"),
                    ("show", run_id, "--json")):  # fmt: skip
        shown = keel_on(url, *command, deadline=DEADLINE)
        assert shown.returncode == 0, shown.stderr
        assert token not in shown.stdout
        assert "[secret API_TOKEN]" in shown.stdout
    assert store.get_run(run_id).output == {"result": "sent [secret API_TOKEN]"}


def test_a_log_format_that_is_neither_text_nor_json_is_one_line(url: str) -> None:
    refused = keel_on(url, "worker", str(FLOWS), "--log-format", "xml", deadline=DEADLINE)
    assert refused.returncode == 1
    assert refused.stderr == (
        "keel worker: flag (--log-format): log_format must be text or json, got 'xml'\n"
    )


def json_lines_once(
    log: Path, proc: subprocess.Popen[bytes], what: str, ready: Callable[[], bool]
) -> list[dict[str, Any]]:
    """The JSON lines ``proc`` wrote to ``log``, stopped (SIGTERM) once ``ready()``."""
    try:
        until(what, ready)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0, log.read_text()
    return [json.loads(line) for line in log.read_text().splitlines()]  # each one JSON


def test_what_the_worker_says_before_it_starts_is_json_too(tmp_path: Path) -> None:
    """The warning that it was given no modules comes before anything else: logging is
    set up first, or it would be lost (or be text)."""
    log = tmp_path / "worker.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env |= {"PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", "--log-format", "json"], cwd=tmp_path,
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    lines = json_lines_once(log, proc, "the banner", lambda: "modules: none" in log.read_text())
    (warned,) = [line for line in lines if "no workflow modules given" in line["message"]]
    assert warned["logger"] == "keel.worker"
    assert warned["message"].startswith("keel worker: no workflow modules given;")


def test_what_keel_serves_code_logs_as_it_is_imported_is_json(tmp_path: Path) -> None:
    module = tmp_path / "loud.py"
    module.write_text("import logging\n\nlogging.getLogger('loud').warning('imported')\n")
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"}  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", str(module), "--port", str(port),
             "--log-format", "json"], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    lines = json_lines_once(log, proc, "the server answered", lambda: _healthy(port))
    assert [(line["logger"], line["level"], line["message"]) for line in lines
            if line["logger"] == "loud"] == [("loud", "WARNING", "imported")]  # fmt: skip


def test_keel_serve_with_its_worker_writes_json_lines_too(tmp_path: Path) -> None:
    """uvicorn's lines included: they go through the same handler."""
    db = f"sqlite:///{tmp_path / 'keel.db'}"
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": db,
           "KEEL_LOG_FORMAT": "json"}  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", str(FLOWS), "--with-worker", "--port",
             str(port)], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        until("the server answered", lambda: _healthy(port))
        run_id = detach(db, "retried", "-i", "word=served")
        shown: list[str] = []

        def logged() -> bool:
            done = keel_on(db, "logs", run_id, "--json", deadline=DEADLINE)
            shown[:] = done.stdout.splitlines()
            return len(shown) == 6

        until("the run's lines were kept", logged)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    loggers = {line["logger"] for line in lines}
    assert {"keel.server", "uvicorn.error", "keel.task.chatty"} <= loggers
    assert all(line["run_id"] == run_id for line in lines if line["logger"] == "keel.task.chatty")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
