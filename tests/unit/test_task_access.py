"""Which functions a process runs as tasks (``keel.runtime.execution.task_access``), how long an
attempt whose code is missing is given back (``keel.runtime.worker.missing_code``), and that
authoring refuses plain functions where a worker would."""

from __future__ import annotations

import sys
from unittest import mock

import pytest

import keel
from keel.engine.events import NodeFailed, NodeReclaimed
from keel.errors import OptionError
from keel.runtime.execution.task_access import TaskAccess, TaskCodeMissingError, TaskNotAllowedError
from keel.runtime.worker.missing_code import FIRST_DELAY, missing_code
from keel.spec.callables import is_keel_task
from keel.store.records import Lease, StoredEvent
from tests.unit import runtime_tasks

TASKS = "tests.unit.runtime_tasks"


def test_a_keel_task_of_a_loaded_module_resolves() -> None:
    assert TaskAccess().resolve(f"{TASKS}:echo") is runtime_tasks.echo


@pytest.mark.parametrize(
    "path", ["os:system", "subprocess:run", "builtins:eval", "shutil:rmtree", "os.path:join"]
)
def test_the_standard_library_is_never_run(path: str) -> None:
    with pytest.raises(TaskNotAllowedError, match="standard library, not a keel task"):
        TaskAccess().resolve(path)


def test_a_plain_function_of_a_loaded_module_is_not_run_unless_allowed() -> None:
    with pytest.raises(
        TaskNotAllowedError, match=r"decorate it with @keel.task, or allow it by name"
    ):
        TaskAccess().resolve(f"{TASKS}:reset")
    assert TaskAccess.allowing([f"{TASKS}:reset"]).resolve(f"{TASKS}:reset") is (
        runtime_tasks.reset
    )


def test_a_module_not_loaded_is_not_imported() -> None:
    name = "tests.unit.never_imported_by_keel"
    with pytest.raises(TaskCodeMissingError, match=f"module '{name}' was not loaded"):
        TaskAccess().resolve(f"{name}:f")
    assert name not in sys.modules


def test_an_object_that_answers_every_attribute_is_not_a_keel_task() -> None:
    assert not is_keel_task(mock.Mock())
    assert is_keel_task(runtime_tasks.echo)


def test_a_script_run_as_main_answers_to_its_file_stem(monkeypatch: pytest.MonkeyPatch) -> None:
    script = mock.Mock(spec=["__file__", "step"], __file__="/somewhere/myscript.py")
    script.step = runtime_tasks.echo
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert TaskAccess().resolve("myscript:step") is runtime_tasks.echo


def test_plain_functions_as_compensation_or_failure_handler_are_refused_when_defined() -> None:
    def undo(output: str) -> None: ...

    with pytest.raises(OptionError, match=r"compensate= takes a @keel.task, and undo is a plain"):
        keel.task(compensate=undo)
    with pytest.raises(OptionError, match=r"on_failure= takes a @keel.task"):

        @keel.workflow(on_failure=undo)
        def flow(x: int) -> int:
            return runtime_tasks.echo(x)  # type: ignore[no-any-return]


# --- giving back an attempt whose code is missing ---------------------------------------------

LEASE = Lease("run-1", "step", None, 1, "host:1:abc", 0.0)


def released(at: float) -> StoredEvent:
    event = NodeReclaimed(node="step", attempt=1, owner="w", item=None,
                          reason="worker w has no code for task m:f")  # fmt: skip
    return StoredEvent("run-1", 1, at, event, "")


def test_the_first_release_waits_a_little_and_says_which_worker_lacked_what() -> None:
    event, again = missing_code([], LEASE, "m:f", "no code", now=100.0, code_wait=300.0)
    assert isinstance(event, NodeReclaimed)
    assert event.reason == "worker host:1:abc has no code for task m:f"
    assert again == 100.0 + FIRST_DELAY


def test_releases_wait_longer_each_time_then_the_attempt_fails_for_good() -> None:
    history = [released(100.0), released(101.0)]
    event, again = missing_code(history, LEASE, "m:f", "no code", now=102.0, code_wait=300.0)
    assert isinstance(event, NodeReclaimed)
    assert again == 102.0 + FIRST_DELAY * 4

    event, again = missing_code(history, LEASE, "m:f", "no code", now=400.0, code_wait=300.0)
    assert again is None
    assert isinstance(event, NodeFailed)
    assert (event.error.type, event.error.retryable) == ("NoWorkerHasCode", False)
    assert event.error.message.startswith(
        "no worker had the code for task 'm:f' (2 tries over 300 s"
    )


def test_without_a_wait_the_attempt_fails_at_once() -> None:
    event, again = missing_code([], LEASE, "m:f", "no code here", now=1.0, code_wait=0.0)
    assert again is None
    assert isinstance(event, NodeFailed)
    assert event.error.message.startswith("no code here; load the code that defines it")


def test_the_class_of_tasks_reached_through_a_task_is_not_a_task() -> None:
    """The marker is on the class: ``mod:task.__class__`` must not pass for a task."""
    assert not is_keel_task(type(runtime_tasks.echo))
    with pytest.raises(TaskNotAllowedError):
        TaskAccess().resolve(f"{TASKS}:echo.__class__")


@pytest.mark.parametrize(
    "path",
    [
        "keel.runtime.execution.isolation:subprocess.Popen",  # the standard library reached through
        "keel.runtime.execution.isolation:os.system",  #        a loaded module's attributes
        "tests.unit.runtime_tasks:time.sleep",
        "keel.runtime.execution.isolation:kill_children",  # keel's own code
    ],
)
def test_a_notifier_is_a_function_defined_in_the_loaded_code(path: str) -> None:
    from keel.runtime.execution.task_access import notifier_function

    with pytest.raises(TaskNotAllowedError):
        notifier_function(path)
