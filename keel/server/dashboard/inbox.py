"""The approvals inbox as one viewer sees it: the waiting approvals (``Store.waits``, as
``GET /approvals`` and ``keel approvals`` list them, oldest first), which tab each is
in for this viewer, whether they may decide it, and its form.

Who may decide follows ``keel.server.policies.check_decider``, which the
operation runs again inside the decision's transaction: a role with ``decide``, and
the viewer's name, role or one of their groups among the approval's assignees and role
(an approval assigned to nobody: any decider; an admin: any approval). The page only
hides what the operation would refuse.

A tab lists its oldest ``PAGE`` approvals (more on request, up to ``MOST``) and counts
the rest, so a page stays small with thousands waiting; and a live tab reads the
approvals again only for a change that can matter to them (``may_matter``), not for
every change of every run.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

from keel.engine.state import is_finished
from keel.server.dashboard.schema_form import Field, Schema, form_fields
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.store.protocol import Store
from keel.store.records import RunChange, Wait

Tab = Literal["mine", "groups", "all"]
#: the tabs in the order shown, with their labels
TABS: dict[Tab, str] = {"mine": "Mine", "groups": "My groups", "all": "All"}
#: where a viewer lands without a tab: the first of these holding an approval, else all
_LANDING: tuple[Tab, ...] = ("mine", "groups")
#: approvals a tab lists (and how many more each "more" adds); the most it lists (the
#: approvals read at once, ``Store.waits``' limit)
PAGE = 100
MOST = 1000


@dataclass(frozen=True, slots=True)
class Item:
    """One waiting approval as the page draws it."""

    wait: Wait
    title: str
    #: filled in from upstream outputs when the approval opened (``${{ ... }}`` parts)
    description: str
    #: the approval's assignees and role: who may decide it
    deciders: tuple[str, ...]
    overdue: bool
    may_decide: bool
    #: why this viewer may not decide it ("" when they may)
    why_not: str
    form: Schema | None
    fields: tuple[Field, ...]
    #: what a route or handler escalates to this approval
    error: Any

    @property
    def dom_id(self) -> str:
        return f"approval-{self.wait.run_id}-{self.wait.node}"

    @property
    def key(self) -> str:
        """Changes when what the page shows of it changes (the page keeps what a person
        typed into an approval whose key did not change)."""
        wait = self.wait
        return f"{wait.since}:{wait.until}:{wait.run_status}:{self.may_decide}"

    @property
    def action(self) -> str:
        return f"/ui/approvals/{self.wait.run_id}/{self.wait.node}"


def deciders(details: dict[str, Any]) -> tuple[str, ...]:
    role = details.get("role")
    return (*(details.get("assignees") or ()), *((role,) if role else ()))


def why_not(who: Identity, names: tuple[str, ...]) -> str:
    """Why ``who`` may not decide an approval assigned to ``names`` ("" if they may)."""
    if not who.may(Permission.DECIDE):
        return f"your role ({who.role}) may not decide approvals"
    if who.role == "admin" or not names or who.matches(names):
        return ""
    return f"it is assigned to {', '.join(names)}"


def in_tab(tab: Tab, who: Identity, names: tuple[str, ...]) -> bool:
    """``mine``: assigned to the viewer by name; ``groups``: to their role or one of
    their groups; ``all``: every approval."""
    if tab == "mine":
        return who.name in names
    if tab == "groups":
        return any(name in names for name in (who.role, *who.groups))
    return True


def item_of(wait: Wait, who: Identity, now: float) -> Item:
    details = wait.details
    names = deciders(details)
    refused = why_not(who, names)
    form = details.get("form")
    form = form if isinstance(form, dict) else None
    return Item(
        wait=wait, title=str(details.get("title") or wait.node),
        description=str(details.get("description") or ""), deciders=names,
        overdue=wait.until is not None and wait.until <= now, may_decide=not refused,
        why_not=refused, form=form, fields=tuple(form_fields(form)) if form else (),
        error=details.get("error"),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Inbox:
    """The approvals of one tab (its first ``limit``), how many more it holds
    (``hidden``), and how many each tab holds (from the same read)."""

    tab: Tab
    items: list[Item]
    counts: dict[Tab, int]
    limit: int = PAGE
    hidden: int = 0

    @property
    def signature(self) -> tuple[Any, ...]:
        """What the live stream compares to tell whether to send the list again."""
        return (tuple((i.dom_id, i.key) for i in self.items), tuple(self.counts.items()),
                self.hidden)  # fmt: skip

    @property
    def more(self) -> int:
        """What the tab lists with its "more" link."""
        return min(self.limit + PAGE, MOST)


def waiting(store: Store) -> list[Wait]:
    return store.waits(waits_for="approval", limit=MOST)


def inbox(
    waits: Sequence[Wait], who: Identity, tab: Tab | None, now: float, limit: int = PAGE
) -> Inbox:
    """The viewer's inbox, its first ``limit`` approvals; without a tab, the first of
    mine and my groups that holds an approval (else all), so a person lands where their
    work is."""
    named = [(wait, deciders(wait.details)) for wait in waits]
    counts: dict[Tab, int] = {
        t: sum(1 for _, names in named if in_tab(t, who, names)) for t in TABS
    }
    shown: Tab = tab if tab is not None else next((t for t in _LANDING if counts[t]), "all")
    listed = [wait for wait, names in named if in_tab(shown, who, names)]
    items = [item_of(wait, who, now) for wait in listed[:limit]]
    return Inbox(shown, items, counts, limit, max(0, len(listed) - limit))


def may_matter(store: Store, change: RunChange, waiting_runs: Set[str]) -> bool:
    """Whether a change of a run can change what the inbox shows: a run with an
    approval waiting when last read (decided, its run ended or paused), or a run not
    ended that waits for one now (a read by the waits' key). Most changes (runs moving
    on, runs ending that waited for nothing) are neither."""
    if change.id in waiting_runs:
        return True
    if is_finished(change.status):
        return False
    return bool(store.waits(waits_for="approval", run_id=change.id, limit=1))
