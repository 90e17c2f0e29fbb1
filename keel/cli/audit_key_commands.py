"""``keel audit keygen``, ``key``, ``checkpoint``, ``checkpoints`` and ``check``: the
signing key of this process, and signed checkpoints of the runs' heads.

A checkpoint is signed here with the key this process is configured with
(``keel.runtime.audit_key``) and stored in the database; ``check`` recomputes every run
a checkpoint covers from the database's events and checks the signatures (the
checkpoint's, the approvals') against the trusted keys: ``--key``, else ``[audit]
trusted_keys`` and the configured key's own. These commands work on the database
(``--db``): a server signs its own checkpoints (``POST /audit/checkpoints``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    audit_settings,
    fail,
    local_time,
    needs_database,
    opened_store,
    reported_errors,
)

if TYPE_CHECKING:
    from rich.console import Console

    from keel.audit.checkpoints import CheckpointCheck
    from keel.audit.signing import PublicKey
    from keel.store.heads import StoredCheckpoint
    from keel.store.protocol import Store

#: where ``keel audit keygen`` writes the key when given no file
DEFAULT_KEY_FILE = "keel-audit.pem"


def register_key_commands(audit_app: typer.Typer) -> None:
    """Add these commands to the ``keel audit`` group."""
    audit_app.command()(keygen)
    audit_app.command()(key)
    audit_app.command()(checkpoint)
    audit_app.command()(checkpoints)
    audit_app.command()(check)


def keygen(
    file: Annotated[
        Path, typer.Argument(help="Where to write the private key (never overwritten)")
    ] = Path(DEFAULT_KEY_FILE),
) -> None:
    """Make an Ed25519 signing key: a PEM file readable by you only. Prints its public
    key (publish it: auditors check signatures with it) and how to configure it."""
    from keel.audit.signing import SigningKey

    made = SigningKey.generate()
    with reported_errors():
        made.save(file)
    typer.echo(f"wrote {file} (an Ed25519 private key, readable by you only: keep it out of "
               "the database, its backups and version control)")  # fmt: skip
    typer.echo(f"key id:     {made.key_id}")
    typer.echo(f"public key: {made.public_key.to_text()}")
    typer.echo("sign with it: add to keel.toml")
    typer.echo(f'  [audit]\n  key_file = "{file}"')
    typer.echo(f"or set KEEL_AUDIT_KEY_FILE={file.resolve()}")


def key(as_json: JsonOption = False) -> None:
    """The signing key this process is configured with (its id and public key) and the
    keys it trusts besides."""
    settings = audit_settings()
    with reported_errors():
        signing = settings.require_key()
    trusted = [k for k in settings.trusted if k.key_id != signing.key_id]
    if as_json:
        typer.echo(json.dumps({
            "key_id": signing.key_id, "public_key": signing.public_key.to_text(),
            "key_file": str(settings.key_file), "source": settings.key_source,
            "trusted_keys": [{"key_id": k.key_id, "public_key": k.to_text()} for k in trusted],
        }, indent=2))  # fmt: skip
        return
    typer.echo(f"key id:     {signing.key_id}")
    typer.echo(f"public key: {signing.public_key.to_text()}")
    typer.echo(f"file:       {settings.key_file} (from {settings.key_source})")
    for other in trusted:
        typer.echo(f"trusted:    {other.key_id} {other.to_text()}")


def checkpoint(
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only this workflow's runs")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Sign the heads of every run (or a workflow's) as they are now, and store the
    checkpoint: from then on, a change to any event up to it fails `keel audit check`,
    even with the whole chain recomputed."""
    import getpass

    from keel.audit.checkpoints import make_checkpoint
    from keel.runtime.clock import clock_for

    needs_database(db, "keel audit checkpoint")
    settings = audit_settings()
    with reported_errors():
        signing = settings.require_key()
    with opened_store(db) as store, reported_errors():
        made = make_checkpoint(store, signing, at=clock_for(store).now(), by=getpass.getuser(),
                               workflow=workflow)  # fmt: skip
    if as_json:
        from keel.audit.checkpoints import summary_document

        typer.echo(json.dumps(summary_document(made.summary()), indent=2))
        return
    covered = _runs(len(made.heads)) + (f" of workflow {workflow}" if workflow else "")
    typer.echo(f"checkpoint {made.id}: {covered} signed at {local_time(made.at)} "
               f"with key {made.key_id}")  # fmt: skip


def checkpoints(
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The stored checkpoints, newest first: when, by whom, with which key, how many runs."""
    from rich.console import Console

    from keel.audit.checkpoints import summary_document
    from keel.cli.layout import Cell, Column, print_table

    needs_database(db, "keel audit checkpoints")
    with opened_store(db) as store, reported_errors():
        found = store.checkpoints(limit=limit)
    if as_json:
        typer.echo(json.dumps([summary_document(c) for c in found], indent=2))
        return
    if not found:
        typer.echo("no checkpoint yet: sign one with `keel audit checkpoint`")
        return
    rows: list[list[Cell]] = [
        [str(c.id), local_time(c.at), str(c.runs), c.key_id, c.workflow or "(all)", c.by or ""]
        for c in found
    ]
    columns = [Column("id", justify="right"), Column("signed at"),
               Column("runs", justify="right"), Column("key"),
               Column("workflow", role="extra", keep=2),
               Column("by", role="extra", keep=1)]  # fmt: skip
    print_table(Console(), columns, rows)


def check(
    checkpoint_id: Annotated[
        int | None, typer.Argument(help="The checkpoint to check (default: the newest)")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Check every stored checkpoint")] = False,
    keys: Annotated[
        list[str] | None,
        typer.Option("--key", help="A trusted public key, ed25519:... (repeat for more)"),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Check the database against signed checkpoints: every run a checkpoint covers must
    still hash, from its stored events, to the head it signed, and the signatures (the
    checkpoint's, the runs' approvals') must be by trusted keys. Exit 1 naming each run
    that changed. Approvals decided without a signing key are listed as unsigned (a
    warning, not a failure)."""
    from keel.audit.checkpoints import check_checkpoint, check_document

    if every and checkpoint_id is not None:
        raise fail("keel audit check: give a checkpoint id or --all, not both", 2)
    needs_database(db, "keel audit check")
    trusted = _trusted(keys or [])
    results: list[CheckpointCheck] = []
    with opened_store(db) as store, reported_errors():
        for stored in _chosen(store, checkpoint_id, every):
            results.append(check_checkpoint(store, stored, trusted))
    if as_json:
        typer.echo(json.dumps([check_document(found) for found in results], indent=2))
    else:
        for found in results:
            _print_check(found)
    if not all(found.ok for found in results):
        raise typer.Exit(1)


def _trusted(given: list[str]) -> dict[str, PublicKey]:
    """The keys signatures are checked against: ``--key``, else the configured ones."""
    from keel.audit.signing import PublicKey, SigningError

    if given:
        try:
            found = [PublicKey.from_text(text) for text in given]
        except SigningError as exc:
            raise fail(f"--key: {exc}") from None
        return {k.key_id: k for k in found}
    with reported_errors():
        keys = audit_settings().trusted_keys()
    if not keys:
        from keel.runtime.audit_key import HOW_TO_CONFIGURE

        raise fail("keel audit check: no trusted key to check signatures with: give --key "
                   "ed25519:..., list keys in [audit] trusted_keys, or configure the signing "
                   f"key ({HOW_TO_CONFIGURE})")  # fmt: skip
    return keys


def _chosen(store: Store, checkpoint_id: int | None, every: bool) -> list[StoredCheckpoint]:
    """The checkpoints to check, oldest first."""
    from keel.errors import KeelError

    if checkpoint_id is not None:
        found = store.checkpoint(checkpoint_id)
        if found is None:
            raise KeelError(
                f"there is no checkpoint {checkpoint_id} (see `keel audit checkpoints`)"
            )
        return [found]
    listed = store.checkpoints(limit=None if every else 1)
    if not listed:
        raise KeelError("there is no checkpoint to check: sign one with `keel audit checkpoint`")
    chosen = [store.checkpoint(summary.id) for summary in reversed(listed)]
    return [found for found in chosen if found is not None]


def _print_wrapped(console: Console, head: str, text: str) -> None:
    """``text`` after ``head``, its lines wrapped under itself."""
    from rich.text import Text

    from keel.cli.layout import hanging_lines

    for line in hanging_lines(console, Text(head), Text(text)):
        console.print(line, soft_wrap=True)


def _print_check(found: CheckpointCheck) -> None:
    from rich.console import Console

    out, err = Console(), Console(stderr=True)
    cp = found.checkpoint
    what = f"checkpoint {cp.id} ({local_time(cp.at)})"
    if found.ok:
        _print_wrapped(out, "✓ ", f"{what}: {_runs(len(cp.heads))} as signed, key {cp.key_id}")
    else:
        failed = found.failed_runs
        said = f"{_runs(len(failed))} changed since" if failed else "its signature fails"
        _print_wrapped(err, "✗ ", f"{what}: {said}, key {cp.key_id}")
        if found.signature_problem is not None:
            _print_wrapped(err, "  ", f"the checkpoint: {found.signature_problem}")
        for run_id, problem in found.run_problems + found.approvals.problems:
            _print_wrapped(err, "  ", f"run {run_id}: {problem}")
    approvals = found.approvals
    if approvals.signed:
        _print_wrapped(out, "  ", f"signed approvals verify: {approvals.signed}")
    if approvals.unsigned:
        _print_wrapped(err, "  ", f"warning: unsigned approvals (decided where no signing key "
                       f"was configured): {len(approvals.unsigned)}")  # fmt: skip
        for where in approvals.unsigned:
            _print_wrapped(err, "    ", where)


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"
