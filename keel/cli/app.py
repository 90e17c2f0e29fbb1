"""The typer application; each group of commands lives in its own module."""

from __future__ import annotations

import typer

from keel.cli import (
    alert_commands,
    audit_commands,
    estimate_commands,
    event_commands,
    fork_commands,
    init_commands,
    inspect_commands,
    llm_commands,
    log_commands,
    prune_commands,
    recovery_commands,
    replay_commands,
    run_commands,
    schedule_commands,
    service_commands,
    spec_commands,
    version_commands,
    wait_commands,
    why_commands,
    worker_commands,
)
from keel.cli.audit_key_commands import register_key_commands
from keel.cli.help import PlainFlagsGroup, plain_flags

app = typer.Typer(
    name="keel",
    help="keel: durable workflows for AI-agent and business processes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=PlainFlagsGroup,
)
init_commands.register(app)
spec_commands.register(app)
run_commands.register(app)
inspect_commands.register(app)
why_commands.register(app)
log_commands.register(app)
llm_commands.register(app)
recovery_commands.register(app)
fork_commands.register(app)
wait_commands.register(app)
worker_commands.register(app)
service_commands.register(app)
schedule_commands.register(app)
event_commands.register(app)
alert_commands.register(app)
estimate_commands.register(app)
replay_commands.register(app)
version_commands.register(app)
register_key_commands(audit_commands.audit_app)
audit_commands.register(app)
prune_commands.register(app)


def _print_version(asked: bool) -> None:
    if asked:
        from keel import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print keel's version."
    ),
) -> None:
    """keel: durable workflows for AI-agent and business processes."""


@app.command()
def version() -> None:
    """Print keel's version."""
    _print_version(True)


plain_flags(app)
