"""``keel logs RUN [NODE]``: what a run's tasks logged through ``ctx.logger``, kept per
attempt by the workers that ran them (``keel.runtime.execution.task_logs``).

Read through ``keel.Client``, so it works on the database and through a server
(``KEEL_SERVER_URL``) alike. Lines come in the order they were written, grouped under a
line naming the attempt whenever it changes (attempts running at once interleave);
a long message wraps under itself, fitted to the terminal (80 columns when piped).
``--follow`` asks again every second for lines after the last one until the run has
ended and its last lines are read, then says how it ended (on stderr).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import DbOption, JsonOption, opened_client, reported_errors

if TYPE_CHECKING:
    from rich.console import Console

    from keel.runtime.client import Client
    from keel.store.task_logs import TaskLogLine

#: lines asked for at once
PAGE = 1000
#: seconds between looks for new lines with --follow
FOLLOW_EVERY = 1.0


def register(app: typer.Typer) -> None:
    app.command()(logs)


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix")],
    node: Annotated[str | None, typer.Argument(help="Only lines of this node")] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="Only lines of this attempt")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until the run has ended"),
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """What the run's tasks logged through ctx.logger, attempt by attempt.

    Workers keep at most 1,000 lines and 256 KiB per attempt (a line is cut at 8 KiB);
    past that, one line says how many more were dropped.
    """
    from keel.engine.state import is_finished

    printer = _Printer(as_json)
    after, shown = 0, 0
    # a node or an attempt the run does not have is refused by ``client.logs`` (the
    # same check as the API's: ``keel.runtime.views.task_logs``)
    with opened_client(db) as client, reported_errors():
        try:
            while True:
                page = client.logs(run_id, node=node, attempt=attempt, after=after, limit=PAGE)
                printer.print(page.lines)
                shown += len(page.lines)
                if page.lines:
                    after = page.lines[-1].seq
                if len(page.lines) == PAGE:
                    continue  # more are there now
                if not follow or is_finished(page.status):
                    break
                time.sleep(FOLLOW_EVERY)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        ended = _ended(client, page.run_id) if follow else None
    if not shown and not as_json:
        what = f"node {node}" if node is not None else "its tasks"
        which = f" in attempt {attempt}" if attempt is not None else ""
        typer.echo(f"run {page.run_id[:8]}: {what} logged nothing{which} (through "
                   "ctx.logger)", err=True)  # fmt: skip
    if ended is not None:  # on stderr: the lines piped on stay the task's alone
        typer.echo(ended, err=True)


def _ended(client: Client, run_id: str) -> str:
    """How a followed run ended, in one line: "run 3731db03 succeeded", or failed
    with its reason."""
    record = client.run(run_id)
    said = f"run {record.id[:8]} {record.status}"
    return f"{said}: {record.reason}" if record.reason else said


class _Printer:
    """Lines as people read them (or one JSON object each), the attempt named above
    its lines each time it changes."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console: Console | None = None
        self._last: tuple[str, int | None, int] | None = None

    def print(self, lines: list[TaskLogLine]) -> None:
        if self.as_json:
            from keel.runtime.views.task_logs import log_line_document

            for line in lines:
                typer.echo(json.dumps(log_line_document(line), ensure_ascii=False))
            return
        from rich.console import Console
        from rich.text import Text

        from keel.cli.layout import hanging_lines

        if self.console is None:
            self.console = Console(highlight=False)
        for line in lines:
            attempt = (line.node, line.item, line.attempt)
            if attempt != self._last:
                self._last = attempt
                self.console.print(Text(_heading(line)), soft_wrap=True)
            head = Text(f"  {_clock(line.at)}  {line.level:<8} ")
            for text in hanging_lines(self.console, head, line.message):
                self.console.print(text, soft_wrap=True)


def _heading(line: TaskLogLine) -> str:
    node = line.node if line.item is None else f"{line.node}[{line.item}]"
    day = datetime.datetime.fromtimestamp(line.at).date().isoformat()
    return f"{node} · attempt {line.attempt} · {day}"


def _clock(at: float) -> str:
    """Local time of day to the millisecond."""
    return datetime.datetime.fromtimestamp(at).isoformat(timespec="milliseconds")[11:]
