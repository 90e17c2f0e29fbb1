"""``keel audit``: the auditor's commands. ``export`` writes every event of the selected
runs with each run's chain and head (JSONL, verifiable; or CSV for spreadsheets);
``verify`` checks an export offline, with no database, against the public keys given.

``audit_app`` is the sub-application: other audit commands (checkpoints, keys) add
themselves to it with ``@audit_app.command()``.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    fail,
    moment,
    opened_client,
    plural,
    reported_errors,
)
from keel.cli.layout import echo_wrapped

if TYPE_CHECKING:
    from keel.audit.export import CheckpointChoice, Selection
    from keel.audit.signing import PublicKey
    from keel.runtime.client import Client

audit_app = typer.Typer(
    help="Audit: export runs' histories and verify an export offline; signing keys "
    "and signed checkpoints of the runs.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


KeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        help="A public key (ed25519:...) or a file holding one; may be repeated",
        show_default=False,
    ),
]


def public_keys(given: list[str] | None) -> list[PublicKey]:
    """``--key`` values as keys: the text of one, or a file holding it; exit 2 with
    what is wrong with one that is neither."""
    from keel.audit.signing import PublicKey, SigningError

    keys = []
    for value in given or []:
        text = value.strip()
        if not text.startswith("ed25519:"):
            path = Path(value)
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not text"
                raise fail(f"--key {value}: neither a public key (ed25519:...) nor a "
                           f"readable file ({reason})", 2, wrap=True) from None  # fmt: skip
            if "PRIVATE KEY" in text:
                said = (f"--key {value}: this is a private key; give its public key "
                        "(ed25519:...), which is all checking signatures needs")  # fmt: skip
                raise fail(said, 2, wrap=True)
        try:
            keys.append(PublicKey.from_text(text))
        except SigningError as exc:
            raise fail(f"--key {value}: {exc}", 2, wrap=True) from None
    return keys


@audit_app.command("export")
def export(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Runs to export (ids or unique prefixes)")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only runs created at or after: a date (2025-01-31), a date and time, "
            "or a duration back from now (7d)"
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Only runs created before: a date, a date and time, or a duration"),
    ] = None,
    fmt: Annotated[
        Literal["jsonl", "csv"],
        typer.Option("--format", help="jsonl (verifiable) or csv (for spreadsheets)"),
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to this file (default: standard output)"),
    ] = None,
    keys: KeyOption = None,
    checkpoints: Annotated[
        Literal["newest", "all", "none"],
        typer.Option(
            help="Signed checkpoints to carry: the newest of each signing key (of every "
            "run, and of --workflow), all, or none"
        ),
    ] = "newest",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the -o file if it exists")
    ] = False,
    db: DbOption = None,
) -> None:
    """Export every event of the selected runs (all runs when none are named nor
    filtered): who, what, when, inputs and outputs, each run's hash chain (the payloads
    exactly as hashed) and head, and its LLM calls. --key publishes public keys in the
    export for its readers. Verify it anywhere with `keel audit verify FILE`."""
    published = public_keys(keys)
    if output is not None and output.exists() and not force:
        raise fail(f"keel audit export: {output} exists; give --force to overwrite it, or "
                   "another -o file", 2, wrap=True)  # fmt: skip
    with opened_client(db) as client, reported_errors():
        selection = _selection(client, run_ids or [], workflow, since, until)
        lines = _exported(client, selection, fmt, published, checkpoints)
        written = _write(lines, output)
        # a CSV has a row per event, no line per run: no event row, no run exported
        runs = written.get(b'{"type":"run"', 0) if fmt == "jsonl" else written["rows"] - 1
        if runs <= 0:
            _warn_nothing_exported(client, selection)
    if output is not None:
        events = written.get(b'{"type":"event"', 0) if fmt == "jsonl" else written["rows"] - 1
        said = f"{plural(events, 'event')}" if fmt == "csv" else (
            f"{plural(runs, 'run')}, {plural(events, 'event')}")  # fmt: skip
        echo_wrapped("", f"exported {said} to {output}", err=True)


def _warn_nothing_exported(client: Client, selection: Selection) -> None:
    """Say why an export holds no run: the window is empty, or which workflows exist."""
    if (
        selection.since is not None
        and selection.until is not None
        and (selection.since >= selection.until)
    ):
        said = "--since is not before --until: the window holds no time"
    elif selection.workflow is not None:
        known = ", ".join(_workflow_names(client)) or "none"
        said = f"no run of workflow '{selection.workflow}' (workflows with runs: {known})"
    elif selection.since is not None or selection.until is not None:
        said = "no run was created in the window given (--since/--until)"
    else:
        said = "there is no run to export"
    echo_wrapped("warning: ", f"exported no runs: {said}", err=True)


def _workflow_names(client: Client) -> list[str]:
    """The workflows that have runs (among the newest thousand), or, through a server,
    the deployed ones."""
    if client.store is None:
        return sorted(str(doc["name"]) for doc in client.workflows())
    return sorted({run.workflow for run in client.store.list_runs(limit=1000)})


def _selection(client: Client, run_ids: list[str], workflow: str | None, since: str | None,
               until: str | None) -> Selection:  # fmt: skip
    from keel.audit.export import Selection, resolved
    from keel.cli.common import client_now

    def now() -> float:
        return client_now(client)

    selection = Selection(
        runs=tuple(run_ids), workflow=workflow,
        since=None if since is None else moment(since, "--since", now),
        until=None if until is None else moment(until, "--until", now),
    )  # fmt: skip
    return selection if client.store is None else resolved(client.store, selection)


def _exported(client: Client, selection: Selection, fmt: str, keys: list[PublicKey],
              checkpoints: CheckpointChoice) -> Iterator[bytes]:  # fmt: skip
    """The export's bytes, line by line: read from the store here, or streamed from
    the server's ``GET /audit/export``."""
    if client.store is None:
        from keel.runtime.transports.http import HttpTransport

        assert isinstance(client.transport, HttpTransport)
        params: dict[str, str | list[str] | None] = {
            "run": list(selection.runs), "workflow": selection.workflow, "format": fmt,
            "since": _rfc3339(selection.since), "until": _rfc3339(selection.until),
            "key": [key.to_text() for key in keys], "checkpoints": checkpoints,
        }  # fmt: skip
        yield from client.transport.stream_lines("/audit/export", params)
        return
    import time

    from keel import __version__
    from keel.audit.export import export_csv, export_jsonl

    store = client.store
    if fmt == "csv":
        text = export_csv(store, selection)
    else:
        text = export_jsonl(store, selection, exported_at=time.time(),
                            keel_version=__version__, keys=keys,
                            checkpoints=checkpoints)  # fmt: skip
    for line in text:
        yield line.encode("utf-8")


def _rfc3339(at: float | None) -> str | None:
    from keel.audit.export_format import iso

    return iso(at)


def _write(lines: Iterator[bytes], output: Path | None) -> Counter[bytes | str]:
    """Write the lines to ``output`` (through a temporary file renamed at the end: a
    failed export leaves no file that looks whole) or standard output; how many lines
    (``rows``), and how many of each start (``{"type":"run"``...)."""
    written: Counter[bytes | str] = Counter()
    target: BinaryIO
    partial = None if output is None else output.with_name(output.name + ".partial")
    try:
        target = sys.stdout.buffer if partial is None else partial.open("wb")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror}", 2) from None
    try:
        for line in lines:
            written["rows"] += 1
            if line.startswith(b'{"type":'):
                written[line[: line.find(b",")]] += 1
            target.write(line)
        target.flush()
    finally:
        if partial is not None:
            target.close()
    if partial is not None and output is not None:
        os.replace(partial, output)
    return written


@audit_app.command("verify")
def verify(
    file: Annotated[str, typer.Argument(help="The export (JSONL); - for standard input")],
    keys: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify an export offline, with no database: every run's hash chain recomputed
    from its payloads and checked against its head, the file complete (its end line),
    and the signatures of checkpoints, approvals and tombstones, with the heads each
    checkpoint signed still in the runs' chains. Trusted keys are those given with
    --key. Prints one line per problem; exit 0 intact, 1 problems, 2 unreadable."""
    from keel.audit.verify_export import ExportFormatError, verify_export

    trusted = public_keys(keys)
    try:
        with _opened(file) as lines:
            report = verify_export(lines, trusted)
    except ExportFormatError as exc:
        raise fail(f"{file}: {exc}", 2, wrap=True) from None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}", 2) from None
    if as_json:
        typer.echo(json.dumps(report.to_data(), indent=2))
    else:
        for problem in report.problems:
            echo_wrapped("✗ ", str(problem))
        for warning in report.warnings:
            echo_wrapped("warning: ", warning)
        if not report.anchored and (report.trusted_keys or report.file_keys):
            echo_wrapped("warning: ", "no --key given: no signature is anchored to a key "
                         "you trust (each verified with a key the export carries)")  # fmt: skip
        head, said = _summary(report.intact, report.checked(), len(report.problems))
        echo_wrapped(head, said)
    if not report.intact:
        raise typer.Exit(1)


#: how a count of ``keel audit verify`` reads for one thing
_ONE = {"runs": "run", "events": "event", "model_calls": "model call",
        "signed_approvals": "signed approval", "unsigned_approvals": "unsigned approval",
        "checkpoints": "checkpoint", "checkpointed_runs": "checkpointed run",
        "tombstones": "tombstone", "unsigned_tombstones": "unsigned tombstone",
        "blobs": "blob", "keys": "key",
        "checkpointed_runs_not_exported": "checkpointed run not exported"}  # fmt: skip


def _summary(intact: bool, counts: dict[str, int], problems: int) -> tuple[str, str]:
    """The summary line, as its mark and its text."""
    checked = ", ".join(
        f"{count} {_ONE.get(what, what) if count == 1 else what}".replace("_", " ")
        for what, count in counts.items()
    )
    if intact:
        return "✓ ", f"intact: {checked or 'an export of no runs'}"
    return "✗ ", f"{plural(problems, 'problem')} in {checked or 'the file'}"


@contextmanager
def _opened(name: str) -> Iterator[BinaryIO]:
    """The file's lines as bytes (standard input for ``-``)."""
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as handle:
        yield handle
