"""What starts runs of a workflow besides an explicit call: schedules, events, webhooks.

Modelled and validated here (a cron line that cannot fire, an unknown time zone); the
scheduler that acts on them belongs to the runtime.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keel.spec.types import Expression, JsonData


class _Trigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleTrigger(_Trigger):
    """Start a run on a cron schedule, in a named time zone (DST handled by cronsim)."""

    kind: Literal["schedule"] = "schedule"
    cron: str
    timezone: str = "UTC"
    input: dict[str, JsonData] = Field(default_factory=dict)

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
    """Start a run from an HTTP request to ``path``; the JSON body becomes the input."""

    kind: Literal["webhook"] = "webhook"
    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    method: Literal["POST", "PUT"] = "POST"
    #: name of the environment variable holding the shared secret for signatures
    secret_env: str | None = None


Trigger = Annotated[ScheduleTrigger | EventTrigger | WebhookTrigger, Field(discriminator="kind")]
