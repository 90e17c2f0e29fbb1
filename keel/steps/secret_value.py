"""``keel.secret("NAME")``: the value of a secret, for a Python task's body.

It is ``keel.runtime.secrets.secret`` (the lookup, and the value revealed to the attempt
so that what the attempt records is redacted of it), refused while a workflow function
is being traced: there it would read the value once, at definition time, and write it
into the spec. A workflow names a secret by reference instead (``keel.secrets.NAME``,
``${{ secrets.NAME }}``) in the fields of a built-in step.
"""

from __future__ import annotations

from keel.authoring.tracing import current_trace
from keel.errors import TracingError
from keel.runtime.secrets import secret as _looked_up


def secret(name: str) -> str:
    """The value of the secret ``name`` for this attempt (``KEEL_SECRET_<NAME>``, else the
    worker's secrets file). Whatever the attempt returns, raises or logs is redacted of
    it. Inside a ``@keel.workflow`` body use ``keel.secrets.NAME`` instead."""
    if current_trace() is not None:
        raise TracingError(
            f"keel.secret({name!r}) reads a secret's value, which a workflow's definition "
            f"must never hold: in a workflow use keel.secrets.{name} (a reference, filled "
            "when a built-in step runs); keel.secret is for a task's body"
        )
    return _looked_up(name)
