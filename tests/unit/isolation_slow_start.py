"""Tasks in a module that takes ``IMPORT_SECONDS`` to import, longer than the timeouts the
``isolation="process"`` tests give them: start-up (Python, keel, this module) must not
count against an attempt's timeout.

Imported only by the child processes those tests start, never by the test process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: how long importing this module takes (a heavy library, a loaded machine)
IMPORT_SECONDS = 2.5

time.sleep(IMPORT_SECONDS)


def quick() -> str:
    return "started late, finished on time"


def overrun(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)  # far past any timeout the tests give: only a kill ends it
