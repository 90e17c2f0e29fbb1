"""keel's counters and histograms (``keel.runtime.metric_families``) expose what
prometheus_client's ``Counter`` and ``Histogram`` expose for the same counts, in both
formats a scraper may ask for, but for the ``_created`` series keel's registry leaves
out."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as ClientCounter
from prometheus_client import Histogram as ClientHistogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from keel.runtime.metric_families import Counter, Histogram
from keel.runtime.metrics import DURATION_BUCKETS, Metrics

OBSERVED = [
    (("claims", "check"), 0.0),
    (("claims", "check"), 0.001),  # on a bound: in its bucket
    (("claims", "check"), 0.0010001),
    (("claims", "check"), 2.5),
    (("claims", "check"), 7200.0),  # past every bound: +Inf only
    (("claims", "pay"), 0.3),
    (("onboard", "check"), 59.99),
]
COUNTED = [(("claims", "succeeded"), 1), (("claims", "succeeded"), 2), (("onboard", "failed"), 1)]


def text(registry: CollectorRegistry, *, openmetrics: bool) -> list[str]:
    exposed = (openmetrics_latest if openmetrics else generate_latest)(registry).decode()
    return [line for line in exposed.splitlines() if "_created" not in line]


def exposed(histogram: type, counter: type, *, openmetrics: bool) -> list[str]:
    registry = CollectorRegistry()
    durations: Any = histogram("keel_attempt_duration_seconds", "How long, in seconds",
                               ["workflow", "node"], buckets=DURATION_BUCKETS,
                               registry=registry)  # fmt: skip
    for labels, amount in OBSERVED:
        durations.labels(*labels).observe(amount)
    attempts: Any = counter("keel_attempts", "Attempts, by outcome", ["workflow", "outcome"],
                            registry=registry)  # fmt: skip
    for labels, amount in COUNTED:
        attempts.labels(*labels).inc(amount)
    counter("keel_attempts_reclaimed", "Reclaimed", registry=registry).inc(3)
    counter("keel_never", "Never counted", registry=registry)  # exposed at zero
    return text(registry, openmetrics=openmetrics)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_exposition_is_prometheus_clients(openmetrics: bool) -> None:
    ours = exposed(Histogram, Counter, openmetrics=openmetrics)
    assert ours == exposed(ClientHistogram, ClientCounter, openmetrics=openmetrics)
    # what is compared says what was observed
    bucket = "keel_attempt_duration_seconds_bucket"
    assert f'{bucket}{{le="0.001",node="check",workflow="claims"}} 2.0' in ours
    assert 'keel_attempt_duration_seconds_count{node="check",workflow="claims"} 5.0' in ours
    assert 'keel_attempts_total{outcome="succeeded",workflow="claims"} 3.0' in ours
    assert "keel_attempts_reclaimed_total 3.0" in ours
    assert "keel_never_total 0.0" in ours


def test_a_series_is_made_once_and_counts_from_several_threads() -> None:
    metrics = Metrics()
    series = metrics.durations.labels("claims", "check")
    assert metrics.durations.labels("claims", "check") is series
    succeeded = metrics.attempts.labels("claims", "check", "succeeded")

    def observe() -> None:
        for _ in range(1000):
            series.observe(0.002)
            succeeded.inc()

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts, total = series.read()
    assert sum(counts) == 4000
    assert total == pytest.approx(8.0)
    exposition = metrics.exposition()[0].decode()
    assert 'keel_attempt_duration_seconds_count{node="check",workflow="claims"} 4000.0' in (
        exposition
    )
    assert 'keel_attempts_total{node="check",outcome="succeeded",workflow="claims"} 4000.0' in (
        exposition
    )
    assert "_created" not in exposition


def test_what_prometheus_client_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        Histogram("h", "h", ["a"], buckets=(1.0, 0.5), registry=CollectorRegistry())
    histogram = Histogram("h", "h", ["a"], buckets=(1.0,), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="1 label values expected"):
        histogram.labels("x", "y")
    counter = Counter("c", "c", ["a"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("x").inc(-1)
    with pytest.raises(ValueError, match="has labels"):
        counter.inc()
