"""The Prometheus metrics of one keel process, defined once, in a registry of its own.

A ``Metrics`` owns its ``CollectorRegistry`` (never the client's global default), so
tests and several apps or workers in one process never collide, and what a process
exposes is exactly what was given to it. Every counter and histogram is here; the
places that know the facts count them:

- runs started: where a run is recorded (a worker's ``start_run`` and the schedules
  and completion triggers it fires) and, for child runs, the worker whose commit
  creates them (``keel.runtime.worker.metering``); the API server counts those its
  commits create, child runs included (``keel.server.metered``);
- runs finished, attempts, retries, failures, durations, queue lag, reclaims: the
  worker, from what it claims and commits (``metering``); the server too counts the runs
  its commits end (a cancel and the cancels of its children, a rejection);
- worker slots: read from the worker when scraped (``watch_slots``);
- what the store holds (queue depth, waiting runs...): a collector the server adds
  (``keel.server.gauges``), computed from the store at scrape time.

The counters and histograms are keel's own (``keel.runtime.metric_families``), exposed
as prometheus_client's: a series costs a number or a list, not locked values (a
workflow's first run makes a few per node, up to ``MOST_NODES`` nodes), and has no
``_created`` series, which prometheus_client adds to each of its own, doubling their
series for a number no dashboard here reads; the registry leaves those out of any
collector added (``_Registry``). Per registry, not with the client's
``disable_created_metrics``, a switch of the whole process that would change the
metrics of code keel runs alongside (a task's own, an embedding program's).

Label values are workflow, node and queue names from deployed definitions, run
statuses and error types: bounded, never a run id or an attempt number. A workflow's
first ``MOST_NODES`` nodes and ``MOST_ERROR_TYPES`` error types seen get series of their
own, the rest share ``OTHER`` (a generated workflow of thousands of nodes must not make
thousands of series, nor cost their creation on its first run). Names follow
Prometheus' rules: the ``keel_`` prefix, ``_total`` on counters (the client adds it),
``_seconds`` on times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from keel.runtime.metric_families import Counter, CounterSeries, Histogram, HistogramSeries

__all__ = ["OTHER", "CounterSeries", "HistogramSeries", "Metrics"]

#: series per workflow for its nodes, and for the types of its attempts' errors
MOST_NODES = 50
MOST_ERROR_TYPES = 20
#: the label value of the nodes and error types past those
OTHER = "_other"

#: an attempt's duration: from a millisecond task to an hour-long one
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
                    300.0, 3600.0)  # fmt: skip
#: an attempt's wait on its queue: none (leased on commit) to half an hour
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
               1800.0)  # fmt: skip


class Metrics:
    """Every metric a keel process counts, in ``registry``."""

    def __init__(self) -> None:
        self.registry = registry = _Registry()
        #: every family's series count under this one lock: an attempt's duration and
        #: its outcome are counted together, taking it once (``HistogramSeries.observe``)
        lock = threading.Lock()
        self.runs_started = Counter(
            "keel_runs_started", "Runs this process started (child runs included)",
            ["workflow"], registry=registry, lock=lock,
        )  # fmt: skip
        self.runs_finished = Counter(
            "keel_runs_finished", "Runs whose end this process recorded, by how they ended",
            ["workflow", "status"], registry=registry, lock=lock,
        )  # fmt: skip
        self.runs_late = Counter(
            "keel_runs_late", "Runs this process marked late (past their workflow's "
            "expected_duration, not ended)", ["workflow"], registry=registry, lock=lock,
        )  # fmt: skip
        self.attempts = Counter(
            "keel_attempts", "Attempts this process ran and recorded, by outcome "
            "(succeeded or failed)", ["workflow", "node", "outcome"], registry=registry, lock=lock,
        )  # fmt: skip
        self.failures = Counter(
            "keel_attempt_failures", "Failed attempts by the type of their error",
            ["workflow", "node", "error_type"], registry=registry, lock=lock,
        )  # fmt: skip
        self.retries = Counter(
            "keel_attempt_retries", "Failed attempts whose node was scheduled again",
            ["workflow", "node"], registry=registry, lock=lock,
        )  # fmt: skip
        self.durations = Histogram(
            "keel_attempt_duration_seconds", "From an attempt's start to its recorded "
            "outcome (the times of its history's events)", ["workflow", "node"],
            buckets=DURATION_BUCKETS, registry=registry, lock=lock,
        )  # fmt: skip
        self.queue_lag = Histogram(
            "keel_queue_lag_seconds", "From an attempt being ready on its queue to its "
            "start by a worker", ["queue"], buckets=LAG_BUCKETS, registry=registry, lock=lock,
        )  # fmt: skip
        self.reclaims = Counter(
            "keel_attempts_reclaimed", "Attempts put back on the queue from a holder that "
            "died or whose lease expired", registry=registry, lock=lock,
        )  # fmt: skip
        self._slots = _Slots()
        registry.register(self._slots)
        #: per workflow, the nodes and error types that have series of their own
        self._named: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def node_label(self, workflow: str, node: str) -> str:
        """The ``node`` label of a workflow's node: its name, or ``OTHER`` once the
        workflow has ``MOST_NODES`` of its own (look it up once per node, not per use)."""
        named = self._named.get((workflow, "node"))
        if named is not None and node not in named and len(named) >= MOST_NODES:
            return OTHER  # the common case of a large workflow, without another call
        return self._bounded(workflow, "node", node, MOST_NODES)

    def error_label(self, workflow: str, error_type: str) -> str:
        """The ``error_type`` label: the type's name, or ``OTHER`` past ``MOST_ERROR_TYPES``
        types in the workflow."""
        return self._bounded(workflow, "error_type", error_type, MOST_ERROR_TYPES)

    def _bounded(self, workflow: str, label: str, value: str, most: int) -> str:
        named = self._named.get((workflow, label))
        if named is not None:  # names are never forgotten: a full set stays full
            if value in named:
                return value
            if len(named) >= most:
                return OTHER
        with self._lock:  # a server and its worker may count on two threads
            named = self._named.get((workflow, label))
            if named is None:
                named = self._named[(workflow, label)] = set()
            if value in named:
                return value
            if len(named) < most:
                named.add(value)
                return value
            return OTHER

    def watch_slots(self, used: Callable[[], int], total: int) -> None:
        """Expose ``keel_worker_slots`` for the worker with ``total`` slots, ``used()``
        of them running attempts now (read at each scrape; one worker per ``Metrics``)."""
        self._slots.used, self._slots.total = used, total

    def add(self, collector: Collector) -> None:
        """Expose another collector's metrics with these (the server's store gauges)."""
        self.registry.register(collector)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """Every metric now, and its media type: the format a scraper's ``Accept``
        header asks for (OpenMetrics, or Prometheus' text format, 0.0.4 unless a newer
        one is asked for), as prometheus_client's own server chooses it."""
        encode, media_type = choose_encoder(accept)
        return encode(self.registry), media_type


class _Registry(CollectorRegistry):
    """A registry whose families leave out their ``_created`` series."""

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            created = metric.name + "_created"
            if any(sample.name == created for sample in metric.samples):
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = [sample for sample in metric.samples if sample.name != created]
                metric = kept
            yield metric


class _Slots(Collector):
    """``keel_worker_slots{state="used"|"free"}``, read from the worker when scraped."""

    def __init__(self) -> None:
        self.used: Callable[[], int] | None = None
        self.total = 0

    def describe(self) -> Iterable[Metric]:
        return [_slots_family()]

    def collect(self) -> Iterable[Metric]:
        if self.used is None:
            return []
        family = _slots_family()
        used = self.used()
        family.add_metric(["used"], used)
        family.add_metric(["free"], max(0, self.total - used))
        return [family]


def _slots_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "keel_worker_slots", "The worker's slots for attempts, used and free", labels=["state"]
    )
