"""The store written once for every SQL database, over a small ``Dialect`` interface.

``SQLStore`` is the whole ``Store`` protocol but for opening, migrating and closing a
database; ``keel.store.sqlite`` and ``keel.store.postgres`` each supply a ``Dialect``
(their named queries, transactions, locks and wake-ups) and those few methods. The
modules: ``dialect`` (the interface), ``reads``, ``run_lists`` (lists, counts and the
change feed of runs), ``gauges`` (counts for metrics), ``alerts``,
``transitions`` (applying a ``Transition``: the one place that does), ``pruning`` and
``sweeping`` (retention: pruned runs, then the blobs nothing names), ``free`` (what a
claim may take) and ``store`` (commits, claims, reclaims, the outbox, workers).
"""

from keel.store.sqlstore.dialect import Cursor, Dialect
from keel.store.sqlstore.store import SQLStore

__all__ = ["Cursor", "Dialect", "SQLStore"]
