"""Wake-ups from other processes: a thread that ``LISTEN``s on the store's channel."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from keel.store.wakeups import MaybeMissed, Wakeup, decode

log = logging.getLogger("keel.store.postgres")


class Listener:
    """A thread holding one connection that ``LISTEN``s on the store's channel and hands
    each payload to ``wake`` as a ``Wakeup``. After a lost connection it reconnects (at
    once, then every second, saying so once) and wakes with ``MaybeMissed`` (notifications
    sent meanwhile were missed: look at everything)."""

    def __init__(
        self, conninfo: str, settings: dict[str, Any], channel: str, wake: Callable[[Wakeup], None]
    ) -> None:
        self._conninfo = conninfo
        self._settings = {key: v for key, v in settings.items() if key != "options"}
        self._channel = channel
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        first = True
        failing = False  # since the last connection was lost: said so, retrying quietly
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._settings) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if not first:
                        self._wake(MaybeMissed())
                    first = failing = False
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._wake(decode(note.payload))
            except psycopg.Error as exc:
                if not failing:
                    log.warning("lost the connection listening for wake-ups (%s); reconnecting",
                                str(exc).strip().split("\n")[0])  # fmt: skip
                    failing = True
                    continue  # at once: a cut connection is usually back at once
                self._stopped.wait(1.0)
