"""A Python workflow the remote tests deploy over HTTP (traced here, its definition
posted): one task, so a worker with this module can run it."""

from __future__ import annotations

import keel


@keel.task
def shout(text: str) -> str:
    return text.upper()


@keel.workflow
def loud(text: str) -> str:
    return shout(text)
