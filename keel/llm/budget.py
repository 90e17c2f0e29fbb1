"""A run's LLM budget, as a step applies it: the limits a request's reservation must fit
(raised by each approval a person gave when the budget ran out and the policy was
``ask``), and what to do when one would not.

Each request reserves its most before it is sent (``Store.send_call`` checks and
writes in one transaction, so racing workers cannot both take the last dollar) and
settles to its cost after; see ``keel.store.model_calls``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from keel.errors import ApprovalNeeded
from keel.llm.errors import BudgetExceeded
from keel.store.model_calls import NANOS, SpendLimits, SpendRefused

#: the key of the approvals that raise a budget: ``budget:<scope>:<n>``
_KEY = "budget:"


def nanos(dollars: float | Decimal) -> int:
    return math.ceil(Decimal(str(dollars)) * NANOS)


def dollars(amount: int) -> str:
    """Nano-dollars as a person reads them: ``$0.0123``."""
    value = Decimal(amount) / NANOS
    return f"${value:.4f}" if value < 100 else f"${value:,.2f}"


@dataclass(frozen=True, slots=True)
class Budget:
    per_run: int | None
    per_day: int | None
    on_exceed: Literal["fail", "ask", "degrade"]
    assignees: tuple[str, ...]

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Budget | None:
        """The budget a model step's ``step`` argument carries (the workflow's)."""
        if not data:
            return None
        per_run, per_day = data.get("per_run"), data.get("per_day")
        return cls(
            per_run=None if per_run is None else nanos(per_run),
            per_day=None if per_day is None else nanos(per_day),
            on_exceed=data.get("on_exceed", "fail"),
            assignees=tuple(data.get("assignees", ())),
        )

    def limits(self, approvals: list[dict[str, Any]], now: float) -> SpendLimits:
        """The limits now: each scope's own, plus what approvals granted it."""
        granted = {"run": 0, "workflow_day": 0}
        for answer in approvals:
            key = str(answer.get("key") or "")
            if key.startswith(_KEY):
                scope = key[len(_KEY) :].split(":", 1)[0]
                extra = (answer.get("data") or {}).get("extra", 0)
                valid = isinstance(extra, int | float) and not isinstance(extra, bool)
                if scope in granted and valid and extra > 0:
                    granted[scope] += nanos(extra)
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return SpendLimits(
            run=None if self.per_run is None else self.per_run + granted["run"],
            workflow_day=None if self.per_day is None else self.per_day + granted["workflow_day"],
            day_start=day.timestamp(),
        )


def refusal_text(refused: SpendRefused) -> str:
    scope = "the run's budget" if refused.scope == "run" else "the workflow's budget for today"
    return (
        f"the next model request would pass {scope}: {dollars(refused.spent)} spent or "
        f"reserved of {dollars(refused.limit)}, and it reserves {dollars(refused.reserved)}"
    )


def ask_for_more(
    refused: SpendRefused, budget: Budget, approvals: list[dict[str, Any]], to_finish: int
) -> ApprovalNeeded:
    """The question for a person when the budget ran out and the policy is ``ask``:
    what was spent, what the node is estimated to need to finish, and a form for how
    much more to allow (suggested: that estimate)."""
    asked = sum(1 for answer in approvals if str(answer.get("key", "")).startswith(_KEY))
    suggested = max(to_finish, refused.reserved)
    description = (
        f"{refusal_text(refused)}. To finish, this step is estimated to need up to "
        f"{dollars(to_finish)} more. Approve to allow more (the form's 'extra', in dollars)."
    )
    form = {
        "type": "object",
        "properties": {
            "extra": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": float(Decimal(suggested) / NANOS),
            }
        },
    }
    return ApprovalNeeded(
        "LLM budget reached", key=f"{_KEY}{refused.scope}:{asked + 1}", description=description,
        assignees=budget.assignees, form=form,
        data={"spent": refused.spent, "limit": refused.limit, "reserved": refused.reserved,
              "to_finish": to_finish, "scope": refused.scope},
    )  # fmt: skip


def exceeded(refused: SpendRefused) -> BudgetExceeded:
    return BudgetExceeded(refusal_text(refused))
