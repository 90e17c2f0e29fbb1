"""Events from a Redis stream: a consumer group reads it, each entry is emitted
(``keel.runtime.triggers.events``), and acknowledged (XACK) only once its runs are
recorded, so a consumer killed at any point loses nothing: what it read and did not
acknowledge stays pending in the group, and after ``claim_after`` seconds idle another
consumer (or itself, restarted) claims it (XAUTOCLAIM) and emits it again. Emitting
twice is harmless: the message id is the firing's key, so each workflow's run starts once.

An entry is ``event`` (the event's name), ``data`` (JSON, default null) and optionally
``id`` (the message id; default: the entry's stream id, which a publisher retrying its
XADD does not keep, so publishers that may retry should give ``id``). An entry that can
never start a run (no name, data that is not JSON, data a workflow refuses) goes to the
dead-letter stream ``STREAM:dead`` with the reason and is acknowledged; any other failure
(the store or server unreachable) leaves it pending, to be retried.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import InputError

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("keel.triggers")

#: what a source calls for each entry: (name, data, message id); raises ``InputError``
#: for data no run can take (``keel.Client.emit`` or ``events.emit`` over a store)
Emit = Callable[[str, Any, str], object]


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class RedisSource:
    redis: Redis  # with decode_responses=True
    stream: str
    emit: Emit
    group: str = "keel"
    consumer: str = field(default_factory=_consumer_name)
    #: seconds an entry stays pending with a consumer before another may claim it: longer
    #: than emitting one batch takes, or a slow consumer's entries are emitted twice
    #: (harmlessly, but for nothing)
    claim_after: float = 60.0
    batch: int = 100

    @property
    def dead_letters(self) -> str:
        return f"{self.stream}:dead"

    def prepare(self) -> None:
        """Create the consumer group (and the stream) if they are not there: a new group
        reads the stream from its start."""
        from redis.exceptions import ResponseError

        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block: float = 1.0) -> int:
        """Emit and acknowledge one batch: entries idle too long with some consumer
        first, else new ones (waiting up to ``block`` seconds for them). How many."""
        answer: Any = self.redis.xautoclaim(
            self.stream, self.group, self.consumer, int(self.claim_after * 1000),
            start_id="0-0", count=self.batch,
        )  # fmt: skip
        claimed = _entries(answer[1])
        if claimed:
            return self._handle(claimed)
        read: Any = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                     count=self.batch, block=max(1, int(block * 1000)))  # fmt: skip
        streams = read.items() if isinstance(read, dict) else read or []  # RESP3 or RESP2
        return sum(self._handle(_entries(entries)) for _, entries in streams)

    def run(self, stop: threading.Event, block: float = 1.0) -> None:
        """Consume until ``stop`` is set; a failure (Redis, the store) is logged and the
        loop goes on after a pause (what was not acknowledged is retried)."""
        self.prepare()
        while not stop.is_set():
            try:
                self.step(block)
            except Exception:
                log.exception("consuming %s failed; retrying in a second", self.stream)
                stop.wait(1.0)

    def _handle(self, entries: list[tuple[str, dict[str, str] | None]]) -> int:
        done: list[str] = []
        try:
            for entry_id, fields in entries:
                if fields is not None:  # None: deleted from the stream since it was read
                    self._one(entry_id, fields)
                done.append(entry_id)
        finally:  # what was recorded is acknowledged even if a later entry fails
            if done:
                self.redis.xack(self.stream, self.group, *done)
        return len(done)

    def _one(self, entry_id: str, fields: dict[str, str]) -> None:
        name = fields.get("event")
        if not name:
            return self._dead(entry_id, fields, "no 'event' field names the event")
        try:
            data = json.loads(fields.get("data", "null"))
        except ValueError as exc:
            return self._dead(entry_id, fields, f"'data' is not JSON: {exc}")
        try:
            self.emit(name, data, fields.get("id") or entry_id)
        except InputError as exc:
            return self._dead(entry_id, fields, str(exc))
        return None

    def _dead(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        log.warning("stream %s entry %s goes to %s: %s", self.stream, entry_id,
                    self.dead_letters, reason)  # fmt: skip
        letter: dict[Any, Any] = {**fields, "entry": entry_id, "error": reason}
        self.redis.xadd(self.dead_letters, letter)


def _entries(raw: Any) -> list[tuple[str, dict[str, str] | None]]:
    """Stream entries as (id, fields), whichever protocol version the reply came in."""
    if isinstance(raw, dict) and "messages" in raw:
        raw = raw["messages"]
    return [(str(entry_id), None if fields is None else dict(fields)) for entry_id, fields in raw]
