"""Events: ``keel emit NAME`` sends one (each deployed workflow whose event trigger takes
it starts a run), ``keel consume redis://...`` emits every entry of a Redis stream.

Both go through the server ``KEEL_SERVER_URL`` names when it is set (with a token that
may act), else through the database; either way a run is recorded before the command
says so (``keel consume`` acknowledges an entry only then). A worker executes the runs.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer

from keel.cli.common import DbOption, JsonOption, fail, opened_client, parse_json, reported_errors


def register(app: typer.Typer) -> None:
    app.command()(emit)
    app.command()(consume)


def emit(
    name: Annotated[str, typer.Argument(help="The event's name (an event trigger's `event`)")],
    data: Annotated[
        str, typer.Option("--data", help="The event's data as JSON (or @file.json)")
    ] = "null",
    message_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The message id: sent again, it starts no second run (default: a random id)",
        ),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Send an event: each deployed workflow whose event trigger takes it (its name and
    filter) starts one run per message id, with the trigger's input."""
    value = parse_json(data, "--data")
    with opened_client(db) as client, reported_errors():
        fired = client.emit(name, value, message_id=message_id)
    if as_json:
        typer.echo(json.dumps([f._asdict() for f in fired], indent=2))
        return
    if not fired:
        typer.echo(f"no deployed workflow has an event trigger taking '{name}' with this data")
    for one in fired:
        said = "started" if one.started else "was started by this message id before:"
        typer.echo(f"{one.workflow}: {said} run {one.run_id[:8]}")


def consume(
    url: Annotated[str, typer.Argument(help="The Redis server: redis://HOST:PORT/DB")],
    stream: Annotated[str, typer.Option("--stream", help="The stream to read")],
    group: Annotated[str, typer.Option("--group", help="The consumer group")] = "keel",
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="This consumer's name (default HOST-PID)")
    ] = None,
    claim_after: Annotated[
        float,
        typer.Option(
            "--claim-after",
            min=0.1,
            help="Seconds before an entry another consumer left unacknowledged is taken over",
        ),
    ] = 60.0,
    db: DbOption = None,
) -> None:
    """Emit every entry of a Redis stream (fields `event`, `data` JSON, optional `id`),
    as a member of a consumer group, until stopped (Ctrl-C, SIGTERM). Entries no run
    can take go to the stream STREAM:dead."""
    try:
        import redis
    except ImportError:
        raise fail("keel consume needs the redis client: pip install 'keel[brokers]'") from None
    from keel.runtime.triggers.redis_source import RedisSource

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    with opened_client(db) as client, reported_errors():
        source = RedisSource(
            redis.Redis.from_url(url, decode_responses=True), stream,
            lambda name, data, message_id: client.emit(name, data, message_id=message_id),
            group=group, claim_after=claim_after,
        )  # fmt: skip
        if consumer is not None:
            source.consumer = consumer
        typer.echo(f"consuming {stream} as {source.consumer} of group {group}", err=True)
        source.run(stop)
