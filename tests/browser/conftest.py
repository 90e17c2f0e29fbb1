"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright, and a
real ``keel serve --with-worker`` process to point it at.

Playwright's own browser download cannot run here, so the tests launch the system's
Chromium (``/usr/bin/chromium``, or ``KEEL_TEST_CHROMIUM``). As with PostgreSQL
(``tests/postgres.py``): in CI (``CI`` set) a missing Chromium or Playwright fails the
tests that need it; on a developer's machine they are skipped, saying why. Under xdist
each worker process launches its own browser (the fixture is per session, and each
worker is a session).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from keel.server.identities import create_token
from keel.store.sqlite import SQLiteStore
from tests.processes import ROOT, free_port, keel_on, stop_workers, until

try:
    from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError as exc:  # a test dependency: pip install -e '.[test]'
    _MISSING: str | None = f"playwright is not installed ({exc}): pip install -e '.[test]'"
else:
    _MISSING = None

CHROMIUM = Path(os.environ.get("KEEL_TEST_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: the workflows every served database holds
EXAMPLES = (ROOT / "examples" / "claims.py", ROOT / "examples" / "document_intake.py",
            ROOT / "examples" / "trip.py")  # fmt: skip
#: role -> (token name, groups): one token per role; the approver may approve the
#: document intake's review (assigned to ``intake-team``)
ROLES = {
    "admin": ("ui-admin", ""),
    "operator": ("ui-operator", ""),
    "approver": ("ui-approver", "intake-team"),
    "viewer": ("ui-viewer", ""),
}


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests need Chromium and Playwright in CI: {reason}")
    pytest.skip(f"no browser to test with: {reason}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for a test module. Not for the whole session: Playwright's
    sync API keeps an asyncio loop on the main thread while it runs, and a worker then
    (rightly) hands even proven-fast tasks to threads, which later tests of the same
    process would see (tests/unit/test_executor_inline.py)."""
    if _MISSING is not None:
        unavailable(_MISSING)
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no {CHROMIUM} (apt-get install -y chromium, or set KEEL_TEST_CHROMIUM)")
    # Chromium refuses to start its sandbox as root (containers, CI)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        except PlaywrightError as exc:
            unavailable(f"{CHROMIUM} did not start: {exc.message.splitlines()[0]}")
            raise
        yield browser
        browser.close()


#: run in every document before its own scripts (Playwright's init scripts are not
#: subject to the page's policy): each violation of the Content Security Policy (its
#: ``securitypolicyviolation`` event) is said on the console, once, where ``page``
#: collects it
CSP_WORD = "keel-csp-violation"
REPORT_CSP = f"""document.addEventListener("securitypolicyviolation", (e) => console.error(
  `{CSP_WORD}: ${{e.violatedDirective}} blocked ${{e.blockedURI || "inline"}}`
  + ` at ${{e.sourceFile}}:${{e.lineNumber}}`));"""


@pytest.fixture
def csp_violations() -> list[str]:
    """What the dashboard's Content Security Policy blocked in this test's pages (the
    console's words); ``page`` fails the test when any is left at its end."""
    return []


@pytest.fixture
def page(chromium: Browser, csp_violations: list[str]) -> Iterator[Page]:
    """A page in a context of its own (no cookies or storage from another test). Every
    browser test also checks that the pages ran under their CSP without a violation: a
    script or handler the policy blocks is a feature that silently does nothing."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.add_init_script(REPORT_CSP)
    context.on("console", lambda message: csp_violations.append(message.text)
               if message.text.startswith(CSP_WORD) else None)  # fmt: skip
    try:
        yield context.new_page()
    finally:
        context.close()
    assert csp_violations == [], "the Content Security Policy blocked something"


@dataclass
class Served:
    """A ``keel serve --with-worker`` process over a SQLite file, on a port of its own."""

    db_url: str
    port: int
    log: Path
    folder: Path
    tokens: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": self.db_url}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keel", "serve", *map(str, EXAMPLES), "--with-worker",
                 "--port", str(self.port)],
                env=env, cwd=self.folder, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            until("keel serve answers /ready", self._ready)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def stop(self) -> int:
        """SIGTERM (SIGKILL if it hangs); its exit code."""
        if self.process is None:
            return 0
        stop_workers([self.process])
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        """Stop the server (SIGTERM) and start it again on the same port and database,
        as an operator's restart does: what a browser holds open is cut and must recover."""
        code = self.stop()
        assert code == 0, f"keel serve exited {code}\n{self.log_tail()}"
        self.start()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"keel serve exited {self.process.returncode}")
        try:
            answer = httpx2.get(f"{self.base_url}/ready", trust_env=False, timeout=2.0)
        except httpx2.TransportError:
            return False
        return answer.status_code == 200


def prepare(db_url: str) -> dict[str, str]:
    """Deploy the examples (``keel deploy``, as an admin would) and make a token per
    role (in this process: four more CLI processes would cost seconds per test); the
    secrets by role."""
    deployed = keel_on(db_url, "deploy", *map(str, EXAMPLES))
    assert deployed.returncode == 0, deployed.stderr
    store = SQLiteStore(db_url.removeprefix("sqlite:///"))
    try:
        return {
            role: create_token(store, name, role,
                               groups=tuple(g for g in groups.split(",") if g))[0]
            for role, (name, groups) in ROLES.items()
        }  # fmt: skip
    finally:
        store.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``keel serve --with-worker`` as a process on a fresh SQLite database holding the
    claims and document intake examples and a token per role; stopped at the end (it
    must exit 0 on SIGTERM, as ``keel serve`` does)."""
    db_url = f"sqlite:///{tmp_path / 'keel.db'}"
    server = Served(db_url, free_port(), tmp_path / "serve.log", tmp_path, prepare(db_url))
    try:
        server.start()
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"keel serve exited {code}\n{server.log_tail()}"
