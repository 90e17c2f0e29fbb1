"""The server's metrics of what the store holds now, read from the store at scrape time.

One ``Store.gauges`` read (an aggregate query from existing indexes, and a grouped
scan of the LLM ledger) gives the depth and oldest ready attempt of every queue, the
runs waiting per kind of wait, the notifications not delivered yet, the live workers,
the late runs and the alert rules firing; and the LLM ledger summed, for the LLM
counters (``keel.server.llm_gauges``). The answer is kept for ``ttl`` seconds, so any
number of scrapers (several Prometheus servers) cost the store one read per ``ttl``;
concurrent scrapes share one read. A store that fails is said in the log and leaves
these metrics out of that scrape (the process's own counters are still served), and
``keel_store_up`` says 0.

The read is not free: counting the queues reads every free ready row, so it costs in
proportion to the ready queue (on SQLite, some 236 ms at 200,000 ready attempts). Hence
``TTL`` is 5 s, not less: shorter than any usual scrape interval (15 s and up), so one
scraper still gets a fresh read each time, while many scrapers at once cost at most one
read per 5 s. Every ``keel serve`` reads the same store, so N servers cost N reads per
scrape interval, and their gauges are the same numbers: aggregate them across instances
with ``max``, never ``sum`` (``deploy/grafana/keel.json`` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keel.errors import StoreError
from keel.runtime.clock import Clock
from keel.runtime.worker.presence import LIVE_WITHIN
from keel.server.llm_gauges import llm_families
from keel.store.gauges import StoreGauges
from keel.store.protocol import Store

log = logging.getLogger("keel.server")

#: seconds a read of the store serves scrapes (see above for why 5)
TTL = 5.0


class StoreCollector(Collector):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        ttl: float = TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: the store's (ages are judged by the clock leases are);
        ``monotonic``: when a read is stale."""
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.monotonic = monotonic
        self._lock = threading.Lock()
        #: (read at (monotonic), store time of the read, what it found); None: none yet
        self._last: tuple[float, float, StoreGauges | None] | None = None

    def describe(self) -> Iterable[Metric]:
        return _families(0.0, StoreGauges(), up=True)

    def collect(self) -> Iterable[Metric]:
        now, gauges = self._read()
        return _families(now, gauges or StoreGauges(), up=gauges is not None)

    def _read(self) -> tuple[float, StoreGauges | None]:
        with self._lock:  # one read for scrapes that come together
            last = self._last
            if last is not None and self.monotonic() - last[0] < self.ttl:
                return last[1], last[2]
            gauges: StoreGauges | None = None
            now = 0.0
            try:
                now = self.clock.now()
                gauges = self.store.gauges(now, now - LIVE_WITHIN)
            except StoreError as exc:
                log.warning("metrics: the store did not answer: %s", exc)
            self._last = (self.monotonic(), now, gauges)
            return now, gauges


def _families(now: float, gauges: StoreGauges, *, up: bool) -> list[Metric]:
    depth = GaugeMetricFamily(
        "keel_queue_depth", "Attempts ready on the queue (due, not held by a worker)",
        labels=["queue"],
    )  # fmt: skip
    age = GaugeMetricFamily(
        "keel_queue_oldest_age_seconds", "How long the oldest attempt ready on the queue "
        "has waited", labels=["queue"],
    )  # fmt: skip
    for queue, found in sorted(gauges.queues.items()):
        depth.add_metric([queue], found.depth)
        age.add_metric([queue], max(0.0, now - found.oldest_ready_at))
    waiting = GaugeMetricFamily(
        "keel_runs_waiting", "Runs with a node waiting, by what it waits for (approval, "
        "timer, signal, subworkflow)", labels=["kind"],
    )  # fmt: skip
    for kind, count in sorted(gauges.waiting_runs.items()):
        waiting.add_metric([kind], count)
    late = GaugeMetricFamily(
        "keel_late_runs", "Runs not ended past their workflow's expected_duration",
        labels=["workflow"],
    )  # fmt: skip
    for workflow, count in sorted(gauges.late_runs.items()):
        late.add_metric([workflow], count)
    firing = GaugeMetricFamily(
        "keel_alerts_firing", "Whether the alert rule fires (1) or not (0), as its last "
        "evaluation left it", labels=["alert"],
    )  # fmt: skip
    for alert, fires in sorted(gauges.alerts_firing.items()):
        firing.add_metric([alert], fires)
    return [
        depth,
        age,
        waiting,
        late,
        firing,
        GaugeMetricFamily("keel_notifications_pending", "Notifications not delivered yet "
                          "(due, or to be tried again)", value=gauges.notifications_pending),
        GaugeMetricFamily("keel_workers_live", f"Workers seen in the last {LIVE_WITHIN:.0f} s",
                          value=gauges.live_workers),
        GaugeMetricFamily("keel_store_up", "Whether the store answered the last read for "
                          "these metrics (1) or not (0)", value=1 if up else 0),
        *llm_families(gauges),
    ]  # fmt: skip
