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


def test_leasing_and_adding_keep_every_other_field_of_a_transition() -> None:
    """They build the transition field by field (faster than ``replace``): a field added
    to ``Transition`` later must not be dropped by them."""
    import dataclasses

    from keel.store.writes import LeaseRequest, SetStatus, Transition

    every = {f.name for f in dataclasses.fields(Transition)}
    assert every == {"run_id", "expected_seq", "at", "events", "writes", "lease", "expected_head"}
    t = Transition("r", 3, 1.5, (), (SetStatus("running"),), None, "h" * 64)
    request = LeaseRequest(owner="w", limit=2, lease_for=30.0)
    assert t.leasing(request) == dataclasses.replace(t, lease=request)
    added = SetStatus("succeeded")
    assert t.adding(added) == dataclasses.replace(t, writes=(*t.writes, added))
