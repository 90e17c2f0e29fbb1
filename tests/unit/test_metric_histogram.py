"""keel's histogram (``keel.runtime.histogram``) exposes what prometheus_client's
``Histogram`` exposes for the same observations, in both formats a scraper may ask for,
but for the ``_created`` series keel's registry leaves out."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Histogram as ClientHistogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from keel.runtime.histogram import Histogram
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


def exposed(histogram_type: type, *, openmetrics: bool) -> list[str]:
    registry = CollectorRegistry()
    histogram = histogram_type("keel_attempt_duration_seconds", "How long, in seconds",
                               ["workflow", "node"], buckets=DURATION_BUCKETS,
                               registry=registry)  # fmt: skip
    for labels, amount in OBSERVED:
        histogram.labels(*labels).observe(amount)
    text = (openmetrics_latest if openmetrics else generate_latest)(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_exposition_is_prometheus_clients(openmetrics: bool) -> None:
    ours = exposed(Histogram, openmetrics=openmetrics)
    assert ours == exposed(ClientHistogram, openmetrics=openmetrics)
    # what is compared says what was observed
    bucket = "keel_attempt_duration_seconds_bucket"
    assert f'{bucket}{{le="0.001",node="check",workflow="claims"}} 2.0' in ours
    assert 'keel_attempt_duration_seconds_count{node="check",workflow="claims"} 5.0' in ours


def test_a_series_is_made_once_and_counts_from_several_threads() -> None:
    metrics = Metrics()
    series = metrics.durations.labels("claims", "check")
    assert metrics.durations.labels("claims", "check") is series

    def observe() -> None:
        for _ in range(1000):
            series.observe(0.002)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts, total = series.read()
    assert sum(counts) == 4000
    assert total == pytest.approx(8.0)
    text = metrics.exposition()[0].decode()
    assert 'keel_attempt_duration_seconds_count{node="check",workflow="claims"} 4000.0' in text
    assert "_created" not in text


def test_bad_buckets_and_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        Histogram("h", "h", ["a"], buckets=(1.0, 0.5), registry=CollectorRegistry())
    histogram = Histogram("h", "h", ["a"], buckets=(1.0,), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="1 label values expected"):
        histogram.labels("x", "y")
