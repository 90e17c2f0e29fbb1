"""What starts runs of a workflow besides an explicit call: schedules, events, webhooks,
files arriving in a folder, other workflows ending.

Modelled and validated here (a cron line that cannot fire, an unknown time zone, an
expression that reads what the trigger does not give); what fires them belongs to the
runtime (``keel.runtime.triggers``), and only for a workflow's deployed current version.

Input mappings and filters are CEL over one variable: ``event`` (an event's data; a
webhook's ``{"body", "headers", "path"}``; a file's ``{"path", "name", "size",
"sha256"}``) or ``run`` (the run that ended: ``{"id", "workflow", "status", "input",
"output"}``). With no ``input`` mapping, an event's data, a webhook's body or a file's
``{"path", "sha256"}`` is the input; a finished run's output is.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.spec.durations import format_duration
from keel.spec.types import Expression, JsonData, Name, PositiveDuration

#: the longest a webhook's ``tolerance`` may be (seconds)
MOST_TOLERANCE = 3600.0


class _Trigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleTrigger(_Trigger):
    """Start a run on a cron schedule, in a named time zone (DST handled by cronsim)."""

    kind: Literal["schedule"] = "schedule"
    cron: str
    timezone: str = "UTC"
    input: dict[str, JsonData] = Field(default_factory=dict)
    #: how ``keel schedule pause NAME`` and the lists name it (default: the workflow's
    #: name, then ``#2``, ``#3``... for a workflow's further schedules)
    name: Name | None = None
    #: slots missed while nothing ran (workers down): fire none (``skip``), the last one
    #: (``latest``), or each of them, at most ``catch_up_limit`` (``all``)
    catch_up: Literal["skip", "latest", "all"] = "latest"
    catch_up_limit: int = Field(default=100, ge=1, le=10_000)
    #: the previous run of this schedule still going when a slot comes: start another
    #: (``allow``), leave the slot out (``skip``), cancel the previous (``cancel_previous``),
    #: or start it once the previous ended (``queue``)
    overlap: Literal["allow", "skip", "cancel_previous", "queue"] = "allow"
    #: start up to this long after the slot (the same delay for a slot on every host)
    jitter: PositiveDuration | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/Paris'"
            ) from None
        return value


class EventTrigger(_Trigger):
    """Start a run when a named event arrives; ``filter`` and ``input`` read ``event``."""

    kind: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=200)
    filter: Expression | None = None
    input: dict[str, Expression] = Field(default_factory=dict)


class WebhookTrigger(_Trigger):
    """Start a run from an HTTP request to ``/hooks`` + ``path`` on ``keel serve``; the
    JSON body becomes the input (or ``input`` maps ``event.body``...). A delivery is
    signed with a secret shared with the sender: there is no unsigned webhook (an open
    URL that starts runs), so ``secret_env`` is required."""

    kind: Literal["webhook"] = "webhook"
    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    method: Literal["POST", "PUT"] = "POST"
    #: name of the environment variable holding the shared secret for signatures (the
    #: secret itself is never in a spec)
    #: (``None`` only to say so clearly: refused below)
    secret_env: str | None = Field(default=None, min_length=1)
    #: how far a signature's time may be from the server's, against replays
    tolerance: PositiveDuration = 300.0
    filter: Expression | None = None
    input: dict[str, Expression] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _signed(self) -> WebhookTrigger:
        # here rather than pydantic's bare "missing required field": it says what it is for
        if self.secret_env is None:
            raise ValueError(
                "a webhook needs secret_env: the environment variable holding its signing secret"
            )
        return self

    @field_validator("tolerance")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if value > MOST_TOLERANCE:
            raise ValueError(
                f"a webhook's tolerance is at most {format_duration(MOST_TOLERANCE)} (it is "
                f"{format_duration(value)}): how far a signature's time may be from the "
                "server's clock, the window in which a captured delivery may be replayed"
            )
        return value


class FileTrigger(_Trigger):
    """Start a run when a file has finished arriving in ``folder`` (its size stable, or
    renamed in); the same path with the same content never starts two."""

    kind: Literal["file"] = "file"
    folder: str = Field(min_length=1)
    #: a glob of file names (``*.csv``)
    pattern: str = "*"
    #: move a file there once its run is recorded (None: leave it); the run is given
    #: the path it is moved to. Not ``folder`` itself: a moved file would arrive again
    move_to: str | None = None
    filter: Expression | None = None
    input: dict[str, Expression] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_back_into_itself(self) -> FileTrigger:
        if self.move_to is not None and Path(self.move_to) == Path(self.folder):
            raise ValueError("move_to is the watched folder: a moved file would arrive again")
        return self


class CompletionTrigger(_Trigger):
    """Start a run when a run of workflow ``after`` ends with one of ``status``; recorded
    with the ending run, so a crash loses none."""

    kind: Literal["completion"] = "completion"
    after: Name
    status: tuple[Literal["succeeded", "failed", "cancelled"], ...] = ("succeeded",)
    filter: Expression | None = None
    input: dict[str, Expression] = Field(default_factory=dict)


Trigger = Annotated[
    ScheduleTrigger | EventTrigger | WebhookTrigger | FileTrigger | CompletionTrigger,
    Field(discriminator="kind"),
]

#: the one variable each kind's filter and input mapping read
TRIGGER_VARIABLE = {"event": "event", "webhook": "event", "file": "event",
                    "completion": "run"}  # fmt: skip
