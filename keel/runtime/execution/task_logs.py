"""Keeping what a task logs through ``ctx.logger``, per attempt and bounded.

``ctx.logger`` logs to ``keel.task.<node>`` with the attempt in each record (``run_id``,
``node``, ``item``, ``attempt``: the adapter's ``extra``). One handler on ``keel.task``
(``Capture``, added once per process) hands each record to the ``TaskLogs`` of the
worker running that attempt, which keeps its lines in memory until they are written:
with the attempt's outcome, in the same transaction (``closing``, a ``KeepLogs`` write),
and every ``FLUSH_EVERY`` seconds while it runs (``flush``), so ``keel logs --follow``
shows a long attempt's progress. Whatever thread, event loop or child process the
attempt runs on: a child (``isolation="process"``) keeps its lines the same way
(``collect``) and sends them back with its answer (``Captured``), which the worker
adds to the attempt's (``absorb``) and logs again here (``replay``), so they reach the
worker's log as a thread's lines do.

Bounds, per attempt: ``MAX_LINES`` lines and ``MAX_BYTES`` of messages, a line cut at
``MAX_LINE_BYTES``; past them lines are counted, not kept, and one last line says how
many were dropped. Lines are cleaned so every store takes them (no NUL, valid UTF-8).

Invariants: an attempt costs nothing here unless its task logs (a worker's attempts
are looked up in its running map only when a record comes); a record of an attempt this
worker does not run (another worker's, one already recorded) is not kept; what is kept
is only what the task logged, nothing added but the dropped-lines marker.

``keel.task`` logs at ``INFO`` unless configured otherwise (``install``), so the lines a
task logs at ``INFO`` are kept whatever the root logger's level; a task's ``DEBUG``
lines are kept once ``keel.task``'s level lets them through.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from keel.store.task_logs import AttemptLines, LogLine

#: lines kept per attempt
MAX_LINES = 1000
#: bytes of messages (UTF-8) kept per attempt
MAX_BYTES = 256 * 1024
#: bytes (UTF-8) of one line at most; longer ones are cut
MAX_LINE_BYTES = 8 * 1024
#: seconds (pacing) between writes of the lines of attempts still running
FLUSH_EVERY = 1.0
#: the logger ``ctx.logger`` logs under (``keel.task.<node>``)
TASK_LOGGER = "keel.task"
#: the fields a record about an attempt carries (``ctx.logger``'s, and the worker's own
#: lines about an attempt: ``about``), which ``--log-format json`` writes
ATTEMPT_FIELDS = ("run_id", "node", "item", "attempt")

_CUT = " … (line cut at 8 KiB)"

#: an attempt: run id, node, item (None: a whole node), attempt number
Key = tuple[str, str, int | None, int]


class _Leased(Protocol):
    @property
    def attempt(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Captured:
    """What a child process's task logged, sent back with its answer: the lines kept
    (bounded as here) and how many more were dropped."""

    lines: tuple[LogLine, ...]
    dropped: int = 0


def clean(text: str, limit: int = MAX_LINE_BYTES) -> str:
    """``text`` as every store keeps it: no NUL (PostgreSQL refuses it in text), valid
    UTF-8 (a lone surrogate becomes '?'), at most ``limit`` bytes (then marked as cut)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii() and len(text) <= limit:
        return text
    data = text.encode("utf-8", "replace")
    if len(data) > limit:
        return data[: limit - len(_CUT.encode())].decode("utf-8", "ignore") + _CUT
    return data.decode("utf-8")


def line_of(record: logging.LogRecord) -> LogLine:
    """The line a record makes: its time, level and message, the exception's traceback
    (and the stack, when asked for) after the message."""
    try:
        message = record.getMessage()
    except Exception as exc:  # arguments that do not fit the format: keep what was logged
        message = f"{record.msg!r} {record.args!r} (cannot be formatted: {exc})"
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    if record.stack_info:
        message = f"{message}\n{record.stack_info}"
    return LogLine(record.created, record.levelname, clean(message))


def marker(dropped: int, at: float) -> LogLine:
    """The last line of an attempt that logged past the bounds."""
    return LogLine(
        at,
        "WARNING",
        f"… {dropped} more lines dropped (kept: at most "
        f"{MAX_LINES} lines and {MAX_BYTES // 1024} KiB per attempt)",
    )


class AttemptLog:
    """The lines of one attempt not written yet, and what its bounds have let in so far.
    Records come from any thread: every change holds ``_lock``."""

    __slots__ = ("_lock", "dropped", "kept", "last_at", "pending", "size")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: list[LogLine] = []
        #: lines and bytes let in since the attempt began (written or pending)
        self.kept = 0
        self.size = 0
        self.dropped = 0
        self.last_at = 0.0

    def add(self, line: LogLine) -> None:
        size = len(line.message.encode("utf-8"))
        with self._lock:
            self.last_at = max(self.last_at, line.at)
            if self.kept >= MAX_LINES or self.size + size > MAX_BYTES:
                self.dropped += 1
                return
            self.kept += 1
            self.size += size
            self.pending.append(line)

    def absorb(self, captured: Captured) -> None:
        for line in captured.lines:
            self.add(line)
        with self._lock:
            self.dropped += captured.dropped

    def peek(self) -> list[LogLine]:
        with self._lock:
            return list(self.pending)

    def written(self, count: int) -> None:
        """The first ``count`` pending lines are in the store now."""
        with self._lock:
            del self.pending[:count]


class TaskLogs:
    """The lines of the attempts one worker runs, until they are written.

    ``running`` is the worker's map of the attempts it runs, by (run, node, item), to
    their leases: a record is kept only for an attempt found there, so nothing is
    registered per attempt and an attempt that never logs costs nothing."""

    def __init__(
        self,
        running: Mapping[tuple[str, str, int | None], _Leased],
        write: Callable[[list[AttemptLines]], None],
    ) -> None:
        """``write``: writes lines of running attempts (``Store.keep_task_logs``)."""
        self.running = running
        self.write = write
        self._logs: dict[Key, AttemptLog] = {}
        self._flushed_at = float("-inf")
        install(self)

    def log_of(self, key: Key) -> AttemptLog | None:
        """The attempt's log, made at its first line (None: not an attempt this runs)."""
        found = self._logs.get(key)
        if found is not None:
            return found
        lease = self.running.get(key[:3])
        if lease is None or lease.attempt != key[3]:
            return None
        return self._logs.setdefault(key, AttemptLog())

    def absorb(self, key: Key, captured: Captured) -> None:
        """Lines a child process sent back for the attempt ``key``."""
        if captured.lines or captured.dropped:
            log = self.log_of(key)
            if log is not None:
                log.absorb(captured)

    def closing(self, key: Key, at: float) -> AttemptLines | None:
        """The attempt's lines still to write with its outcome (and the marker, if it
        dropped some); None when there are none. They stay until ``end`` (a refused
        transition is decided again, and needs them again)."""
        log = self._logs.get(key)
        if log is None:
            return None
        lines = log.peek()
        if log.dropped:
            lines.append(marker(log.dropped, max(at, log.last_at)))
        if not lines:
            return None
        return AttemptLines(key[0], key[1], key[2], key[3], lines)

    def end(self, key: Key) -> None:
        """The attempt's outcome was recorded (its lines with it) or discarded."""
        if self._logs:
            self._logs.pop(key, None)

    def flush(self, monotonic: Callable[[], float]) -> None:
        """Every ``FLUSH_EVERY`` seconds (pacing time, read from ``monotonic`` only when
        some task logged), write the lines of attempts still running, and forget those
        of attempts this worker no longer runs (given back, reclaimed)."""
        if not self._logs:
            return
        now = monotonic()
        if now - self._flushed_at < FLUSH_EVERY:
            return
        self._flushed_at = now
        batches: list[tuple[AttemptLog, AttemptLines]] = []
        for key, log in list(self._logs.items()):
            lease = self.running.get(key[:3])
            if lease is None or lease.attempt != key[3]:
                del self._logs[key]
                continue
            lines = log.peek()
            if lines:
                batches.append((log, AttemptLines(key[0], key[1], key[2], key[3], lines)))
        if batches:
            self.write([batch for _, batch in batches])
            for log, batch in batches:
                log.written(len(batch.lines))


def about(lease: object) -> dict[str, object]:
    """``extra`` for a line about the attempt a lease (or anything with its fields) is of."""
    return {name: getattr(lease, name, None) for name in ATTEMPT_FIELDS}


def key_of(record: logging.LogRecord) -> Key | None:
    """The attempt a record of ``ctx.logger`` is about (None: not a task's record)."""
    fields = record.__dict__
    run_id, node, attempt = fields.get("run_id"), fields.get("node"), fields.get("attempt")
    if not isinstance(run_id, str) or not isinstance(node, str) or not isinstance(attempt, int):
        return None
    item = fields.get("item")
    return run_id, node, item if isinstance(item, int) else None, attempt


#: set on a record ``replay`` logs: its line is kept already
_REPLAYED = "keel_replayed"


def replay(key: Key, captured: Captured) -> None:
    """Log in this process, for its handlers, the lines a child process kept for the
    attempt ``key`` (``Capture`` leaves them: they are kept from the answer)."""
    logger = logging.getLogger(f"{TASK_LOGGER}.{key[1]}")
    fields = {"run_id": key[0], "node": key[1], "attempt": key[3], _REPLAYED: True}
    if key[2] is not None:
        fields["item"] = key[2]
    for line in captured.lines:
        level = logging.getLevelName(line.level)
        level = level if isinstance(level, int) else logging.INFO
        if logger.isEnabledFor(level):
            record = logger.makeRecord(logger.name, level, "(task process)", 0, line.message,
                                       (), None, extra=fields)  # fmt: skip
            record.created, record.msecs = line.at, (line.at % 1) * 1000
            logger.handle(record)


class Capture(logging.Handler):
    """The handler on ``keel.task``: each record to the ``TaskLogs`` that runs its attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.owners: weakref.WeakSet[TaskLogs] = weakref.WeakSet()

    def emit(self, record: logging.LogRecord) -> None:
        key = key_of(record)
        if key is None or _REPLAYED in record.__dict__:
            return
        for owner in list(self.owners):
            log = owner.log_of(key)
            if log is not None:
                log.add(line_of(record))
                return


_capture: Capture | None = None
_install_lock = threading.Lock()


def install(owner: TaskLogs) -> None:
    """Add ``owner`` to the handler on ``keel.task`` (added now if it is not there), and
    let ``keel.task`` log at ``INFO`` unless its level was set."""
    global _capture
    with _install_lock:
        if _capture is None:
            _capture = Capture()
            logger = logging.getLogger(TASK_LOGGER)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
            logger.addHandler(_capture)
        _capture.owners.add(owner)


@dataclass(frozen=True, slots=True)
class _Running:
    """An attempt a child process runs (what ``TaskLogs`` reads of a lease)."""

    attempt: int


@contextmanager
def collect(key: Key) -> Iterator[Callable[[], Captured]]:
    """Keep the lines of attempt ``key`` logged in this process while the block runs (a
    child process's one attempt); the function given returns them, bounded."""
    logs = TaskLogs({key[:3]: _Running(key[3])}, lambda batches: None)

    def captured() -> Captured:
        log = logs._logs.get(key)
        if log is None:
            return Captured(())
        return Captured(tuple(log.peek()), log.dropped)

    try:
        yield captured
    finally:
        if _capture is not None:
            _capture.owners.discard(logs)
