"""Alert rules: which value to read, the threshold it must pass, for how long, and whom
to tell. One model per kind, told apart by ``kind``:

- ``failure_rate``: of the runs (of ``workflow``) that ended in the last ``window``, the
  share that failed (0 to 1; cancelled runs are left out); no value with fewer than
  ``min_runs`` ended, so one failed run of one is not 100%;
- ``p95_duration``: the 95th percentile (nearest rank) of how long those runs took,
  in seconds; no value with fewer than ``min_runs``;
- ``queue_age``: how long the oldest attempt ready on ``queue`` (any queue) has
  waited, in seconds (0 when none waits);
- ``overdue_approvals``: approvals still waiting past their timeout;
- ``late_runs``: runs (of ``workflow``) past their expected duration, not ended.

Each rule has exactly one of ``above`` and ``below``; the condition holds when the value
is past it (never when there is no value). ``for`` is how long it must hold before the
rule fires (0: at the first evaluation that finds it). Durations are written as in a spec
(``"15m"``, ``"PT1H"``, seconds); so are the thresholds of the kinds measured in seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel.spec.durations import format_duration
from keel.spec.notifiers import Notifier
from keel.spec.types import NonNegativeDuration, PositiveDuration

Unit = Literal["share", "seconds", "count"]

#: a rule's name: its label in metrics and its key in the store
AlertName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Share = Annotated[float, Field(strict=True, ge=0, le=1)]
Count = Annotated[float, Field(strict=True, ge=0)]
#: names a deployed workflow or a queue (not checked against the store: it may come later)
Filter = Annotated[str, Field(min_length=1, max_length=200)]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: what the value is measured in (how it is shown, how its threshold is written)
    unit: ClassVar[Unit]
    #: the quantile of the ended runs' durations read (p95_duration)
    quantile: ClassVar[float | None] = None

    name: AlertName
    for_: NonNegativeDuration = Field(0.0, alias="for")
    notify: tuple[Notifier, ...] = ()
    severity: str | None = Field(None, min_length=1, max_length=50)
    description: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _one_threshold(self) -> _Rule:
        if (self.threshold_above is None) == (self.threshold_below is None):
            raise ValueError("give exactly one of above and below (the threshold)")
        return self

    @property
    def threshold_above(self) -> float | None:
        above: float | None = getattr(self, "above", None)
        return above

    @property
    def threshold_below(self) -> float | None:
        below: float | None = getattr(self, "below", None)
        return below

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` is past the threshold (no value never is)."""
        if value is None:
            return False
        above, below = self.threshold_above, self.threshold_below
        return value > above if above is not None else below is not None and value < below

    def summary(self) -> dict[str, Any]:
        """What the rule checks, as JSON (kept with its state, shown by ``keel alerts``
        and the API): its fields but the notifiers, which may carry secrets (a URL's
        token), named instead as ``describe`` does."""
        from keel.runtime.notifications.channels import describe

        shown = self.model_dump(mode="json", by_alias=True, exclude={"notify", "name"},
                                exclude_none=True)  # fmt: skip
        return {**shown, "unit": self.unit, "condition": self.condition(),
                "notify": [describe(notifier) for notifier in self.notify]}  # fmt: skip

    def condition(self) -> str:
        """The rule in words: ``failure rate of claim over 15m above 20%``."""
        above = self.threshold_above
        side, threshold = ("above", above) if above is not None else ("below", self.threshold_below)
        assert threshold is not None
        return f"{self.what()} {side} {shown_value(self.unit, threshold)}"

    def what(self) -> str:
        raise NotImplementedError


class FailureRate(_Rule):
    unit: ClassVar[Unit] = "share"

    kind: Literal["failure_rate"]
    workflow: Filter | None = None
    window: PositiveDuration
    min_runs: int = Field(10, ge=1)
    above: Share | None = None
    below: Share | None = None

    def what(self) -> str:
        return f"failure rate{_of(self.workflow)} over {format_duration(self.window)}"


class P95Duration(_Rule):
    unit: ClassVar[Unit] = "seconds"
    quantile: ClassVar[float | None] = 0.95

    kind: Literal["p95_duration"]
    workflow: Filter | None = None
    window: PositiveDuration
    min_runs: int = Field(1, ge=1)
    above: NonNegativeDuration | None = None
    below: NonNegativeDuration | None = None

    def what(self) -> str:
        return f"p95 duration{_of(self.workflow)} over {format_duration(self.window)}"


class QueueAge(_Rule):
    unit: ClassVar[Unit] = "seconds"

    kind: Literal["queue_age"]
    queue: Filter | None = None
    above: NonNegativeDuration | None = None
    below: NonNegativeDuration | None = None

    def what(self) -> str:
        where = f"queue {self.queue}" if self.queue is not None else "any queue"
        return f"age of the oldest ready attempt on {where}"


class OverdueApprovals(_Rule):
    unit: ClassVar[Unit] = "count"

    kind: Literal["overdue_approvals"]
    above: Count | None = None
    below: Count | None = None

    def what(self) -> str:
        return "approvals overdue"


class LateRuns(_Rule):
    unit: ClassVar[Unit] = "count"

    kind: Literal["late_runs"]
    workflow: Filter | None = None
    above: Count | None = None
    below: Count | None = None

    def what(self) -> str:
        return f"late runs{_of(self.workflow)}"


AlertRule = Annotated[
    FailureRate | P95Duration | QueueAge | OverdueApprovals | LateRuns,
    Field(discriminator="kind"),
]
#: every kind, by the name written in ``kind``
KINDS: dict[str, type[_Rule]] = {
    "failure_rate": FailureRate,
    "p95_duration": P95Duration,
    "queue_age": QueueAge,
    "overdue_approvals": OverdueApprovals,
    "late_runs": LateRuns,
}


def _of(workflow: str | None) -> str:
    return "" if workflow is None else f" of {workflow}"


def shown_value(unit: str, value: float | None) -> str:
    """A value as people read it: ``25%``, ``1m30s``, ``3``; ``-`` for no value."""
    if value is None:
        return "-"
    if unit == "share":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return format_duration(value) if value else "0s"  # not "0ms": nothing waits
    return f"{value:g}"
