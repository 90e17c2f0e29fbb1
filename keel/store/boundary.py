"""The boundary of a store: where a database driver's errors become keel's.

A backend decorated with ``store_boundary`` runs every public method through its own
``_at_boundary(call)``, which maps the driver's errors to the ``StoreError`` tree
(``StoreUnavailableError``, ``StorageFaultError``) and may retry what can be retried,
such as a call whose connection was lost. Doing it here, once per call, keeps the
mapping out of every method and out of every command that uses a store: callers see a
clear ``StoreError`` or a result, never a raw ``sqlite3``/``psycopg`` error.

A public method called from inside another (on the same thread and store) is not
wrapped again: only the outermost call maps and retries.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Guarded(Protocol):
    def _at_boundary(self, call: Callable[[], T]) -> T:
        """Run ``call`` (one public method), mapping and retrying its errors."""


G = TypeVar("G", bound=type[Guarded])

_inside = threading.local()


def store_boundary(cls: G) -> G:
    """Route every public method of ``cls`` through ``_at_boundary``."""
    for name, attribute in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(attribute):
            setattr(cls, name, _through_boundary(attribute))
    return cls


def _through_boundary(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Guarded, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_inside, "store", None)
        if outer is self:
            return method(self, *args, **kwargs)
        _inside.store = self
        try:
            return self._at_boundary(lambda: method(self, *args, **kwargs))
        finally:
            _inside.store = outer

    return call
