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

from keel.cli.audit_commands import KeyOption, public_keys
from keel.cli.common import (
    DbOption,
    JsonOption,
    audit_settings,
    fail,
    local_time,
    needs_database,
    opened_store,
    plural,
    reported_errors,
)
from keel.cli.layout import echo_wrapped

if TYPE_CHECKING:
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
    as_json: JsonOption = False,
) -> None:
    """Make an Ed25519 signing key: a PEM file readable by you only (its folder is made,
    readable by you only, when missing). Prints its public key (publish it: auditors
    check signatures with it) and how to configure it."""
    from keel.audit.signing import SigningKey

    made = SigningKey.generate()
    try:
        _make_folder(file.parent)
    except OSError as exc:
        raise fail(f"cannot make the folder {file.parent}: {exc.strerror}", wrap=True) from None
    with reported_errors():
        made.save(file)
    if as_json:
        typer.echo(json.dumps({"key_id": made.key_id, "public_key": made.public_key.to_text(),
                               "file": str(file)}, indent=2))  # fmt: skip
        return
    echo_wrapped("", f"wrote {file} (an Ed25519 private key, readable by you only: keep it "
                 "out of the database, its backups and version control)")  # fmt: skip
    typer.echo(f"key id:     {made.key_id}")
    typer.echo(f"public key: {made.public_key.to_text()}")
    typer.echo("sign with it: add to keel.toml")
    typer.echo(f'  [audit]\n  key_file = "{file}"')
    echo_wrapped("or set ", f"KEEL_AUDIT_KEY_FILE={file.resolve()}")


def _make_folder(folder: Path) -> None:
    """Make ``folder`` and its missing parents, each readable by the owner only (an
    existing folder is left as it is)."""
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(mode=0o700)
        parent.chmod(0o700)  # mkdir's mode is masked by the umask


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
    echo_wrapped("file:       ", f"{settings.key_file} (from {settings.key_source})")
    for other in trusted:
        echo_wrapped("trusted:    ", f"{other.key_id} {other.to_text()}")


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
    covered = plural(len(made.heads), "run") + (f" of workflow {workflow}" if workflow else "")
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
    keys: KeyOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Check the database against signed checkpoints: every run a checkpoint covers must
    still hash, from its stored events, to the head it signed (a pruned run: its
    tombstone keeps the signed head), and the signatures (the checkpoint's, the runs'
    approvals' and tombstones') must be by trusted keys. Exit 1 naming each run that
    changed. Approvals decided without a signing key are listed as unsigned, runs pruned
    after events the checkpoint did not sign as unchecked (warnings, not failures)."""
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
    """The keys signatures are checked against: ``--key`` (as ``keel audit verify``
    reads them), else the configured ones."""

    if given:
        return {k.key_id: k for k in public_keys(given)}
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


def _print_check(found: CheckpointCheck) -> None:
    """The whole report on standard output, as ``keel audit verify`` gives its own."""
    cp = found.checkpoint
    what = f"checkpoint {cp.id} ({local_time(cp.at)})"
    pruned = len(found.pruned_as_signed)
    if found.ok:
        kept = plural(len(cp.heads) - pruned - len(found.run_warnings), "run")
        said = f"{kept} as signed" + (f", {pruned} pruned, head as signed" if pruned else "")
        echo_wrapped("✓ ", f"{what}: {said}, key {cp.key_id}")
    else:
        echo_wrapped("✗ ", f"{what}: {', '.join(_failures(found))}, key {cp.key_id}")
        if found.signature_problem is not None:
            echo_wrapped("  ", f"the checkpoint: {found.signature_problem}")
        for run_id, problem in found.run_problems + found.approvals.problems:
            echo_wrapped("  ", f"run {run_id}: {problem}")
    for run_id, warning in found.run_warnings:
        echo_wrapped("  warning: ", f"run {run_id}: {warning}")
    approvals = found.approvals
    if approvals.signed:
        echo_wrapped("  ", f"signed approvals verify: {approvals.signed}")
    if approvals.unsigned:
        echo_wrapped("  warning: ", f"{plural(len(approvals.unsigned), 'unsigned approval')} "
                     "(decided where no signing key was configured):")  # fmt: skip
        for where in approvals.unsigned:
            echo_wrapped("    ", where)


def _failures(found: CheckpointCheck) -> list[str]:
    """What failed, said as what it is: runs whose history changed, signatures by keys
    not trusted, signatures that do not verify."""
    from keel.audit.signing import UNTRUSTED

    said = []
    if found.signature_problem is not None:
        said.append("its signature fails")
    if found.changed_runs:
        said.append(f"{plural(len(found.changed_runs), 'run')} changed since")
    untrusted = sum(1 for _, p in found.approvals.problems if p.endswith(UNTRUSTED))
    failing = len(found.approvals.problems) - untrusted
    if untrusted:
        said.append(f"{plural(untrusted, 'signature')} by a key not trusted")
    if failing:
        said.append(f"{plural(failing, 'signature')} that "
                    f"{'does' if failing == 1 else 'do'} not verify")  # fmt: skip
    return said
