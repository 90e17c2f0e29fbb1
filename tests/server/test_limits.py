"""The rate limits' buckets: a key over its burst waits, and the buckets kept stay
bounded however many keys callers make up (the sign-in throttle keys by address)."""

from __future__ import annotations

from keel.server.limits import RateLimits


def test_a_key_over_its_burst_waits_and_others_do_not() -> None:
    limits = RateLimits(1.0, 2.0)
    assert [limits.wait_for("a", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limits.wait_for("b", 0.0) == 0.0
    assert limits.wait_for("a", 1.0) == 0.0  # refilled by one


def test_full_buckets_are_dropped_past_the_most_kept_and_draining_ones_kept() -> None:
    limits = RateLimits(1.0, 2.0, most=3)
    for _ in range(2):
        limits.wait_for("draining", 10.0)  # empty until 12.0
    limits.wait_for("full-again", 0.0)
    limits.wait_for("fresh", 10.0)
    limits.wait_for("new", 10.0)  # the fourth: "full-again" (refilled by 10.0) goes
    assert sorted(limits._buckets) == ["draining", "fresh", "new"]
    assert limits.wait_for("draining", 10.0) > 0  # still counted: not made afresh


def test_the_buckets_stay_bounded_when_every_one_is_draining() -> None:
    limits = RateLimits(0.001, 1.0, most=100)
    for n in range(1000):
        assert limits.wait_for(f"10.0.{n // 256}.{n % 256}", 0.0) == 0.0
        assert len(limits._buckets) <= 100
