"""Workflows for the ``keel worker`` tests: one on the default queue, one on another,
and one whose step sleeps (long enough to be running when its worker is stopped)."""

from __future__ import annotations

import time

import keel


@keel.task
def greet(name: str) -> str:
    return f"hello {name}"


@keel.task(queue="special")
def special(name: str) -> str:
    return f"special {name}"


@keel.task
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@keel.workflow
def hello(name: str) -> str:
    return greet(name)


@keel.workflow
def elsewhere(name: str) -> str:
    return special(name)


@keel.workflow
def sleepy(seconds: float) -> str:
    return slow(seconds)


@keel.task
def refuse(name: str) -> str:
    raise ValueError(f"{name} refused")


@keel.workflow
def refused(name: str) -> str:
    return refuse(name)
