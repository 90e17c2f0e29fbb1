"""Prometheus counters and histograms whose series are cheap to make and to count into.

prometheus_client makes each labelled series (child) of a value object and a lock per
number it keeps, and goes through a few checks and a lock per count: a histogram's
series of fourteen buckets costs some 30 µs to make, a counter's 5 µs. keel makes series
per workflow and node (up to ``MOST_NODES`` per workflow), most of them on a workflow's
first run, where that cost was a tenth of running the node, and counts into them on
every attempt. Here a series is a number (a counter's) or a list of counts and a sum (a
histogram's), behind its family's lock (which a ``Metrics`` shares between its
families), and the family is built when scraped.

What is exposed is what prometheus_client's ``Counter`` and ``Histogram`` expose for the
same counts (the same names, help, labels, ``le`` values, cumulative buckets, ``_count``
and ``_sum``, and an unlabelled counter's value from the start), less their ``_created``
series, which keel's registry leaves out anyway (``metrics._Registry``): a test compares
the expositions line by line.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["Counter", "CounterSeries", "Histogram", "HistogramSeries"]

_INF = float("inf")
#: an ``le`` label as prometheus_client writes it ("0.001", "1.0", "+Inf")
_le_of = cast(Callable[[float], str], floatToGoString)


class CounterSeries:
    """One labelled series of a ``Counter``, to ``inc``."""

    __slots__ = ("_lock", "_value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        lock = self._lock
        lock.acquire()  # not ``with``: half the cost, on every count
        try:
            self._value += amount
        finally:
            lock.release()

    def read(self) -> float:
        return self._value


class HistogramSeries:
    """One labelled series of a ``Histogram``, to ``observe`` into."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds, self._lock = bounds, lock
        self._counts = [0] * (len(bounds) + 1)  # the last: past every bound (+Inf)
        self._sum = 0.0

    def observe(self, amount: float, counted: CounterSeries | None = None) -> None:
        """``counted``: a counter's series to increment by one with it (an attempt's
        duration and its outcome), under the one lock their families share (those of
        one ``Metrics`` do; ``shares_lock`` says whether two series' families do)."""
        at = bisect_left(self._bounds, amount)  # the first bucket whose bound is >= amount
        lock = self._lock
        lock.acquire()  # as in ``CounterSeries.inc``
        try:
            self._counts[at] += 1
            self._sum += amount
            if counted is not None:
                counted._value += 1
        finally:
            lock.release()

    def shares_lock(self, other: CounterSeries) -> bool:
        """Whether ``other`` may be ``counted`` with this series (``observe``)."""
        return self._lock is other._lock

    def read(self) -> tuple[list[int], float]:
        """The counts per bucket (not cumulative) and the sum, at one instant."""
        with self._lock:
            return list(self._counts), self._sum


Series = TypeVar("Series", CounterSeries, HistogramSeries)


class _Family(Collector, Generic[Series]):
    """A family's series by label values, made on first use, and its registration."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        lock: threading.Lock | None,
    ) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._lock = lock or threading.Lock()
        self._series: dict[tuple[str, ...], Series] = {}
        registry.register(self)
        if not self.labelnames:  # one series, exposed from the start
            self.labels()

    def labels(self, *values: str) -> Series:
        """The series with these label values (in ``labelnames``' order)."""
        found = self._series.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
            with self._lock:
                found = self._series.setdefault(values, self._new())
        return found

    def _new(self) -> Series:
        raise NotImplementedError

    def _every(self) -> list[tuple[tuple[str, ...], Series]]:
        with self._lock:
            return list(self._series.items())


class Counter(_Family[CounterSeries]):
    """A counter family (exposed as ``NAME_total``). Without labels, it is its own one
    series: ``inc`` it; it is exposed from the start, at zero."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
        lock: threading.Lock | None = None,
    ) -> None:
        """``lock``: one shared with other families (a ``Metrics``' own), else a new one."""
        super().__init__(name, documentation, labelnames, registry, lock)

    def inc(self, amount: float = 1) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: inc one of its series (labels(...))")
        self.labels().inc(amount)

    def _new(self) -> CounterSeries:
        return CounterSeries(self._lock)

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in self._every():
            family.add_metric(values, series.read())
        return [family]


class Histogram(_Family[HistogramSeries]):
    """A histogram family with finite upper bounds ``buckets`` (and +Inf)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
        lock: threading.Lock | None = None,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets)
        if list(bounds) != sorted(bounds) or not bounds or bounds[-1] == _INF:
            raise ValueError("buckets: finite upper bounds, in increasing order")
        self._bounds = bounds
        self._le = [_le_of(bound) for bound in (*bounds, _INF)]
        super().__init__(name, documentation, labelnames, registry, lock)

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self._bounds, self._lock)

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in self._every():
            counts, total = series.read()
            cumulative, buckets = 0.0, []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, total)
        return [family]
