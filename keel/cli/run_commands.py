"""``keel run``, ``keel resume``, ``keel start`` and ``keel cancel``: start, continue and
stop runs. ``keel run`` and ``keel resume`` execute runs here, so they need the database;
``keel start`` (a deployed workflow, by name) and ``keel cancel`` work over a server too.

``keel run`` executes in this process with the same worker loop a long-running worker
uses, restricted to its own run. ``--detach`` records the run and prints only its id:
on PostgreSQL the run is left on the queue for ``keel worker`` processes; on SQLite a
background ``keel resume`` process executes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import (
    DbOption,
    fail,
    load_code,
    needs_database,
    opened_client,
    opened_store,
    origin_of,
    parse_input,
    reported_errors,
    worker_settings,
)

if TYPE_CHECKING:
    from keel.engine.plan import Plan
    from keel.runtime.runs import RunCache
    from keel.runtime.worker.loop import Worker
    from keel.spec.model import WorkflowSpec
    from keel.store.protocol import Store

ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, help="Attempts run at once by this process")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or summary; only the output")
]
CodeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--code",
        help="A workflow file or module to load (the runs' tasks); repeat for more",
        show_default=False,
    ),
]
YesOption = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Load the code each run recorded (file or module) without asking"
    ),
]


InputOption = Annotated[
    str | None, typer.Option("--input", help="The run's input as a JSON object, or @file.json")
]
InputsOption = Annotated[
    list[str] | None,
    typer.Option("-i", help="One input field: key=value (JSON or text; key=@file.json)"),
]


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(resume)
    app.command()(cancel)
    app.command()(start)


def refuse_unreachable_models(spec: WorkflowSpec, command: str) -> None:
    """Refuse, before anything is recorded, a spec whose model nodes name a provider the
    ``[llm]`` config here does not have (or a config that does not read)."""
    if not any(node.kind in ("llm", "agent") for node in spec.nodes):
        return  # keel.llm (and the openai SDK) is not imported for the rest
    from keel.llm.preflight import provider_problems

    problems = provider_problems(spec)
    if problems:
        raise fail("\n".join(f"{command}: {problem}" for problem in problems))


def run(
    target: Annotated[str, typer.Argument(help="FILE[:WORKFLOW] or MODULE[:WORKFLOW]")],
    input: InputOption = None,
    inputs: InputsOption = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            "-d",
            help="Only start it and print its id; workers execute it",
        ),
    ] = False,
    concurrency: ConcurrencyOption = 8,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Run a workflow durably and print its output; exit 1 if the run fails.

    The run is recorded in the database as it goes: if this process dies, `keel resume`
    continues it where it stopped.
    """
    from keel.runtime.operations.control import start_run
    from keel.runtime.runs import RunCache

    needs_database(db, "keel run")
    settings = worker_settings()
    allow = settings.allow
    loaded = load_code(target, checked=True, allow=allow)
    run_input = parse_input(input, inputs or [], loaded.spec.input_schema)
    refuse_unreachable_models(loaded.spec, "keel run")
    with opened_store(db, upgrade=True, create=True) as store:
        cache = RunCache(store)
        with reported_errors():
            record = start_run(store, loaded.spec, run_input, origin=origin_of(target),
                               cache=cache, registry=loaded.registry)  # fmt: skip
        if detach:
            # a shared database has workers on other hosts; a local file needs a process
            if store.database_time() is None:
                _spawn_resume(record.id, db, origin_of(target))
            else:
                _say_if_no_worker(store, cache.plan(record.spec_version), target)
            typer.echo(record.id)
            return
        _execute(store, [record.id], allow, concurrency=concurrency, quiet=quiet, cache=cache,
                 inline=settings.inline)  # fmt: skip


def resume(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Runs to continue (id or unique prefix); default: every unfinished"),
    ] = None,
    code: CodeOption = None,
    yes: YesOption = False,
    concurrency: ConcurrencyOption = 8,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Continue runs that stopped before they ended (after a crash, or --detach).

    Attempts held by a process that died on this host are taken back at once; attempts
    that had finished are not run again.

    It loads the code --code names and the `modules` of the worker settings.
    The code a run recorded (its file or module) is loaded once you confirm it
    (--yes, or when asked): anyone who can start a run can write that field.
    """
    from keel.cli.resume_code import load_for
    from keel.engine.state import is_finished
    from keel.runtime.worker.config import WorkerConfigError, load_worker_config

    needs_database(db, "keel resume")
    try:
        settings = load_worker_config()
    except WorkerConfigError as exc:
        raise fail(f"keel resume: {exc}") from None
    with opened_store(db, upgrade=True) as store, reported_errors():
        if run_ids:
            records = [store.get_run(run_id) for run_id in run_ids]
        else:
            records = [
                record
                for status in ("running", "failing", "paused", "pending")
                for record in store.list_runs(status=status, limit=1_000_000)
            ]
        finished = [r for r in records if is_finished(r.status)]
        if finished:  # asked for by id: an error, before anything is resumed
            for record in finished:
                typer.echo(
                    f"run {record.id[:8]} has already ended ({record.status}): nothing to "
                    f"resume (see `keel show {record.id[:8]}`)",
                    err=True,
                )
            raise typer.Exit(1)
        if not records:
            typer.echo("no unfinished runs", err=True)
            return
        chosen = load_for(records, code or [], settings.modules, yes=yes)
        for message in chosen.left:
            typer.echo(message, err=True)
        if chosen.runs:  # exits 1 if one of them fails
            ids = [r.id for r in chosen.runs]
            _execute(store, ids, settings.allow, concurrency=concurrency, quiet=quiet,
                     inline=settings.inline)  # fmt: skip
        if chosen.left:
            raise typer.Exit(1)


def continue_run(
    run_id: str, db: str | None, *, yes: bool = False, code: list[str] | None = None
) -> None:
    """Execute a run here until it ends, after ``keel retry`` or ``keel skip`` changed it.
    A run that has ended already (the change ended it, or another process finished it
    meanwhile) gets its summary and output, as ``keel run`` prints them. ``code``: the
    code to load for it (``keel resume --code``)."""
    from rich.console import Console

    from keel.engine.state import is_finished
    from keel.runtime.runs import RunCache

    with opened_store(db) as store, reported_errors():
        record = store.get_run(run_id)
        if is_finished(record.status):
            _finish(store, [record.id], False, Console(stderr=True), RunCache(store))
            return
    resume([run_id], code=code or None, yes=yes, concurrency=8, quiet=False, db=db)


def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the history")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who (default: the OS user)")] = None,
    db: DbOption = None,
) -> None:
    """Cancel a run: nothing more is scheduled; attempts still running are discarded."""
    with opened_client(db, by=by) as client, reported_errors():
        record = client.cancel(run_id, reason=reason, by=by)
    typer.echo(f"run {record.id[:8]} cancelled")


def start(
    workflow: Annotated[str, typer.Argument(help="A deployed workflow's name")],
    input: InputOption = None,
    inputs: InputsOption = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="A deployed version (or a prefix of it, 6+ characters)"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Start at most one run with this key: a repeat prints the first run's id",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Start a run of a deployed workflow (`keel deploy`) and print its id; workers
    execute it. Needs no workflow code here: with KEEL_SERVER_URL, the server starts it."""
    run_input = parse_input(input, inputs or [])
    with opened_client(db) as client, reported_errors():
        run_id = client.start(workflow, run_input, version=version, idempotency_key=key)
    typer.echo(run_id)


def _say_if_no_worker(store: Store, plan: Plan, target: str) -> None:
    """Warn (the run is recorded all the same) about each queue of the run's steps that
    no live worker takes: nothing will execute them until one starts."""
    from keel.authoring.loading import split_target
    from keel.runtime.worker.presence import queues_without_worker

    now = store.database_time()
    assert now is not None  # a shared database
    queues = sorted({node.queue for node in plan.nodes.values() if node.queue})
    code = split_target(target)[0]
    for queue in queues_without_worker(store, queues, now):
        typer.echo(
            f"no live worker takes queue {queue}: start one with `keel worker {code}`", err=True
        )


def _spawn_resume(run_id: str, db: str | None, origin: str) -> None:
    from keel.runtime.stores import store_url

    logs = Path(".keel") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KEEL_DATABASE_URL": store_url(db)}
    with (logs / f"{run_id}.log").open("ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "keel", "resume", run_id, "--quiet", "--code", origin],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )


def _execute(
    store: Store,
    run_ids: list[str],
    allow: tuple[str, ...],
    *,
    concurrency: int,
    quiet: bool,
    cache: RunCache | None = None,
    inline: bool = True,
) -> None:
    from rich.console import Console

    from keel.runtime.execution.invoke import TaskCatalog
    from keel.runtime.execution.task_access import TaskAccess
    from keel.runtime.runs import RunCache
    from keel.runtime.worker.loop import Worker, WorkerOptions

    console = Console(stderr=True)
    cache = cache or RunCache(store)
    live_view = None
    if not quiet and len(run_ids) == 1:
        from keel.cli.progress import LiveProgress

        live_view = LiveProgress(cache.plan(store.get_run(run_ids[0]).spec_version), run_ids[0])
    worker = Worker(
        store,
        # exit when the runs end: a thread still running a timed-out attempt is abandoned
        # (and named), not waited for
        WorkerOptions(
            concurrency=concurrency,
            late_grace=0.0,
            announce=True,
            runs=tuple(run_ids),
            inline=inline,
        ),
        observer=_waits_shown(console, live_view.observe if live_view is not None else None),
        cache=cache,
        catalog=TaskCatalog(TaskAccess.allowing(allow)),
    )
    worker.reclaim()
    worker.announce()  # before saying what the runs wait for: a decision finds it listed
    _open_waits_shown(console, store, run_ids)
    try:
        _work(worker, run_ids, live_view, console)
    except KeyboardInterrupt:
        worker.close()
        console.print(f"interrupted; continue with: keel resume {' '.join(r[:8] for r in run_ids)}")
        sys.stdout.flush()
        os._exit(130)  # attempts still running in threads cannot be stopped; do not wait
    worker.close()
    _finish(store, run_ids, quiet, console, cache)


def _waits_shown(console: Any, then: Any) -> Any:
    """An observer that says what a run waits for as it begins to wait, with the command
    that ends the wait (the process goes on waiting, holding no thread for it)."""
    from keel.engine.events import NodeAwaiting

    def observe(events: list[Any]) -> None:
        if then is not None:
            then(events)
        for stored in events:
            event = stored.event
            if isinstance(event, NodeAwaiting):
                _say_wait(console, stored.run_id, event.node, event.waits_for, event.details,
                          event.until)  # fmt: skip

    return observe


def _open_waits_shown(console: Any, store: Store, run_ids: list[str]) -> None:
    """Say what the runs wait for already (``keel resume``, ``keel retry``: the waits
    opened before this process started, so no new event will announce them), as
    ``_waits_shown`` says it for the waits that open while the process runs."""
    for run_id in run_ids:
        for wait in store.waits(run_id=run_id):
            _say_wait(console, run_id, wait.node, wait.waits_for, wait.details, wait.until)


def _say_wait(
    console: Any, run_id: str, node: str, waits_for: str, details: Any, until: float | None
) -> None:
    """One line: what ``node`` waits for and the command that ends the wait (a timer
    ends by itself: nothing to say)."""
    from keel.runtime.views.report import NodeReport, describe_wait

    if waits_for == "timer":
        return
    report = NodeReport(node, waits_for=waits_for, wait=details, until=until)
    console.print(f"{node} waits for {describe_wait(report, run_id)}", markup=False,
                  highlight=False)  # fmt: skip


def _work(worker: Worker, run_ids: list[str], live_view: Any, console: Any) -> None:
    with reported_errors():
        if live_view is not None and console.is_terminal:
            from rich.live import Live

            with Live(live_view, console=console, refresh_per_second=8, transient=True):
                worker.run_until_finished(run_ids)
        else:
            worker.run_until_finished(run_ids)


def _finish(store: Store, run_ids: list[str], quiet: bool, console: Any, cache: RunCache) -> None:
    from keel.runtime.views.report import run_report

    failed = False
    for run_id in run_ids:
        record = store.get_run(run_id)
        if not quiet:
            from keel.cli.progress import print_summary

            report = run_report(cache.plan(record.spec_version), store.history(run_id))
            print_summary(console, report, run_id)
        if record.status == "succeeded":
            typer.echo(json.dumps(record.output, indent=2, ensure_ascii=False))
            spec = cache.plan(record.spec_version).spec
            if not quiet and record.output == {} and not spec.outputs:  # a YAML's, mostly
                typer.echo(f"(workflow {spec.name} declares no outputs: `keel show "
                           f"{run_id[:8]}` has what each step returned)", err=True)  # fmt: skip
            continue
        failed = True
        if quiet:
            typer.echo(f"run {run_id[:8]} {record.status}: {record.reason}", err=True)
    if failed:
        raise typer.Exit(1)
