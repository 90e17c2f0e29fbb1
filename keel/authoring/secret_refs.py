"""``keel.secrets.NAME`` in a Python workflow: a reference to a secret, never its value.

It is a ``Value`` standing for the expression ``secrets.NAME``, which only the fields of
a built-in step (``keel.http``, ``keel.shell``, ``keel.sql``, ``keel.email``) may read:
there it becomes ``${{ secrets.NAME }}``, filled by the worker when the step runs, so the
spec, the history and the dashboard hold the name only. Anywhere else (a task's argument,
a condition) the spec's validator refuses it with its usual message; a Python task reads
a secret's value itself with ``keel.secret("NAME")``.

Invariant: nothing here looks a value up; a reference cannot be turned into text while
tracing (an f-string would hide it from the validator in a task's argument).
"""

from __future__ import annotations

from typing import NoReturn

from keel.authoring.values import Value, expression_of
from keel.errors import TracingError
from keel.spec.step_nodes import SECRETS, VARIABLE_NAME


class SecretRef(Value):
    """``secrets.NAME``: a secret by reference (see the module)."""

    __slots__ = ()

    def _as_text(self) -> NoReturn:
        name = expression_of(self).removeprefix(f"{SECRETS}.")
        part = f"${{{{ secrets.{name} }}}}"
        raise TracingError(
            "a secret reference cannot be turned into text (its value is read only when a "
            f"step runs): put '{part}' in the step's field (\"Bearer {part}\"), or give it "
            f'by name: "Bearer ${{{{ token }}}}", values={{"token": keel.secrets.{name}}}'
        )

    def __str__(self) -> NoReturn:
        self._as_text()

    def __format__(self, spec: str) -> NoReturn:
        self._as_text()


class Secrets:
    """``keel.secrets.API_TOKEN`` (or ``keel.secrets["API_TOKEN"]``): a reference to the
    secret ``API_TOKEN`` for the fields of a built-in step."""

    __slots__ = ()

    def __getattr__(self, name: str) -> SecretRef:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> SecretRef:
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            raise TracingError(f"{name!r} is not a secret name: letters, digits and '_'")
        return SecretRef(f"{SECRETS}.{name}")

    def __repr__(self) -> str:
        return "keel.secrets"


#: ``keel.secrets``
secrets = Secrets()
