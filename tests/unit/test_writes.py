"""Every kind of write has its place in the order the store applies them."""

from __future__ import annotations

import typing

from keel.store.writes import WITH_EVENTS, WRITE_ORDER, Enqueue, Write, write_rank


def test_every_kind_of_write_has_a_rank() -> None:
    kinds = set(typing.get_args(Write))
    assert set(WRITE_ORDER) == kinds, "add the new write to WRITE_ORDER"
    assert len(WRITE_ORDER) == len(kinds)


def test_queued_attempts_go_in_with_the_events() -> None:
    assert WRITE_ORDER[WITH_EVENTS] is Enqueue
    ranks = [write_rank(kind.__new__(kind)) for kind in WRITE_ORDER]
    assert ranks == sorted(ranks) == list(range(len(WRITE_ORDER)))
