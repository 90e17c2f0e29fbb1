"""The ``keel`` command. Heavy modules are imported inside commands so ``--help`` is fast."""

from keel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
