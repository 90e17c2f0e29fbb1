"""Workflows whose tasks log through ``ctx.logger``, for the task-log tests: in this
process (a worker on a SQLite file) and in ``keel worker`` processes (this file is the
worker's module)."""

from __future__ import annotations

import logging
import threading

import keel

#: ``held`` waits for this (with a deadline), so a test sees its first line written
#: while the attempt still runs
release = threading.Event()
AGAIN_AT_ONCE = keel.RetryPolicy(max_attempts=2, initial_backoff=0, jitter=0)


@keel.task(retry=AGAIN_AT_ONCE)
def chatty(word: str) -> str:
    """Three lines per attempt; the first attempt fails."""
    ctx = keel.context()
    for index in range(1, 4):
        ctx.logger.info("%s %d of attempt %d", word, index, ctx.attempt)
    if ctx.attempt == 1:
        raise ValueError("the first attempt fails")
    return word


@keel.task
def flood(lines: int, size: int = 10) -> int:
    log = keel.context().logger
    for index in range(lines):
        log.info("line %d %s", index, "x" * size)
    return lines


@keel.task
def quiet(n: int) -> int:
    return n + 1


@keel.task(isolation="process")
def boxed(word: str) -> str:
    log = keel.context().logger
    log.warning("from the child: %s", word)
    try:
        raise KeyError(word)
    except KeyError:
        log.exception("caught it")
    return word


@keel.task(isolation="process")
def boxed_flood(lines: int) -> int:
    log = keel.context().logger
    for index in range(lines):
        log.info("line %d", index)
    return lines


@keel.task
def step(n: int) -> int:
    keel.context().logger.info("step %d", n)
    return n + 1


@keel.task
async def awaited(word: str) -> str:
    keel.context().logger.info("awaited %s", word)
    return word


@keel.task
def item(value: int) -> int:
    keel.context().logger.info("item %d", value)
    return value


@keel.task
def held() -> str:
    log = keel.context().logger
    log.info("started")
    if not release.wait(timeout=60):
        raise TimeoutError("the test never released the task")
    log.info("released")
    return "done"


@keel.workflow
def retried(word: str = "hello") -> str:
    return chatty(word)


@keel.workflow
def flooded(lines: int = 5000, size: int = 10) -> int:
    return flood(lines, size)


@keel.workflow
def quiet_chain(n: int = 0) -> int:
    return quiet(quiet(quiet(n)))


@keel.workflow
def isolated(word: str = "boxed") -> str:
    return boxed(word)


@keel.workflow
def isolated_flood(lines: int = 1500) -> int:
    return boxed_flood(lines)


@keel.workflow
def logged_chain(n: int = 0) -> int:
    for _ in range(8):
        n = step(n)  # type: ignore[assignment]
    return n


@keel.workflow
def asynchronous(word: str = "async") -> str:
    return awaited(word)


@keel.workflow
def mapped(values: list[int]) -> list[int]:
    return keel.map(item, values)  # type: ignore[no-any-return]


@keel.workflow
def holding() -> str:
    return held()


@keel.task(retry=AGAIN_AT_ONCE)
def telling(word: str) -> str:
    """Reads a secret and lets it out every way a task can: its own logger, a library's
    logger, an exception (first attempt) and its result."""
    token = keel.secret("API_TOKEN")
    keel.context().logger.warning("calling with %s", token)
    logging.getLogger("somelib.http").warning("header Authorization: Bearer %s", token)
    if keel.context().attempt == 1:
        raise ValueError(f"the server refused {token}")
    return f"{word} {token}"


@keel.workflow
def secretive(word: str = "sent") -> str:
    return telling(word)
