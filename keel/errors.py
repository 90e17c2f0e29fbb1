"""The error tree of keel.

Every error keel raises on purpose is a ``KeelError``, so callers can catch keel's own
failures without catching programming mistakes. Messages say what was wrong and what
to do about it. This module imports nothing of keel, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


class KeelError(Exception):
    """Base of every error keel raises deliberately."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a workflow definition.

    ``loc`` is the path inside the spec's data (``("nodes", 2, "args", "doc")``) so that
    a YAML loader can turn it into a line and column; ``node`` names the node when the
    problem belongs to one.
    """

    message: str
    loc: tuple[str | int, ...] = ()
    node: str | None = None
    code: str = "invalid"
    source: str | None = None
    line: int | None = None
    column: int | None = None

    def located(self, source: str | None, line: int | None, column: int | None) -> SpecIssue:
        return replace(self, source=source, line=line, column=column)

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        loc = self.loc
        subject = ""
        if self.node:
            subject = f"node '{self.node}'"
            if len(loc) >= 2 and loc[0] == "nodes":
                loc = loc[2:]
        path = ".".join(str(part) for part in loc)
        if subject and path:
            subject += f", {path}"
        elif path:
            subject = path
        return f"{where}{subject}: {self.message}" if subject else f"{where}{self.message}"


class SpecError(KeelError, ValueError):
    """A workflow definition is invalid. Carries every issue found, not only the first."""

    def __init__(self, issues: list[SpecIssue], *, workflow: str | None = None) -> None:
        self.issues = list(issues)
        self.workflow = workflow
        head = f"workflow '{workflow}' is invalid" if workflow else "invalid workflow definition"
        count = len(self.issues)
        lines = [f"{head} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class InvalidWorkflowsError(SpecError):
    """Several workflow definitions are invalid (the workflows of one Python file, each
    refused by ``@keel.workflow``): ``errors`` holds each one's ``SpecError``, so its
    problems stay under its name; ``issues`` holds all of them."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = list(errors)
        super().__init__([issue for error in self.errors for issue in error.issues])
        self.args = ("\n".join(str(error) for error in self.errors),)


class ExpressionError(KeelError, ValueError):
    """An expression does not parse, or refers to something it may not."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        super().__init__(message)


class TracingError(KeelError, TypeError):
    """A workflow function used a step's future result in a way tracing cannot capture.

    Workflow functions are traced once at definition time; their values are references to
    results that do not exist yet, so Python control flow over them cannot work.
    """


class OptionError(KeelError, ValueError):
    """A task or workflow option has a value that cannot work (``retries=-1``)."""


class WorkflowNotFoundError(KeelError, LookupError):
    """A file or module does not define the workflow that was asked for."""


class StoreError(KeelError):
    """The store cannot do what was asked (unreadable database, unknown URL, bad schema)."""


class StoreUnavailableError(StoreError):
    """The database could not be reached, or another process kept it locked, for longer
    than the store waits (it reconnects after a lost connection and waits for locks
    before giving up). Nothing recorded is lost: try again once it is back."""


class StorageFaultError(StoreError):
    """The database cannot record anything more: it is read-only, its disk is full,
    its file is damaged or the disk fails. Retrying does not help until someone fixes
    the cause; what was recorded before is intact."""


class RunNotFoundError(StoreError, LookupError):
    """No run has this id (or the prefix given matches none, or several)."""


#: how the message of a ``RunNotFoundError`` for an id that names no run starts (the CLI
#: adds where to find one; the store and the API say only that)
NO_RUN = "no run with id"


class RunPrunedError(KeelError):
    """The run was pruned (``keel prune``): its history is gone, only its row and its
    tombstone are left, so nothing can be replayed or done to it any more."""


class NodeNotFoundError(RunNotFoundError):
    """The run has no node by this name, or its node no attempt by this number. A kind
    of ``RunNotFoundError`` (what was asked for is not in the store): through a server
    it comes back as one."""


class VersionNotFoundError(RunNotFoundError):
    """No stored workflow version begins with these digits. A kind of
    ``RunNotFoundError`` (what was asked for is not in the store), as
    ``NodeNotFoundError`` is: through a server it comes back as one."""


class AlreadyExistsError(StoreError):
    """What is being created exists already (a run id, a token name)."""


class RunExistsError(AlreadyExistsError):
    """A run with this id exists already (an idempotent start finds the first one so)."""


class ForbiddenError(KeelError, PermissionError):
    """The identity acting may not do this (its role, or an approval's assignees)."""


class ConflictError(StoreError):
    """Another process changed the run first; reload its history and decide again."""


class LeaseLostError(StoreError):
    """The attempt's lease is no longer held by this worker (it expired and was reclaimed,
    or the run ended): its outcome is discarded so that no result is recorded twice."""


class RemoteError(KeelError):
    """A keel server (``keel serve``) could not be reached, refused the token, was over
    its rate limit, or failed; ``status`` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class InputError(KeelError, ValueError):
    """A run's input does not match the workflow's input schema."""


class NonRetryable(KeelError):  # noqa: N818 - the name users raise, as issue 5 specifies
    """Raise from a task to fail the attempt without retrying, whatever the retry policy."""


class RetryLater(KeelError):  # noqa: N818 - a task raises it, as it raises NonRetryable
    """Raise from a task to fail the attempt and have the next one wait at least
    ``after`` seconds (an API answered 429 with ``Retry-After``); retried as the node's
    policy says, never sooner than its own backoff either."""

    def __init__(self, message: str, *, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class ApprovalNeeded(KeelError):  # noqa: N818 - a task raises it to pause, not an error
    """Raise from a task to stop its attempt and wait for a person: the node waits as an
    approval node does (``keel approvals``, ``keel approve RUN NODE``). Approved, the node
    runs again (a new attempt) with each decision so far in its ``approvals`` argument
    (``{"key", "by", "data", "comment"}``); rejected, it fails with ``Rejected``. ``key``
    names what is asked (a budget, a tool call's arguments), so the task can tell which
    of its questions an approval answers. Not for the items of a map: an item that asks
    fails instead."""

    def __init__(
        self,
        title: str,
        *,
        key: str,
        description: str = "",
        assignees: tuple[str, ...] = (),
        form: Mapping[str, object] | None = None,
        data: object = None,
    ) -> None:
        super().__init__(title)
        self.title, self.key, self.description = title, key, description
        self.assignees, self.form, self.data = assignees, form, data

    def details(self) -> dict[str, object]:
        """What the ``NodeAwaiting`` event keeps (the same keys an approval node's have,
        and ``asked``: the key; ``data``: what the task shows the approver)."""
        return {"title": self.title, "description": self.description,
                "assignees": list(self.assignees), "role": None, "form": self.form,
                "asked": self.key, "data": self.data}  # fmt: skip
