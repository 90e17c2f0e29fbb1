"""``keel prune``: remove the payloads of old runs, keeping a signed tombstone of each
(``keel.audit.retention``), and the words ``keel show``, ``history`` and ``verify`` say
of a pruned run.

It acts on the database (``--db``, ``KEEL_DATABASE_URL``), never through a server:
pruning is an operator's job, done where the audit key is. Without ``--yes`` it first
shows what would go and asks (and refuses when nobody can be asked).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import DbOption, JsonOption, fail, local_time, opened_store, reported_errors
from keel.cli.layout import echo_wrapped

if TYPE_CHECKING:
    from keel.audit.retention import PruneReport


def register(app: typer.Typer) -> None:
    app.command()(prune)


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Prune runs that ended longer ago than this: 90d, 12w, 36h...",
            show_default=False,
        ),
    ],
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Prune without asking")] = False,
    unsigned: Annotated[
        bool,
        typer.Option("--unsigned", help="Leave unsigned tombstones when no audit key is set"),
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who prunes, for the tombstones (default: OS user)")
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Runs pruned per transaction")
    ] = 500,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Remove the payloads of runs that ended (succeeded, failed or cancelled) longer
    ago than --older-than: their events, task log lines, LLM calls, input and output.
    Each keeps its row (status, times, head hash) and a tombstone signed with the audit
    key (key_file of the audit table of keel.toml, or KEEL_AUDIT_KEY_FILE), so `keel
    verify` still proves what the run ended as. A run whose parent or child run is still
    going is kept. Then the large values (blobs) that no kept run names any more are
    removed. Pruned a batch per
    transaction: stopped midway, each run is pruned whole or untouched; run it again
    to finish."""
    import getpass

    from keel.audit.retention import prune as prune_runs
    from keel.runtime.clock import clock_for
    from keel.spec.durations import format_duration, parse_duration

    try:
        age = parse_duration(older_than)
    except ValueError:
        raise fail(f"--older-than {older_than!r} is not a duration: a number and a unit, "
                   "ms, s, m, h, d or w (90d, 12w, 36h, 1h30m), an ISO 8601 duration "
                   "(P90D), or a number of seconds", 2, wrap=True) from None  # fmt: skip
    if age < 0:
        raise fail(f"--older-than {older_than!r}: a duration cannot be negative", 2)
    key = None
    if not dry_run:
        from keel.cli.common import audit_settings
        from keel.runtime.audit_key import HOW_TO_CONFIGURE

        with reported_errors():
            key = audit_settings().signing_key()
        if key is None and not unsigned:
            raise fail(
                f"no audit key to sign the tombstones: {HOW_TO_CONFIGURE}; or pass "
                "--unsigned to leave them unsigned"
            )
    who = by or getpass.getuser()
    with opened_store(db) as store, reported_errors():
        clock = clock_for(store)
        cutoff = clock.now() - age
        scope = f"ended before {local_time(cutoff)} ({format_duration(age)} ago)"
        if not dry_run and not yes:
            preview = prune_runs(store, cutoff, now=clock.now, key=None, workflow=workflow,
                                 dry_run=True, batch=batch)  # fmt: skip
            if not preview.pruned and not preview.blobs:
                _say(preview, scope, None, as_json, cutoff)
                return
            typer.echo(_summary(preview, scope), err=True)
            if not _asked("prune these runs?" if preview.pruned else "remove these blobs?"):
                raise fail("nothing was removed (pass --yes to prune without being asked)")
        report = prune_runs(store, cutoff, now=clock.now, key=key, by=who, workflow=workflow,
                            dry_run=dry_run, batch=batch)  # fmt: skip
    _say(report, scope, None if key is None else key.key_id, as_json, cutoff)


def _asked(question: str) -> bool:
    """The answer of the person at the terminal; False when there is none."""
    import sys

    if not sys.stdin.isatty():
        return False
    return typer.confirm(question, default=False, err=True)


def _say(
    report: PruneReport, scope: str, signed_by: str | None, as_json: bool, cutoff: float
) -> None:
    if as_json:
        data = {**report.to_data(), "ended_before": cutoff, "signed_by": signed_by}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(_summary(report, scope))
    if report.pruned and not report.dry_run:
        typer.echo(f"tombstones signed by key {signed_by}" if signed_by
                   else "tombstones unsigned (--unsigned)")  # fmt: skip
    for run_id, why in report.kept:
        echo_wrapped(f"kept run {run_id[:8]}: ", why)
    for run_id in report.changed:
        echo_wrapped(f"kept run {run_id[:8]}: ", "it changed while being pruned (prune again)")


def _summary(report: PruneReport, scope: str) -> str:
    counts = report.counts
    what = (f"{counts.events} events, {counts.log_lines} log lines, "
            f"{counts.model_calls} model calls, {size_words(counts.bytes)}")  # fmt: skip
    runs = f"{len(report.pruned)} run{'' if len(report.pruned) == 1 else 's'}"
    blobs = (f"{report.blobs} blob{'' if report.blobs == 1 else 's'} (large values) no kept "
             f"run names, {size_words(report.blob_bytes)}")  # fmt: skip
    if report.dry_run:
        return f"would prune {runs} that {scope}:\n  {what}\n  {blobs}"
    return f"pruned {runs} that {scope}:\n  {what} removed\n  {blobs} removed"


def size_words(count: int) -> str:
    """A number of bytes as people read it: ``812 bytes``, ``4.1 KB``, ``2.3 MB``."""
    if count < 1000:
        return f"{count} byte{'' if count == 1 else 's'}"
    scale, unit = next((s, u) for s, u in ((1e3, "KB"), (1e6, "MB"), (1e9, "GB"))
                       if count < s * 1000 or u == "GB")  # fmt: skip
    return f"{count / scale:.1f} {unit}"


def pruned_words(pruned: dict[str, Any]) -> str:
    """What ``keel show``, ``history`` and ``verify`` say of a pruned run: "pruned on
    DATE by X: N events removed; head H (signed by key K)" (``pruned_document``)."""
    if "pruned_at" not in pruned:
        return "pruned, but its tombstone is missing or does not read"
    by = f" by {pruned['by']}" if pruned.get("by") else ""
    events = pruned["counts"].get("events", 0)
    signer = pruned.get("signed_by")
    signature = {
        "valid": f"signed by key {signer}",
        "invalid": f"signed by key {signer}: the signature does NOT verify",
        "unchecked": f"signed by key {signer}, not checked: no audit key configured",
        "unsigned": "unsigned",
    }[pruned["signature"]]
    return (f"pruned on {local_time(pruned['pruned_at'])}{by}: {events} events removed; "
            f"head {pruned['head_hash']} ({signature})")  # fmt: skip
