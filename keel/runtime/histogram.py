"""A Prometheus histogram whose series are cheap to make and to count into.

prometheus_client's ``Histogram`` makes each labelled series (child) of a value object
and a lock per bucket, some 30 µs for the fourteen buckets of an attempt's duration,
and takes two locks per observation. keel makes a series per workflow and node (up to
``MOST_NODES`` per workflow), most of them on a workflow's first run, where that cost
was a tenth of running the node. Here a series is a list of counts and a sum, behind
the histogram's one lock, and the family is built when scraped.

What is exposed is what prometheus_client's ``Histogram`` exposes for the same
observations (the same name, help, labels, ``le`` values, cumulative buckets, ``_count``
and ``_sum``), less its ``_created`` series, which keel's registry leaves out anyway
(``metrics._Registry``); a test compares the two expositions.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["Histogram", "Series"]

_INF = float("inf")
#: an ``le`` label as prometheus_client writes it ("0.001", "1.0", "+Inf")
_le_of = cast(Callable[[float], str], floatToGoString)


class Series:
    """One labelled series: what ``Histogram.labels`` gives, to ``observe`` into."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds, self._lock = bounds, lock
        self._counts = [0] * (len(bounds) + 1)  # the last: past every bound (+Inf)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        at = bisect_left(self._bounds, amount)  # the first bucket whose bound is >= amount
        with self._lock:
            self._counts[at] += 1
            self._sum += amount

    def read(self) -> tuple[list[int], float]:
        """The counts per bucket (not cumulative) and the sum, at one instant."""
        with self._lock:
            return list(self._counts), self._sum


class Histogram(Collector):
    """A histogram family with the labels ``labelnames``, registered in ``registry``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets)
        if list(bounds) != sorted(bounds) or not bounds or bounds[-1] == _INF:
            raise ValueError("buckets: finite upper bounds, in increasing order")
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._bounds = bounds
        self._le = [_le_of(bound) for bound in (*bounds, _INF)]
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], Series] = {}
        registry.register(self)

    def labels(self, *values: str) -> Series:
        """The series with these label values (in ``labelnames``' order), made on first use."""
        found = self._series.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
            with self._lock:
                found = self._series.setdefault(values, Series(self._bounds, self._lock))
        return found

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            every = list(self._series.items())
        for values, series in every:
            counts, total = series.read()
            cumulative, buckets = 0.0, []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, total)
        return [family]
