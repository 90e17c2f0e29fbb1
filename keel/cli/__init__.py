"""The ``keel`` command. Heavy modules are imported inside commands so ``--help`` is fast."""

from keel.cli.app import app


def main() -> None:
    """Run the command. A store's fault that a command did not report itself (the disk
    filled up, the database went away for too long) ends it with its one-line message,
    exit status 1: the store has already said what happened and what to do."""
    from keel.errors import StoreError

    try:
        app()
    except StoreError as exc:
        import typer

        typer.echo(str(exc), err=True)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
