"""Which functions ``keel run`` and ``keel worker`` run (``keel.runtime.execution.task_access``,
``keel.runtime.worker.missing_code``), in real processes on a SQLite file.

A spec naming a function that is not a keel task (``os:system``) fails its attempt at
once, without retries, and the function never runs; a plain function the settings allow
runs; a keel task in a module the worker did not load is never imported: the worker
gives the attempt back for one that has the code, and past ``code_wait`` it fails. Two
workers, one without the code: every run succeeds and the history says who gave what
back. Waits poll the database with a generous deadline; nothing asserts on durations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.authoring.yaml_source import load_yaml
from keel.engine.events import NodeFailed, NodeReclaimed, NodeStarted
from keel.runtime.operations.control import start_run
from keel.store.protocol import Store
from keel.store.records import StoredEvent
from keel.store.sqlite import SQLiteStore
from tests.processes import until

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

#: functions a spec must not be able to run, with arguments that would leave a marker
FORBIDDEN = {
    "os:system": ("command", "${{ input.cmd }}"),
    "subprocess:run": ("args", "${{ input.argv }}"),
    "builtins:eval": ("source", "${{ input.code }}"),
}

STEPS = """\
from pathlib import Path

import keel


def plain(path: str) -> str:
    Path(path).write_text("ran")
    return "plain ran"


@keel.task
def bystander(x: int) -> int:
    return x
"""

#: a module no worker is told to load: importing it, or running its task, leaves a file
OTHER = """\
from pathlib import Path

import keel

Path("imported-other").write_text("the module was imported")


@keel.task
def sneaky(path: str) -> str:
    Path(path).write_text("ran")
    return "sneaky ran"
"""

CAPABLE = """\
import keel


@keel.task
def step(x: int) -> int:
    return x + 1


@keel.workflow
def bump(x: int) -> int:
    return step(x)
"""


def yaml_flow(path: Path, task: str, arg: str, value: str) -> Path:
    path.write_text(f"name: {path.stem}\nnodes:\n  - id: s\n    task: {task}\n"
                    f"    args:\n      {arg}: {json.dumps(value)}\n")  # fmt: skip
    return path


def env_for(url: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}


def keel(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=cwd, env=env_for(f"sqlite:///{cwd}/k.db"),
        capture_output=True, text=True, timeout=DEADLINE, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``keel worker`` processes (on the test's SQLite file unless ``url=``)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, url: str = f"sqlite:///{tmp_path}/k.db") -> subprocess.Popen[bytes]:
        with (tmp_path / f"worker-{len(started)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keel", "worker", *args], cwd=tmp_path,
                env=env_for(url), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        assert proc.wait(timeout=DEADLINE) == 0, (tmp_path / "worker-0.log").read_text()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "k.db")
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """The store the workers share, and its URL: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "k.db")
        yield f"sqlite:///{tmp_path}/k.db", opened
        opened.close()
        return
    from tests.postgres import fresh_url, open_postgres

    address = fresh_url()
    postgres = open_postgres(address)
    yield address, postgres
    postgres.drop_schema()
    postgres.close()


def ended(store: Store, run_ids: list[str]) -> bool:
    return all(store.get_run(r).status in ("succeeded", "failed") for r in run_ids)


def failure(history: list[StoredEvent]) -> NodeFailed:
    (failed,) = [e.event for e in history if isinstance(e.event, NodeFailed)]
    return failed


def started(history: list[StoredEvent]) -> int:
    return sum(isinstance(e.event, NodeStarted) for e in history)


def releases(history: list[StoredEvent]) -> list[NodeReclaimed]:
    return [e.event for e in history if isinstance(e.event, NodeReclaimed)]


def attack_input(marker: Path) -> dict[str, Any]:
    return {"cmd": f"touch {marker}", "argv": ["touch", str(marker)],
            "code": f"open({str(marker)!r}, 'w')"}  # fmt: skip


@pytest.mark.parametrize("task", sorted(FORBIDDEN))
def test_keel_run_refuses_a_function_that_is_not_a_keel_task(
    tmp_path: Path, store: SQLiteStore, task: str
) -> None:
    marker = tmp_path / "marker"
    arg, value = FORBIDDEN[task]
    flow = yaml_flow(tmp_path / "attack.yaml", task, arg, value)

    result = keel(tmp_path, "run", str(flow), "--input", json.dumps(attack_input(marker)))

    assert result.returncode == 1
    said = " ".join((result.stdout + result.stderr).split())
    assert task in said, said
    assert "not a keel task" in said, said
    assert "Traceback" not in said
    assert not marker.exists()
    for record in store.list_runs():  # if it was recorded at all, its attempt failed
        history = store.history(record.id)
        error = failure(history).error
        assert (error.type, error.retryable) == ("TaskNotAllowed", False)
        assert started(history) == 1  # not retried


def test_a_worker_runs_only_keel_tasks_of_its_code_and_allowed_functions(
    tmp_path: Path, store: SQLiteStore, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "other.py").write_text(OTHER)
    marker = tmp_path / "marker"
    attacks = {
        task: start_run(
            store, load_yaml(yaml_flow(tmp_path / f"a{i}.yaml", task, *FORBIDDEN[task]))[0],
            attack_input(marker),
        ).id
        for i, task in enumerate(sorted(FORBIDDEN))
    }  # fmt: skip
    plain_flow = yaml_flow(tmp_path / "plain.yaml", "steps:plain", "path", "${{ input.path }}")
    plain = start_run(store, load_yaml(plain_flow)[0], {"path": str(tmp_path / "plain")}).id
    other_flow = yaml_flow(tmp_path / "other.yaml", "other:sneaky", "path", "${{ input.path }}")
    sneaky = start_run(store, load_yaml(other_flow)[0], {"path": str(tmp_path / "sneaky")}).id

    workers(str(tmp_path / "steps.py"), "--allow", "steps:plain", "--code-wait", "0.5")
    until("every run ended", lambda: ended(store, [*attacks.values(), plain, sneaky]))

    for task, run_id in attacks.items():
        history = store.history(run_id)
        error = failure(history).error
        assert (error.type, error.retryable) == ("TaskNotAllowed", False)
        assert task in error.message
        assert "not a keel task" in error.message
        assert "standard library" in error.message
        assert started(history) == 1
        assert store.get_run(run_id).status == "failed"
    assert not marker.exists()
    # allowed by name: a plain function runs
    assert store.get_run(plain).status == "succeeded"
    assert (tmp_path / "plain").read_text() == "ran"
    # a keel task of a module the worker did not load: never imported, never run
    history = store.history(sneaky)
    error = failure(history).error
    assert (error.type, error.retryable) == ("NoWorkerHasCode", False)
    assert "no worker had the code for task 'other:sneaky'" in error.message
    assert all("has no code for task other:sneaky" in r.reason for r in releases(history))
    assert releases(history)
    assert not (tmp_path / "imported-other").exists()
    assert not (tmp_path / "sneaky").exists()


def test_a_worker_without_the_code_leaves_the_attempt_to_one_that_has_it(
    tmp_path: Path, shared: tuple[str, Store], workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    url, store = shared
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "capable.py").write_text(CAPABLE)
    spec = yaml_flow(tmp_path / "bump.yaml", "capable:step", "x", "${{ input.x }}")
    runs = [start_run(store, load_yaml(spec)[0], {"x": n}).id for n in range(6)]

    workers(str(tmp_path / "steps.py"), url=url)  # without capable.py
    until("the worker without the code gave an attempt back",
          lambda: any(releases(store.history(r)) for r in runs))  # fmt: skip
    workers(str(tmp_path / "capable.py"), url=url)
    until("every run ended", lambda: ended(store, runs))

    assert [store.get_run(r).status for r in runs] == ["succeeded"] * len(runs)
    given_back = [event for r in runs for event in releases(store.history(r))]
    assert given_back
    for event in given_back:
        assert event.reason == f"worker {event.owner} has no code for task capable:step"


def test_with_no_worker_that_has_the_code_the_attempt_fails_after_code_wait(
    tmp_path: Path, store: SQLiteStore, workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "capable.py").write_text(CAPABLE)
    spec = yaml_flow(tmp_path / "bump.yaml", "capable:step", "x", "${{ input.x }}")
    run_id = start_run(store, load_yaml(spec)[0], {"x": 1}).id

    workers(str(tmp_path / "steps.py"), "--code-wait", "0.5")
    until("the run ended", lambda: ended(store, [run_id]))

    history = store.history(run_id)
    assert store.get_run(run_id).status == "failed"
    error = failure(history).error
    assert (error.type, error.retryable) == ("NoWorkerHasCode", False)
    assert error.message.startswith("no worker had the code for task 'capable:step' (")
    assert "start a worker with the code that defines it" in error.message
    assert len(releases(history)) >= 1
