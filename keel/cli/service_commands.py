"""``keel serve``, ``keel deploy``, ``keel workflows`` and ``keel token``: running keel as
a service. ``deploy`` and ``workflows`` go through the server ``KEEL_SERVER_URL`` names
when it is set (a Python workflow is traced here and its definition posted), else the
database; ``token`` acts on the database only (the first admin token can only be made
so)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    fail,
    import_code,
    local_time,
    opened_client,
    opened_store,
    reported_errors,
)
from keel.cli.worker_commands import LogFormatOption, configure_logging, say

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

    from keel.audit.signing import SigningKey
    from keel.runtime.metrics import Metrics
    from keel.runtime.worker.config import WorkerConfig
    from keel.store.protocol import Store


def _tokens_on_database(db: str | None) -> None:
    """Tokens are made on the database, never through a server quietly: with only
    ``KEEL_SERVER_URL`` set, say so (the first admin token can only be made there)."""
    from keel.cli.common import SERVER_ENV, server_url

    if server_url() is not None and db is None:
        raise fail(f"keel token acts on the database, not on the server {SERVER_ENV} names: "
                   "give --db (or KEEL_DATABASE_URL); an admin token can also use the "
                   "API's /tokens")  # fmt: skip


token_app = typer.Typer(help="Create, list and revoke API tokens (for keel serve).",
                        no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(deploy)
    app.command()(workflows)
    app.add_typer(token_app, name="token")


def serve(
    modules: Annotated[
        list[str] | None,
        typer.Argument(
            help="Workflow files or modules to load (for --with-worker, and to "
            "check outputs set by hand against task types)",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8400,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Also execute runs in this process")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="--with-worker: attempts at once"),
    ] = None,
    rate_limit: Annotated[
        float, typer.Option("--rate-limit", min=0, help="Requests a second per token (0: none)")
    ] = 200.0,
    hook_body_limit: Annotated[
        int,
        typer.Option(
            "--hook-body-limit", min=1, help="Largest webhook delivery, in bytes (413 beyond)"
        ),
    ] = 1024 * 1024,
    ssl_certfile: Annotated[
        str | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM) for HTTPS")
    ] = None,
    ssl_keyfile: Annotated[
        str | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM) for HTTPS")
    ] = None,
    ssl_keyfile_password: Annotated[
        str | None,
        typer.Option(
            "--ssl-keyfile-password",
            envvar="KEEL_SSL_KEYFILE_PASSWORD",
            show_envvar=False,  # said above: too long
            help="The key's password (or from the environment: see above)",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: config files, KEEL_DATABASE_URL)"),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API until stopped (SIGTERM or Ctrl-C).

    Every route but /health and /ready needs a token: make the first with
    `keel token create NAME --role admin`. Pending database migrations are applied
    at start. The OpenAPI schema is at /openapi.json; Prometheus metrics are at
    /metrics (any token that may read). The TLS key's password may come from
    KEEL_SSL_KEYFILE_PASSWORD.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from keel.cli.worker_commands import STOP_ALERTS, load_alerts, load_checkpointing
    from keel.runtime.alerts.service import start_alerts
    from keel.runtime.checkpointing import start_checkpoints
    from keel.runtime.metrics import Metrics
    from keel.runtime.stores import open_store, store_url
    from keel.runtime.triggers.files import watch_in_thread
    from keel.runtime.worker.config import WorkerConfigError, load_worker_config
    from keel.server import create_app
    from keel.spec.durations import format_duration
    from keel.store.urls import masked_url

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise fail("keel serve: give both --ssl-certfile and --ssl-keyfile for HTTPS")
    try:
        config = load_worker_config(modules=modules or (), concurrency=concurrency,
                                    database_url=db, log_format=log_format)  # fmt: skip
    except WorkerConfigError as exc:
        raise fail(f"keel serve: {exc}") from None
    configure_logging(config.log_format)  # first: the code imported may log
    alert_rules = load_alerts("keel serve")
    signing_key = _signing_key("keel serve")
    checkpoint_key, checkpoint_every = load_checkpointing("keel serve")
    for module in config.modules:
        import_code(module, "keel serve: ")
    from keel.cli.worker_commands import export_traces

    traced = export_traces("keel serve", "keel-server")

    url = database_url(config)
    listening = _bind(host, port)
    with reported_errors():
        store = open_store(url, upgrade=True)
        # the worker (or, without one, the schedules) has a store of its own: a store
        # does not wake its own listener, and runs the API starts must wake this worker
        # as they would any other
        worker_store = open_store(url)
    scheme = "https" if ssl_certfile else "http"
    modules_line = ", ".join(Path(m).name for m in config.modules) or "none"
    say(f"keel serve: {scheme}://{host}:{port}\n  store: {masked_url(store_url(url))}"
        f"\n  modules: {modules_line}", config.log_format, "keel.server")  # fmt: skip
    if traced is not None:
        say(f"  {traced.description}", config.log_format, "keel.server")
    if with_worker and not config.modules:
        say("  (the worker runs only the tasks `allow` names: give keel serve the "
            "files or modules of your workflows)", config.log_format, "keel.server")  # fmt: skip
    if alert_rules:
        say(f"  alerts: {len(alert_rules)} rules (one process at a time evaluates)",
            config.log_format, "keel.server")  # fmt: skip
    if signing_key is not None:
        every = f", one every {format_duration(checkpoint_every)}" if checkpoint_every else ""
        say(f"  audit: signs approvals and checkpoints{every} with key {signing_key.key_id}",
            config.log_format, "keel.server")  # fmt: skip
    metrics = Metrics()  # /metrics serves the worker's (or the schedules') counts too
    app = create_app(store, rate=rate_limit, hook_body=hook_body_limit, metrics=metrics,
                     signing_key=signing_key)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(
        app,
        log_level="info",
        # JSON: uvicorn's lines go to the root logger's JSON handler, not its own text
        log_config=None if config.log_format == "json" else LOGGING_CONFIG,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
        ssl_keyfile_password=ssl_keyfile_password, access_log=False,
        timeout_graceful_shutdown=10,
    ))  # fmt: skip
    stop = threading.Event()
    # from here on SIGTERM stops the server (and what it started) in order
    with _stopped_by_signals(server, app.state.closing.set):
        if with_worker:
            worker_thread = _start_worker(worker_store, config, stop, metrics)
        else:
            worker_thread = _start_schedules(worker_store, stop, metrics)
        files = watch_in_thread(store, stop)  # the file triggers' folders (none: it idles)
        alerting = start_alerts(worker_store, alert_rules, stop)  # None: no rule
        checkpointing = start_checkpoints(worker_store, checkpoint_key, checkpoint_every, stop)
        try:
            server.run(sockets=[listening])
        finally:
            stop.set()
            files.join()
            worker_thread.join()
            if alerting is not None:
                alerting.join(STOP_ALERTS)
            if checkpointing is not None:
                checkpointing.join(STOP_ALERTS)
            worker_store.close()
            store.close()
            if traced is not None:
                traced.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a port in use is one
    line, not a server that starts and then fails."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as exc:
        raise fail(f"keel serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listening


@contextmanager
def _stopped_by_signals(server: uvicorn.Server, closing: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``server`` while inside (then the previous handlers come
    back). uvicorn replays the signal that stopped it once it has shut down; under the
    default action that would kill this process before its cleanup, so the replay lands
    here instead, and a signal before uvicorn listens (while the worker and the alerts
    start) still stops it in order.

    ``closing`` is called on the signal that stops uvicorn (which handles signals itself
    while it runs): the dashboard's live streams end then, so the shutdown need not wait
    for them."""
    import signal

    def stop_server(signum: int, frame: object) -> None:
        server.should_exit = True

    uvicorn_exit = server.handle_exit

    def handle_exit(signum: int, frame: FrameType | None) -> None:
        closing()
        uvicorn_exit(signum, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign,assignment]

    previous = {sig: signal.signal(sig, stop_server) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_worker(
    store: Store, config: WorkerConfig, stop: threading.Event, metrics: Metrics
) -> threading.Thread:
    """A worker on its own thread, stopped with the server, counting into the server's
    ``metrics``."""
    from keel.runtime.execution.invoke import TaskCatalog
    from keel.runtime.execution.task_access import TaskAccess
    from keel.runtime.worker.loop import Worker, WorkerOptions
    from keel.store.wakeups import MaybeMissed

    options = WorkerOptions(concurrency=config.concurrency, queues=config.queues,
                            announce=True, code_wait=config.code_wait,
                            inline=config.inline, schedules=True)  # fmt: skip
    worker = Worker(store, options, catalog=TaskCatalog(TaskAccess.allowing(config.allow)),
                    metrics=metrics)  # fmt: skip
    say(f"  worker: {worker.owner}, {config.concurrency} at once", config.log_format,
        "keel.server")  # fmt: skip

    def work() -> None:
        try:
            worker.reclaim()
            worker.run_forever(stop)
        finally:
            worker.close()
            say(f"  worker: {worker.owner} stopped", config.log_format, "keel.server")

    def wake_on_stop() -> None:
        stop.wait()
        worker.outcomes.wake(MaybeMissed())

    threading.Thread(target=wake_on_stop, daemon=True, name="keel-serve-stop").start()
    thread = threading.Thread(target=work, name="keel-serve-worker")
    thread.start()
    return thread


def _start_schedules(
    store: Store, stop: threading.Event, metrics: Metrics | None = None
) -> threading.Thread:
    """Fire the deployed schedules on a thread of their own (without ``--with-worker``:
    the runs they start wait for the workers). The pump logs a look that failed and
    looks again later: nothing ends this thread but ``stop``."""
    from keel.runtime.clock import clock_for
    from keel.runtime.runs import RunCache
    from keel.runtime.triggers.schedule_pump import SchedulePump

    clock = clock_for(store)
    pump = SchedulePump(store, RunCache(store), clock=clock, metrics=metrics)

    def work() -> None:
        while not stop.is_set():
            pump.run(clock.now())
            stop.wait(max(0.05, min(pump.next_at() - clock.now(), pump.every)))

    thread = threading.Thread(target=work, name="keel-serve-schedules")
    thread.start()
    return thread


def deploy(
    targets: Annotated[
        list[str], typer.Argument(help="FILE[:WORKFLOW] or MODULE[:WORKFLOW], .py or .yaml")
    ],
    by: Annotated[str | None, typer.Option("--by", help="Who deploys (default: OS user)")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Register workflow versions in the database: each becomes its name's current
    version, which `keel serve` starts by name. Deploying an older version again
    makes it current (a rollback). Runs already started keep their own version."""
    import getpass

    from keel.authoring.loading import split_target

    chosen = []
    for target in targets:
        location, name = split_target(target)
        loaded = [item for item in import_code(target, "keel deploy: ")
                  if name is None or item.answers_to(name)]  # fmt: skip
        if not loaded:
            raise fail(f"keel deploy: {target} defines no workflow"
                       + (f" named '{name}'" if name else ""))  # fmt: skip
        chosen.append((loaded, location))
    done = []
    with opened_client(db, by=by, upgrade=True, create=True) as client, reported_errors():
        # a server records the token's name, and itself as the source
        who = None if client.remote else by or getpass.getuser()
        for loaded, location in chosen:
            done += client.deploy(*loaded, by=who, source=location)
    if as_json:
        typer.echo(json.dumps(done, indent=2))
        return
    for d in done:
        typer.echo(f"deployed {d['workflow']} version {d['version'][:12]} (current)")


def workflows(
    name: Annotated[str | None, typer.Argument(help="Show every deploy of this workflow")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Deployed workflows and their current versions (or one workflow's deploys)."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table

    with opened_client(db) as client, reported_errors():
        shown = client.workflows(name)
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    if not shown:
        typer.echo("no workflow is deployed (see `keel deploy`)")
        return
    table: list[list[Cell]] = [
        [d["workflow"], d["version"][:12] + (" *" if d.get("current") else ""),
         local_time(d["deployed_at"]), d["deployed_by"] or "", d["source"] or ""]
        for d in shown
    ]  # fmt: skip
    columns = [Column("workflow"), Column("version"), Column("deployed", role="extra"),
               Column("by"), Column("source", role="long", wrap=True)]  # fmt: skip
    print_table(Console(), columns, table)
    if name is not None:
        typer.echo("* current")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The identity recorded for what it does")],
    role: Annotated[
        str, typer.Option("--role", help="viewer, approver, operator, auditor or admin")
    ],
    groups: Annotated[
        str, typer.Option("--groups", help="Groups for approvals' assignees: g1,g2")
    ] = "",
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 90d, 12h (default: none)")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who creates it (default: OS user)")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a token and print it once (the database keeps only its hash)."""
    _tokens_on_database(db)
    import getpass

    from keel.server.identities import create_token
    from keel.server.roles import check_role
    from keel.spec.durations import parse_duration

    try:
        check_role(role)
        lifetime = None if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise fail(f"keel token create: {exc}") from None
    now = time.time()
    listed = tuple(g.strip() for g in groups.split(",") if g.strip())
    with opened_store(db, upgrade=True, create=True) as store, reported_errors():
        try:
            secret, record = create_token(
                store, name, role, groups=listed, created_by=by or getpass.getuser(), now=now,
                expires_at=None if lifetime is None else now + lifetime,
            )  # fmt: skip
        except ValueError as exc:
            raise fail(f"keel token create: {exc}") from None
    until = f", expires {local_time(record.expires_at)}" if record.expires_at else ""
    typer.echo(f"token '{name}' ({role}{until}); shown once, keep it secret:", err=True)
    typer.echo(secret)


@token_app.command("list")
def token_list(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every token: name, role, groups, created, expires, revoked (never the secret)."""
    _tokens_on_database(db)
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.runtime.views.documents import token_document

    with opened_store(db) as store, reported_errors():
        found = store.tokens()
    now = time.time()
    if as_json:
        typer.echo(json.dumps([token_document(t, now) for t in found], indent=2))
        return
    if not found:
        typer.echo("no tokens (see `keel token create`)")
        return
    table: list[list[Cell]] = []
    for t in found:
        state = ("revoked " + local_time(t.revoked_at) if t.revoked_at is not None else
                 "expired" if not t.usable_at(now) else
                 "until " + local_time(t.expires_at) if t.expires_at else "usable")  # fmt: skip
        table.append([t.name, t.role, ",".join(t.groups), local_time(t.created_at), state])
    columns = [Column("name"), Column("role"), Column("groups", role="extra"),
               Column("created", role="extra"),
               Column("state", role="long", wrap=True)]  # fmt: skip
    print_table(Console(), columns, table)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name")],
    by: Annotated[str | None, typer.Option("--by", help="Who revokes (default: OS user)")] = None,
    db: DbOption = None,
) -> None:
    """Revoke a token: servers refuse it within 2 seconds. Its name stays taken."""
    _tokens_on_database(db)
    import getpass

    with opened_store(db) as store, reported_errors():
        if not store.revoke_token(name, time.time(), by=by or getpass.getuser()):
            raise fail(f"no usable token named '{name}' (see `keel token list`)")
    typer.echo(f"token '{name}' revoked")


def _signing_key(command: str) -> SigningKey | None:
    """The audit signing key this process is configured with (None: none), or the
    command ends with what is wrong (``keel.runtime.audit_key``)."""
    from keel.runtime.audit_key import AuditConfigError, load_audit_config

    try:
        return load_audit_config().signing_key()
    except AuditConfigError as exc:
        raise fail(f"{command}: {exc}") from None
