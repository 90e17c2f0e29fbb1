"""Retry policy: the backoff schedule (exponential, capped, deterministic jitter) and
which errors may be retried (``retry_on``, ``never_retry_on``, ``keel.NonRetryable``)."""

from __future__ import annotations

import pytest

import keel
from keel.engine.backoff import backoff
from keel.runtime.execution.invoke import error_of, may_retry, type_names
from keel.spec.policies import RetryPolicy


class RateLimitedError(ConnectionError):
    pass


def test_backoff_grows_by_the_multiplier_until_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=1, multiplier=3, max_backoff=20, jitter=0)
    waits = [backoff(policy, "run", "n", None, attempt) for attempt in range(1, 6)]
    assert waits == [1, 3, 9, 20, 20]


def test_jitter_shortens_the_wait_by_at_most_its_fraction_and_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=10, max_backoff=10, jitter=0.5)
    waits = [backoff(policy, f"run-{index}", "n", None, 1) for index in range(200)]
    assert all(5 <= wait <= 10 for wait in waits)
    assert len(set(waits)) > 150, "runs that failed together must not retry together"


def test_jitter_is_the_same_for_the_same_run_node_item_and_attempt() -> None:
    policy = RetryPolicy(initial_backoff=10, max_backoff=60, jitter=0.9)
    assert backoff(policy, "run", "n", 3, 2) == backoff(policy, "run", "n", 3, 2)
    others = {backoff(policy, *args) for args in
              [("run", "n", 4, 2), ("run", "m", 3, 2), ("other", "n", 3, 2)]}  # fmt: skip
    assert backoff(policy, "run", "n", 3, 2) not in others


def test_no_backoff_means_no_wait() -> None:
    assert backoff(RetryPolicy(initial_backoff=0), "run", "n", None, 4) == 0


@pytest.mark.parametrize("attempt", [156, 1025, 9_999])
def test_the_cap_holds_where_the_growth_would_overflow_a_float(attempt: int) -> None:
    # a valid policy: 10,000 attempts growing a hundredfold each time pass 1e308 early
    policy = RetryPolicy(max_attempts=10_000, initial_backoff=1, multiplier=100,
                         max_backoff="1h", jitter=0)  # fmt: skip
    assert backoff(policy, "run", "n", None, attempt) == 3600
    assert backoff(RetryPolicy(initial_backoff=0, multiplier=100), "run", "n", None, attempt) == 0


def test_a_policy_names_errors_by_bare_or_dotted_name_and_covers_subclasses() -> None:
    names = type_names(RateLimitedError)
    assert {
        "RateLimitedError",
        f"{__name__}.RateLimitedError",
        "ConnectionError",
        "OSError",
    } <= names
    assert may_retry(RetryPolicy(retry_on=("ConnectionError",)), names)
    assert may_retry(RetryPolicy(retry_on=(f"{__name__}.RateLimitedError",)), names)
    assert not may_retry(RetryPolicy(retry_on=("ValueError",)), names)
    assert not may_retry(RetryPolicy(never_retry_on=("OSError",)), names)
    assert may_retry(RetryPolicy(never_retry_on=("ValueError",)), names)
    assert may_retry(None, names)


@pytest.mark.parametrize(
    ("error", "policy", "retryable"),
    [
        (KeyError("k"), RetryPolicy(), True),
        (KeyError("k"), RetryPolicy(never_retry_on=("KeyError",)), False),
        (KeyError("k"), RetryPolicy(never_retry_on=("LookupError",)), False),
        (KeyError("k"), RetryPolicy(retry_on=("TimeoutError",)), False),
        (RateLimitedError("slow down"), RetryPolicy(retry_on=("ConnectionError",)), True),
        (keel.NonRetryable("bad input"), RetryPolicy(retry_on=("NonRetryable",)), False),
    ],
)
def test_error_of_records_whether_the_policy_retries_it(
    error: BaseException, policy: RetryPolicy, retryable: bool
) -> None:
    assert error_of(error, policy).retryable is retryable
