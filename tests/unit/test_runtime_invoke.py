"""The runtime's pieces around one attempt, without a worker loop: calling a task
(``Invocation``), the executors, the step context, lease owners, opening stores by URL,
and checking a run's input."""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import keel
from keel.engine.events import RunStarted
from keel.errors import InputError, KeelError, StoreError
from keel.runtime.execution.context import StepContext
from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from keel.runtime.operations.control import check_input, start_run
from keel.runtime.owner import Owner, known_dead, process_start
from keel.runtime.stores import ENVIRONMENT, open_store
from keel.spec import WorkflowSpec, parse_spec
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code: see task_access)

TASKS = "tests.unit.runtime_tasks"


def ctx_for(node: str = "step", attempt: int = 1, item: int | None = None) -> StepContext:
    return make_context("run-1", "wf", node, attempt, item)


def invoke(
    name: str, args: dict[str, Any] | None = None, ctx: StepContext | None = None
) -> Outcome:
    return Invocation(TaskCatalog(), f"{TASKS}:{name}", args or {}, ctx or ctx_for()).run()


def invoke_async(
    name: str, args: dict[str, Any] | None = None, timeout: float | None = None
) -> Outcome:
    invocation = Invocation(TaskCatalog(), f"{TASKS}:{name}", args or {}, ctx_for())
    return asyncio.run(invocation.run_async(timeout))


def output_of(outcome: Outcome) -> Any:
    assert outcome.error is None, outcome.error
    return outcome.output


# --- arguments --------------------------------------------------------------------------------


def test_a_pydantic_parameter_receives_a_model_instance() -> None:
    outcome = invoke("describe_claim", {"claim": {"id": "c-1", "amount": "3.5"}})
    assert output_of(outcome) == {"model": True, "id": "c-1", "amount": 3.5}


def test_a_list_of_int_parameter_is_validated_and_converted() -> None:
    assert output_of(invoke("total", {"values": [1, "2", 3]})) == 6


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("total", {"values": ["one"]}),
        ("total", {"values": 5}),
        ("describe_claim", {"claim": {"id": "c-1"}}),
    ],
)
def test_arguments_that_do_not_fit_give_a_non_retryable_argument_error(
    name: str, args: dict[str, Any]
) -> None:
    outcome = invoke(name, args)
    assert outcome.output is None
    assert outcome.error is not None
    assert outcome.error.type == "ArgumentError"
    assert outcome.error.retryable is False
    assert f"{TASKS}:{name}" in outcome.error.message


def test_defaults_apply_when_an_argument_is_missing() -> None:
    assert output_of(invoke("with_default", {"x": 1})) == [1, 5]
    assert output_of(invoke("with_default", {"x": 1, "y": 2})) == [1, 2]


def test_positional_only_parameters_are_passed_positionally() -> None:
    assert output_of(invoke("positional", {"a": 1, "b": 2, "c": 3})) == [1, 2, 3]
    assert output_of(invoke("positional", {"a": 1, "c": 3})) == [1, 10, 3]
    assert output_of(invoke("positional", {"a": 1})) == [1, 10, 100]


def test_a_missing_positional_only_parameter_does_not_shift_the_next_one() -> None:
    # ``positional_defaults(a=1, b=2, /)`` with only ``b``: a keeps its default
    assert output_of(invoke("positional_defaults", {"b": 5})) == [1, 5]


# --- results ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("make_claim", {"claim_id": "c-9"}, {"id": "c-9", "amount": 2.5}),
        ("make_point", {}, {"x": 1, "y": 2, "tags": ["a", "b"]}),
        ("make_tuple", {}, [1, "two"]),
        ("make_set", {}, [3]),
        ("echo", {"value": {"nested": [1, None, True]}}, {"nested": [1, None, True]}),
        ("echo", {}, None),
    ],
)
def test_results_become_json_data(name: str, args: dict[str, Any], expected: Any) -> None:
    assert output_of(invoke(name, args)) == expected


def test_a_result_that_cannot_be_serialised_is_a_result_not_json_error() -> None:
    outcome = invoke("make_object")
    assert outcome.error is not None
    assert outcome.error.type == "ResultNotJSON"
    assert outcome.error.retryable is False
    assert "not JSON-serialisable" in outcome.error.message
    assert "object" in outcome.error.message


def test_a_nan_result_is_not_valid_json() -> None:
    outcome = invoke("make_nan")
    assert outcome.error is not None
    assert outcome.error.type == "ResultNotJSON"
    assert "not valid JSON" in outcome.error.message


# --- exceptions -------------------------------------------------------------------------------


def test_a_builtin_exception_is_recorded_with_its_plain_name_and_traceback() -> None:
    outcome = invoke("fail_value", {"message": "kaput"})
    assert outcome.output is None
    error = outcome.error
    assert error is not None
    assert (error.type, error.message, error.retryable) == ("ValueError", "kaput", True)
    assert "fail_value" in error.traceback
    assert "ValueError: kaput" in error.traceback


def test_other_exceptions_are_named_by_module_and_qualified_name() -> None:
    outcome = invoke("fail_nested", {"message": "inner"})
    assert outcome.error is not None
    assert outcome.error.type == f"{TASKS}.Outer.TaskError"
    assert outcome.error.message == "inner"
    assert "fail_nested" in outcome.error.traceback


def test_non_retryable_is_not_retryable() -> None:
    outcome = invoke("fail_for_good", {"message": "do not retry"})
    assert outcome.error is not None
    assert outcome.error.type == "keel.errors.NonRetryable"
    assert outcome.error.retryable is False


def test_system_exit_raised_by_a_task_is_a_recorded_failure() -> None:
    outcome = invoke("exit_task")
    assert outcome.error is not None
    assert outcome.error.type == "SystemExit"
    assert outcome.error.message == "3"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("tests.unit.no_such_module:f", "tests.unit.no_such_module"),
        (f"{TASKS}:no_such_function", "no_such_function"),
    ],
)
def test_an_import_path_this_process_has_not_loaded_is_code_it_lacks(path: str, named: str) -> None:
    """Never imported on a spec's say-so: the worker gives such an attempt back for a
    worker that has the code (``keel.runtime.worker.missing_code``)."""
    outcome = Invocation(TaskCatalog(), path, {}, ctx_for()).run()
    assert outcome.error is not None
    assert outcome.error.type == "TaskCodeMissing"
    assert outcome.error.retryable is False
    assert path in outcome.error.message
    assert named in outcome.error.message


# --- the step context -------------------------------------------------------------------------


def test_a_parameter_annotated_step_context_receives_the_context() -> None:
    ctx = ctx_for(node="ctx-node", attempt=2)
    output = output_of(invoke("with_context", {"n": "4"}, ctx))
    assert output == {
        "n": 4,
        "key": "run-1:ctx-node:2",
        "same": True,
        "node": "ctx-node",
        "attempt": 2,
    }


def test_a_string_step_context_annotation_receives_the_context() -> None:
    output = output_of(invoke("with_string_context", {"n": "4"}))
    assert output == {"n": 4, "key": "run-1:step:1", "same": True}


def test_an_unresolvable_annotation_does_not_stop_the_context_injection() -> None:
    output = output_of(invoke("with_type_checking_hint", {"n": 4}))
    assert output == {"n": 4, "key": "run-1:step:1", "same": True}


def test_keel_context_inside_a_task_is_the_attempts_context() -> None:
    ctx = ctx_for(node="inner", attempt=3, item=1)
    assert output_of(invoke("context_only", {}, ctx)) == "run-1:inner[1]:3"


def test_keel_context_outside_a_task_raises_a_helpful_error() -> None:
    with pytest.raises(KeelError, match=r"only available inside a task"):
        keel.context()
    invoke("context_only")  # the context is gone again once the task returns
    with pytest.raises(KeelError, match=r"only available inside a task"):
        keel.context()


def test_idempotency_keys_name_run_node_item_and_attempt() -> None:
    assert StepContext("r", "wf", "fetch", 2).idempotency_key == "r:fetch:2"
    assert StepContext("r", "wf", "fetch", 1, item=3).idempotency_key == "r:fetch[3]:1"
    assert make_context("r", "wf", "fetch", 1, 0).idempotency_key == "r:fetch[0]:1"


# --- async tasks and the executor -------------------------------------------------------------


def test_an_async_task_returns_its_result() -> None:
    assert output_of(invoke_async("async_add", {"a": 1, "b": "2"})) == 3


def test_an_async_task_exception_is_recorded() -> None:
    outcome = invoke_async("async_fail", {"message": "async kaput"})
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ValueError", "async kaput")
    assert "async_fail" in outcome.error.traceback


def test_an_async_task_over_its_timeout_is_a_retryable_timeout() -> None:
    outcome = invoke_async("async_sleep", timeout=0.05)
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert outcome.error.retryable is True
    assert "0.05" in outcome.error.message


def test_a_timeout_error_raised_by_an_async_task_is_the_tasks_own_error() -> None:
    outcome = invoke_async("async_raises_timeout", timeout=None)
    assert outcome.error is not None
    assert outcome.error.message == "the upstream API timed out"
    assert "async_raises_timeout" in outcome.error.traceback


def test_the_executor_runs_sync_and_async_tasks_and_reports_each_once() -> None:
    done: queue.SimpleQueue[tuple[Any, Outcome]] = queue.SimpleQueue()
    executor = Executor(threads=2)
    try:
        catalog = TaskCatalog()
        executor.submit(
            "sync",
            Invocation(catalog, f"{TASKS}:total", {"values": [1, 2]}, ctx_for()),
            None,
            lambda key, outcome: done.put((key, outcome)),
        )
        executor.submit(
            "async",
            Invocation(catalog, f"{TASKS}:async_add", {"a": 2, "b": 3}, ctx_for()),
            1.0,
            lambda key, outcome: done.put((key, outcome)),
        )
        executor.submit(
            "missing",
            Invocation(catalog, f"{TASKS}:nope", {}, ctx_for()),
            None,
            lambda key, outcome: done.put((key, outcome)),
        )
        results = dict(done.get(timeout=10) for _ in range(3))
    finally:
        executor.shutdown(wait=True)
    assert done.empty()  # each on_done exactly once
    assert output_of(results["sync"]) == 3
    assert output_of(results["async"]) == 5
    assert results["missing"].error is not None
    assert results["missing"].error.type == "TaskCodeMissing"


# --- lease owners -----------------------------------------------------------------------------


def test_an_owner_round_trips_through_its_text() -> None:
    owner = Owner.for_this_process()
    assert owner.pid == os.getpid()
    assert owner.host == socket.gethostname()
    assert Owner.parse(str(owner)) == owner
    with_colons = Owner("host:with:colons", 12, "345", "abc")
    assert Owner.parse(str(with_colons)) == with_colons


@pytest.mark.parametrize("text", ["", "garbage", "host:notapid:1:tok", "a:b"])
def test_unparseable_owners_are_never_known_dead(text: str) -> None:
    assert Owner.parse(text) is None
    assert known_dead(text) is False


def _owner_text(pid: int, start: str) -> str:
    return str(Owner(socket.gethostname(), pid, start, "t0k3n"))


def test_this_process_is_not_known_dead() -> None:
    assert known_dead(str(Owner.for_this_process())) is False


def test_an_owner_on_another_host_is_not_known_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert known_dead(str(Owner("another-host.invalid", proc.pid, "1", "tok"))) is False


def test_an_exited_process_is_known_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert known_dead(_owner_text(proc.pid, "12345")) is True


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_zombie_is_known_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        start = process_start(proc.pid)
        deadline = time.monotonic() + 10
        while _state(proc.pid) != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert known_dead(_owner_text(proc.pid, start)) is True
    finally:
        proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_live_pid_with_another_start_time_is_known_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(child.pid)
        assert start
        assert known_dead(_owner_text(child.pid, start)) is False
        assert known_dead(_owner_text(child.pid, str(int(start) + 1))) is True
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_the_parent_process_with_another_start_time_is_known_dead() -> None:
    parent = os.getppid()
    try:
        os.kill(parent, 0)
    except PermissionError:
        pytest.skip("the parent process belongs to another user")
    parent_start = process_start(parent)
    assert known_dead(_owner_text(parent, parent_start)) is False
    assert known_dead(_owner_text(parent, str(int(parent_start) + 1))) is True


# --- opening stores by URL --------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    return tmp_path


def _opened(url: str | None) -> SQLiteStore:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    store.close()
    return store


def test_the_default_store_is_under_dot_keel(in_tmp: Path) -> None:
    store = _opened(None)
    assert store.path == Path(".keel") / "keel.db"
    assert (in_tmp / ".keel" / "keel.db").is_file()


def test_a_relative_sqlite_url(in_tmp: Path) -> None:
    store = _opened("sqlite:///data/runs.db")
    assert store.path == Path("data/runs.db")
    assert (in_tmp / "data" / "runs.db").is_file()


def test_an_absolute_sqlite_url(in_tmp: Path) -> None:
    target = in_tmp / "abs" / "runs.db"
    store = _opened(f"sqlite:///{target}")  # four slashes: the path is absolute
    assert str(target).startswith("/")
    assert store.path == target
    assert target.is_file()


def test_a_bare_path(in_tmp: Path) -> None:
    store = _opened("bare/keel.db")
    assert store.path == Path("bare/keel.db")
    assert (in_tmp / "bare" / "keel.db").is_file()


def test_the_lock_timeout_is_an_option(in_tmp: Path) -> None:
    assert _opened("sqlite:///wait.db?timeout=2.5").timeout == 2.5
    assert _opened("sqlite:///wait.db").timeout == 30.0


def test_synchronous_full_is_accepted(in_tmp: Path) -> None:
    store = _opened("sqlite:///sync.db?synchronous=full")
    assert store.synchronous == "full"
    assert (in_tmp / "sync.db").is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///x.db?bogus=1", r"unknown option bogus"),
        ("sqlite:///x.db?synchronous=sometimes", r"synchronous='sometimes'"),
        ("sqlite:///x.db?timeout=soon", r"timeout='soon' must be a number of seconds"),
        ("sqlite:///x.db?timeout=0", r"timeout='0' must be a number of seconds"),
        ("sqlite://", r"no file named"),
        ("mysql://db/keel", r"unknown database URL scheme 'mysql'"),
        ("postgresql://postgres@127.0.0.1:5432/test?schema=No-Such", r"schema='No-Such' must be"),
    ],
)
def test_bad_urls_are_store_errors(in_tmp: Path, url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)
    assert not (in_tmp / "x.db").exists()


def test_an_option_without_a_value_is_still_an_unknown_option(in_tmp: Path) -> None:
    with pytest.raises(StoreError, match=r"unknown option bogus"):
        open_store("sqlite:///x.db?bogus")


def test_the_environment_names_the_store(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "sqlite:///from-env.db")
    store = _opened(None)
    assert store.path == Path("from-env.db")
    assert not (in_tmp / ".keel").exists()
    explicit = _opened("sqlite:///explicit.db")  # an explicit URL wins over the environment
    assert explicit.path == Path("explicit.db")


# --- run input --------------------------------------------------------------------------------


def _typed_spec() -> WorkflowSpec:
    return parse_spec(
        {
            "name": "typed",
            "input_schema": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer"},
                    "mode": {"type": "string", "default": "fast"},
                },
                "required": ["n"],
            },
            "nodes": [{"id": "a", "task": f"{TASKS}:echo", "args": {"value": "${{ input.n }}"}}],
        }
    )


def test_input_not_matching_the_schema_lists_each_field() -> None:
    spec = _typed_spec()
    with pytest.raises(InputError) as caught:
        check_input(spec, {"n": "three", "mode": 4})
    message = str(caught.value)
    assert "'typed'" in message
    assert "input.n" in message
    assert "input.mode" in message
    with pytest.raises(InputError, match=r"'n' is a required property"):
        check_input(spec, {})
    check_input(spec, {"n": 3})


def test_start_run_refuses_bad_input_and_records_defaults(tmp_path: Path) -> None:
    spec = _typed_spec()
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        with pytest.raises(InputError, match=r"input\.n"):
            start_run(store, spec, {"n": "three"})
        assert store.list_runs() == []
        record = start_run(store, spec, {"n": 3})
        assert record.input == {"n": 3, "mode": "fast"}
        first = store.history(record.id)[0].event
        assert isinstance(first, RunStarted)
        assert first.input == {"n": 3, "mode": "fast"}
        explicit = start_run(store, spec, {"n": 3, "mode": "slow"})
        assert explicit.input == {"n": 3, "mode": "slow"}
    finally:
        store.close()


def test_a_step_context_logs_as_its_node_with_the_run_node_and_attempt() -> None:
    logger = StepContext("r", "wf", "fetch", 2).logger
    assert logger.logger.name == "keel.task.fetch"
    assert logger.extra == {"run_id": "r", "node": "fetch", "attempt": 2}
