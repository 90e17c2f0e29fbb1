"""Tasks that read a secret and hand it back every way a task can: the redaction tests
run them through ``Invocation`` in this process and in a child process."""

from __future__ import annotations

import keel
from keel.runtime.secrets import secret


@keel.task
def returns_it() -> dict[str, object]:
    value = secret("API_TOKEN")
    return {"token": value, "nested": [f"Bearer {value}"], value: "as a key"}


@keel.task
def raises_it() -> None:
    raise RuntimeError(f"the server refused token {secret('API_TOKEN')}")


@keel.task
def logs_it() -> str:
    keel.context().logger.warning("calling with %s", secret("API_TOKEN"))
    return "done"


@keel.task
def reads_nothing() -> str:
    return "no secret here: abcd-1234-efgh"


@keel.task
def dies_saying_it() -> None:
    """Writes its secret to stderr and dies: its revealed set dies with it."""
    import os
    import sys

    sys.stderr.write(f"about to die holding {secret('API_TOKEN')}\n")
    sys.stderr.flush()
    os._exit(3)
