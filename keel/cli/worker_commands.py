"""``keel worker`` (a long-running worker process) and ``keel db upgrade``.

A worker imports the workflow code it is told about (so the tasks its runs call, and the
definitions of child runs, are known), then claims and executes attempts of any run in
the store, on its queues, until SIGTERM or SIGINT. Then it stops claiming, lets what is
running finish for up to ``--grace`` seconds, and gives the rest back to the queue, so
another worker takes it at once instead of after its lease expires.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import DbOption, database_url, fail, import_code, reported_errors

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from keel.audit.signing import SigningKey
    from keel.runtime.alerts.rules import AlertRule
    from keel.runtime.metrics import Metrics
    from keel.runtime.tracing.sdk import Tracing
    from keel.runtime.worker.config import WorkerConfig
    from keel.runtime.worker.loop import Worker

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="How the log is written to stderr: text, or json (one object per line, "
        "with run_id, node and attempt on lines about an attempt; default text)",
        show_default=False,
    ),
]


def configure_logging(log_format: str) -> None:
    """Log to stderr in ``log_format`` (``keel.runtime.log_lines``)."""
    from keel.runtime.log_lines import configure

    configure(log_format)


def say(text: str, log_format: str, logger: str) -> None:
    """Tell the operator something on stderr: as it is with text logs, as a log line
    per line of ``text`` with JSON logs (so that every line on stderr is JSON)."""
    if log_format == "text":
        typer.echo(text, err=True)
        return
    for line in text.splitlines():
        logging.getLogger(logger).info(line.strip())


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(db_app, name="db")
    db_app.command("upgrade")(upgrade)


def worker(
    modules: Annotated[
        list[str] | None,
        typer.Argument(
            help="Workflow files or modules to import (default: `modules` of keel.toml or "
            "\\[tool.keel] in pyproject.toml, or KEEL_WORKER_MODULES)",
            show_default=False,
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-Q", help="Take attempts only from these queues: q1,q2"),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Attempts run at once (default 8)"),
    ] = None,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="On SIGTERM, seconds to let running attempts finish"),
    ] = 30.0,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: config files, KEEL_DATABASE_URL)"),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="A plain function (module:function) to run as a task besides the "
            "@keel.task functions of the code loaded; repeat for more",
            show_default=False,
        ),
    ] = None,
    code_wait: Annotated[
        float | None,
        typer.Option(
            "--code-wait",
            min=0,
            help="Seconds an attempt whose code this worker lacks is left to other "
            "workers before it fails (default 300)",
            show_default=False,
        ),
    ] = None,
    inline: Annotated[
        bool | None,
        typer.Option(
            "--inline/--no-inline",
            help="Run tasks proven fast (under 1 ms) on the worker's own thread (default on)",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics on this port, at /metrics. "
            "Plain HTTP without a token: anyone who reaches the port reads them, so keep "
            "it on the loopback or a private network, never exposed (default: off)",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(
            "--metrics-host",
            help="The address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 for "
            "every interface, for a Prometheus on another host of a private network)",
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Execute runs from the database until stopped (SIGTERM or Ctrl-C).

    Settings come from, highest first: the flags, the environment (KEEL_WORKER_MODULES,
    KEEL_QUEUES, KEEL_CONCURRENCY, KEEL_DATABASE_URL, KEEL_ALLOW, KEEL_CODE_WAIT,
    KEEL_INLINE, KEEL_METRICS_PORT, KEEL_METRICS_HOST and KEEL_LOG_FORMAT), keel.toml,
    \\[tool.keel] in pyproject.toml.
    Pending database migrations are applied when the worker starts.

    It runs only the @keel.task functions of the code it loads, and the plain
    functions `allow` names: an attempt of anything else fails, not retried.
    An attempt whose code it has not loaded is left to other workers.

    The alert rules of keel.toml (\\[\\[alerts]]) are evaluated by one worker or server
    at a time; see `keel alerts`.
    """
    from keel.errors import StoreError
    from keel.runtime.alerts.service import start_alerts
    from keel.runtime.checkpointing import start_checkpoints
    from keel.runtime.execution.invoke import TaskCatalog
    from keel.runtime.execution.task_access import TaskAccess
    from keel.runtime.stores import open_store
    from keel.runtime.triggers.files import watch_in_thread
    from keel.runtime.worker.config import WorkerConfigError, load_worker_config
    from keel.runtime.worker.loop import Worker, WorkerOptions
    from keel.spec.durations import format_duration
    from keel.store.wakeups import MaybeMissed

    try:
        config = load_worker_config(
            modules=modules or (), queues=queues, concurrency=concurrency, database_url=db,
            allow=allow or (), code_wait=code_wait, inline=inline, metrics_port=metrics_port,
            metrics_host=metrics_host, log_format=log_format,
        )  # fmt: skip
    except WorkerConfigError as exc:
        raise fail(f"keel worker: {exc}") from None
    configure_logging(config.log_format)  # first: the code imported may log, as may we
    alert_rules = load_alerts("keel worker")
    checkpoint_key, checkpoint_every = load_checkpointing("keel worker")
    _import_code(config)
    traced = export_traces("keel worker", "keel-worker")
    with reported_errors():
        store = open_store(database_url(config), upgrade=True)
    stop = threading.Event()
    started: list[Worker] = []

    def on_signal(*_: object) -> None:
        stop.set()
        for woken in started:  # a listening worker sleeps until woken (or its safety poll);
            # from a thread: the handler may have interrupted the worker's own queue
            threading.Thread(target=woken.outcomes.wake, args=(MaybeMissed(),)).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    options = WorkerOptions(
        concurrency=config.concurrency, queues=config.queues, stop_grace=grace,
        announce=True, code_wait=config.code_wait, inline=config.inline, schedules=True,
    )  # fmt: skip
    catalog = TaskCatalog(TaskAccess.allowing(config.allow))
    metrics = serving = None
    if config.metrics_port is not None:
        metrics, serving = _serve_metrics(config)
    with reported_errors():
        running = Worker(store, options, catalog=catalog, metrics=metrics)
    started.append(running)
    _announce(running, config)
    if alert_rules:
        say(f"  alerts: {len(alert_rules)} rules (one process at a time evaluates)",
            config.log_format, "keel.worker")  # fmt: skip
    if checkpoint_key is not None:
        say(f"  audit: a checkpoint every {format_duration(checkpoint_every or 0)}, signed "
            f"with key {checkpoint_key.key_id}", config.log_format, "keel.worker")  # fmt: skip
    if traced is not None:
        say(f"  {traced.description}", config.log_format, "keel.worker")
    failure = ""
    files = watch_in_thread(store, stop)  # the file triggers' folders (none: it idles)
    alerting = start_alerts(store, alert_rules, stop)  # None: no rule
    checkpointing = start_checkpoints(store, checkpoint_key, checkpoint_every, stop)
    try:
        running.reclaim()
        running.run_forever(stop)
    except StoreError as exc:  # read-only, disk full...: waiting does not help
        failure = f": {exc}"
    finally:
        stop.set()
        files.join()
        if alerting is not None:
            alerting.join(STOP_ALERTS)
        if checkpointing is not None:  # one being signed now is stored, or dropped
            checkpointing.join(STOP_ALERTS)
        running.close()
        store.close()
        if serving is not None:
            serving.shutdown()
        if traced is not None:
            traced.shutdown()  # send the spans still batched: os._exit below skips atexit
    say(f"keel worker {running.owner} stopped{failure}", config.log_format, "keel.worker")
    code = 1 if failure else 0
    if running.executor.overdue() or threading.active_count() > 1:
        from keel.runtime.execution.isolation import kill_children

        kill_children()  # the child processes of attempts given back: never left running
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # threads of attempts given back cannot be stopped; do not wait for them
    if code:
        raise typer.Exit(code)


#: seconds a stopping process waits for its alert thread (a delivery under way) to end
STOP_ALERTS = 10.0


def load_checkpointing(command: str) -> tuple[SigningKey | None, float | None]:
    """The key and period of the checkpoints this process signs by itself (``[audit]
    checkpoint_every``; both None when not set); a wrong setting, or a period without a
    key, ends ``command`` with what is wrong."""
    from keel.runtime.audit_key import HOW_TO_CONFIGURE, AuditConfigError, load_audit_config

    try:
        settings = load_audit_config()
        if settings.checkpoint_every is None:
            return None, None
        key = settings.signing_key()
    except AuditConfigError as exc:
        raise fail(f"{command}: {exc}") from None
    if key is None:
        raise fail(f"{command}: [audit] checkpoint_every needs a signing key to sign "
                   f"with: {HOW_TO_CONFIGURE}")  # fmt: skip
    return key, settings.checkpoint_every


def load_alerts(command: str) -> tuple[AlertRule, ...]:
    """The alert rules of the config file (none without ``[[alerts]]``); a wrong one
    ends ``command`` with its one-line error."""
    from keel.runtime.alerts.config import AlertConfigError, load_alert_rules

    try:
        return load_alert_rules()
    except AlertConfigError as exc:
        raise fail(f"{command}: {exc}") from None


def _serve_metrics(config: WorkerConfig) -> tuple[Metrics, WSGIServer]:
    """The worker's metrics, served on a thread of prometheus_client's own HTTP server
    (bound now: a port in use is one line before the worker starts)."""
    from prometheus_client import start_http_server

    from keel.runtime.metrics import Metrics

    assert config.metrics_port is not None
    metrics = Metrics()
    host, port = config.metrics_host, config.metrics_port
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise fail(
            f"keel worker: cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return metrics, server


def export_traces(command: str, service: str) -> Tracing | None:
    """The OpenTelemetry SDK and exporter, configured as the environment asks
    (``keel.runtime.tracing.sdk``); a setting it cannot follow stops the command."""
    from keel.runtime.tracing.sdk import TracingSetupError, configure

    try:
        return configure(service)
    except TracingSetupError as exc:
        raise fail(f"{command}: {exc}") from None


def _import_code(config: WorkerConfig) -> None:
    for module in config.modules:
        import_code(module, "keel worker: ")
    if not config.modules:
        say(
            "keel worker: no workflow modules given; it runs only the tasks `allow` names "
            "(give it the files or modules of your workflows)",
            config.log_format,
            "keel.worker",
        )


def _announce(running: Worker, config: WorkerConfig) -> None:
    """What the worker does, a short line per part (80 columns, but for a long URL or
    module list); inline is read from the worker's own options, so the lines show what
    it really got."""
    from keel.runtime.stores import store_url
    from keel.store.urls import masked_url

    queues = ",".join(config.queues) if config.queues else "every queue"
    wakeups = "notifications" if running.listening else "polling"
    shown = masked_url(store_url(database_url(config)))
    lines = [
        f"keel worker {running.owner}: {queues}, {config.concurrency} at once",
        f"  store: {shown} (woken by {wakeups})",
        f"  modules: {', '.join(Path(m).name for m in config.modules) or 'none'}",
    ]
    lines.append(
        "  inline: on (tasks proven under 1 ms run on this thread)"
        if running.options.inline
        else "  inline: off (every task runs on a task thread)"
    )
    if config.metrics_port is not None:
        host = f"[{config.metrics_host}]" if ":" in config.metrics_host else config.metrics_host
        lines.append(f"  metrics: http://{host}:{config.metrics_port}/metrics (no token)")
    say("\n".join(lines), config.log_format, "keel.worker")


def upgrade(db: DbOption = None) -> None:
    """Apply the database's pending migrations (each in one transaction; safe to run
    while workers use the database, and when several processes run it at once)."""
    from keel.runtime.stores import open_store

    with reported_errors():
        store = open_store(db, upgrade=True)
    try:
        applied = store.migrations_applied()
        version = store.schema_version()
    finally:
        store.close()
    if applied:
        typer.echo(f"applied {', '.join(applied)}; schema version {version}")
    else:
        typer.echo(f"up to date (schema version {version})")
