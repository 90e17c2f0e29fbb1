"""Screenshots of the dashboard for the README: the run page, the runs list, the
approvals inbox and the overview, each in the light and the dark theme.

    python docs/screenshots.py            # writes docs/screenshots/*.png
    python docs/screenshots.py --out DIR  # somewhere else

Needs Playwright and a Chromium (``/usr/bin/chromium``, or ``KEEL_TEST_CHROMIUM``), as
the browser tests do (tests/browser/conftest.py). It makes a day of plausible work in a
temporary SQLite database with the examples deployed: finished runs of ``claim``,
``trip`` (the trips to Reykjavik fail at ``book_car`` and are undone) and
``document_intake``, spread over the last 24 hours so the overview's chart has a shape.
Those are executed here, by workers whose run clock is set back: a run's times are the
ones its events record, so the run happened then as far as every page can tell. Then it
starts ``keel serve --with-worker`` over the database, starts what must be current
through the API (invoices waiting for their review, one of those runs paused, a claim
just settled), signs in as an admin through ``/ui/sign-in`` and shoots each page,
1280 px wide, once its graph, chart or counts are drawn, its live badge says ``live``
and the flash of the stream's first patches has faded.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: this checkout's keel, not an installed one
    sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
from playwright.sync_api import Browser, Page, StorageState, sync_playwright  # noqa: E402

from keel.authoring.loading import load_workflow  # noqa: E402
from keel.runtime.clock import with_pacing  # noqa: E402
from keel.runtime.operations.control import start_run  # noqa: E402
from keel.runtime.runs import RunCache  # noqa: E402
from keel.runtime.worker.loop import Worker, WorkerOptions  # noqa: E402
from keel.server.identities import create_token  # noqa: E402
from keel.store.sqlite import SQLiteStore  # noqa: E402

CHROMIUM = Path(os.environ.get("KEEL_TEST_CHROMIUM", "/usr/bin/chromium"))
#: workflow name -> its file
SOURCES = {"claim": ROOT / "examples/claims.py", "trip": ROOT / "examples/trip.py",
           "document_intake": ROOT / "examples/document_intake.py"}  # fmt: skip
WIDTH, HEIGHT = 1280, 800
#: the tallest a full-page shot is kept (the rest is cut off)
TALLEST = 1400
HOUR = 3600.0
#: the admin the pages are shot as; in the intake team, so the inbox has items for them
ADMIN = "ann"
#: who started the runs of the last day
PEOPLE = ("ann", "bo", "carmen", "dev")

CLAIMANTS = (
    ("Dana Whitfield", "hail damage to the roof and a skylight"),
    ("Luis Ortega", "water leak from the upstairs bathroom"),
    ("Mei Tanaka", "rear-ended at a traffic light"),
    ("Samir Haddad", "storm brought down the garden fence"),
    ("Olga Petrova", "kitchen fire, smoke damage to two rooms"),
    ("Tom Becker", "bicycle stolen from the garage"),
    ("Priya Nair", "burst pipe flooded the basement"),
    ("Kwame Mensah", "windscreen cracked by a stone on the motorway"),
    ("Ines Duarte", "laptop dropped and screen broken"),
    ("Jonas Berg", "tree fell on the car port"),
)
#: the claim whose run page is shown: likely fraud, so escalated (every node ran)
SHOWN_CLAIM = 4
#: a claim on a policy the lookup does not know: its run fails
UNKNOWN_POLICY_CLAIM = 7
TRAVELLERS = (("Ada", "Reykjavik"), ("Grace", "Lisbon"), ("Alan", "Reykjavik"),
              ("Edsger", "Kyoto"), ("Barbara", "Oslo"))  # fmt: skip


def claim_input(index: int, rng: random.Random) -> dict[str, Any]:
    """A claim, most of them within their policy."""
    claimant, incident = CLAIMANTS[index % len(CLAIMANTS)]
    amount = rng.choice((850.0, 2_300.0, 4_120.5, 7_900.0, 12_400.0, 18_250.0))
    policy = rng.choice(("P-100", "P-200"))
    if index == SHOWN_CLAIM:
        amount, incident = 38_000.0, "total loss of the boat, no witnesses"
    if index == UNKNOWN_POLICY_CLAIM:
        policy = "P-999"
    document = f"Claimant: {claimant}\nAmount: {amount:,.2f}\nIncident: {incident}"
    return {"claim": {"id": f"C-{1040 + index}", "policy": policy, "document": document}}


def document_input(number: int, *, missing: tuple[str, ...] = ()) -> dict[str, Any]:
    """An invoice; with a field ``missing``, its run waits for the intake team's review."""
    fields = {"number": f"{number:04d}", "vendor": ("Acme", "Globex", "Initech")[number % 3],
              "total": f"{100 + number * 7}.00"}  # fmt: skip
    text = "".join(f"{key.title()}: {value}\n" for key, value in fields.items()
                   if key not in missing)  # fmt: skip
    return {"document": {"uri": f"s3://intake/invoice-{number:04d}.txt", "text": text,
                         "kind": "invoice"}}  # fmt: skip


class BackdatedClock:
    """The run clock set back by ``behind`` seconds (changed between runs): what a worker
    records with it happened then. Pacing stays this host's (``with_pacing``)."""

    def __init__(self) -> None:
        self.behind = 0.0

    def now(self) -> float:
        return time.time() - self.behind


def past_work(rng: random.Random) -> list[tuple[float, str, dict[str, Any]]]:
    """(hours ago, workflow, input) of the runs of the last day, oldest first."""
    work: list[tuple[str, dict[str, Any]]] = [("claim", claim_input(i, rng)) for i in range(10)]
    work += [("trip", {"traveller": who, "city": city}) for who, city in TRAVELLERS]
    work += [("document_intake", document_input(n)) for n in range(30, 38)]
    rng.shuffle(work)
    # busier by day than by night: most runs in the last 10 hours
    ages = sorted(((rng.uniform(0.3, 10.0) if rng.random() < 0.6 else rng.uniform(10.0, 23.5))
                   for _ in work), reverse=True)  # fmt: skip
    return [(age, name, run_input) for age, (name, run_input) in zip(ages, work, strict=True)]


def backfill(db_path: Path, rng: random.Random) -> dict[int, str]:
    """Execute the day's runs here, each at its time in the past; the claims' run ids
    by their index."""
    loaded = {name: load_workflow(str(path)) for name, path in SOURCES.items()}
    claims: dict[int, str] = {}
    store = SQLiteStore(str(db_path))
    backdated = BackdatedClock()
    clock = with_pacing(backdated)
    cache = RunCache(store)
    try:
        for hours_ago, name, run_input in past_work(rng):
            backdated.behind = hours_ago * HOUR
            code = loaded[name]
            record = start_run(store, code.spec, run_input, clock=clock, cache=cache,
                               origin=str(SOURCES[name].relative_to(ROOT)),
                               registry=code.registry, started_by=rng.choice(PEOPLE))  # fmt: skip
            # a worker of its own, which looks at the queue at once (one that has found
            # it empty looks again only after a pause)
            worker = Worker(store, WorkerOptions(concurrency=4), clock=clock, cache=cache)
            try:
                worker.run_until_finished([record.id])
            finally:
                worker.close()
            if name == "claim":
                claims[int(run_input["claim"]["id"].removeprefix("C-")) - 1040] = record.id
    finally:
        store.close()
    return claims


def keel(db_url: str, *args: str) -> None:
    """``keel ARGS`` on the database (its error ends this script)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": db_url}
    done = subprocess.run([sys.executable, "-m", "keel", *args], env=env, capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"keel {' '.join(args)} failed:\n{done.stderr}")


def until(what: str, check: Callable[[], bool], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise SystemExit(f"not within {deadline:.0f} s: {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(db_url: str, folder: Path) -> Iterator[str]:
    """``keel serve --with-worker`` on the database; its base URL. Stopped at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": db_url}
    log = folder / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", *map(str, SOURCES.values()),
             "--with-worker", "--port", str(port)],
            env=env, cwd=folder, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ready() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"keel serve exited {process.returncode}:\n{log.read_text()}")
        try:
            return httpx2.get(f"{base}/ready", trust_env=False, timeout=2.0).status_code == 200
        except httpx2.TransportError:
            return False

    try:
        until("keel serve answers /ready", ready)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Api:
    """The JSON API, as the admin."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx2.Client(base_url=base, trust_env=False, timeout=10.0,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.request(method, path, json=body)
        if answer.status_code >= 300:
            raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def start(self, workflow: str, run_input: Any) -> str:
        return str(self.call("POST", "/runs", {"workflow": workflow, "input": run_input})["id"])

    def has_status(self, run_id: str, status: str) -> None:
        until(f"run {run_id} is {status}",
              lambda: self.call("GET", f"/runs/{run_id}")["status"] == status)  # fmt: skip

    def awaits_approval(self, run_id: str) -> None:
        path = f"/approvals?run_id={run_id}"
        until(f"run {run_id} waits for an approval",
              lambda: bool(self.call("GET", path)["approvals"]))  # fmt: skip


def current_work(api: Api) -> None:
    """What happens now: invoices waiting for their review, one of those runs paused,
    and a claim settled a moment ago."""
    gaps = {41: ("total",), 42: ("number", "total"), 43: ("total",)}
    waiting = [api.start("document_intake", document_input(n, missing=gaps[n])) for n in gaps]
    for run_id in waiting:
        api.awaits_approval(run_id)
    api.call("POST", f"/runs/{waiting[-1]}/pause",
             {"reason": "the vendor asked us to hold invoice 0043"})  # fmt: skip
    api.has_status(waiting[-1], "paused")
    api.has_status(api.start("claim", claim_input(10, random.Random(10))), "succeeded")


def sign_in(browser: Browser, base: str, token: str) -> StorageState:
    """Sign in through the page, as a person does; the session cookie, to reuse."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.goto(f"{base}/ui/sign-in?next=/ui/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")
    state = context.storage_state()
    context.close()
    return state


#: whether no finite animation runs (a part the live stream patched flashes a moment)
STILL = """() => document.getAnimations().every((a) => a.playState !== "running"
  || a.effect.getComputedTiming().iterations === Infinity)"""


def settle(page: Page) -> None:
    """Let the live stream's first patches arrive and their flash fade."""
    page.wait_for_selector("#live[data-state=live]")
    page.wait_for_timeout(1500)  # what a stream sends as it connects comes at once
    page.wait_for_function(STILL)
    page.evaluate("document.fonts.ready")


def shoot(page: Page, path: Path) -> None:
    """The page at full height, cut at ``TALLEST`` pixels."""
    height = min(TALLEST, max(HEIGHT, page.evaluate("document.documentElement.scrollHeight")))
    page.screenshot(path=str(path), type="png", full_page=True,
                    clip={"x": 0, "y": 0, "width": WIDTH, "height": height})  # fmt: skip
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"{shown} ({path.stat().st_size // 1024} KiB)")


def pages(shown_run: str) -> dict[str, tuple[str, str]]:
    """name -> (path, what is there once the page is drawn)."""
    return {
        "run-page": (f"/ui/runs/{shown_run}", "#run-graph[data-drawn]"),
        "runs": ("/ui/runs", "#run-counts [data-status=all]"),
        "inbox": ("/ui/approvals", "#approvals-list .approval"),
        "overview": ("/ui/", "#ov-chart .uplot"),
    }


def screenshots(base: str, token: str, shown_run: str, out: Path) -> None:
    """Each page in each theme: the theme the page stores (``keel-theme``, read before
    the page is drawn) and the system's, both set."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        state = sign_in(browser, base, token)
        for theme in ("light", "dark"):
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                          device_scale_factor=1, color_scheme=theme,
                                          storage_state=state)  # fmt: skip
            context.add_init_script(f"localStorage.setItem('keel-theme', '{theme}')")
            page = context.new_page()
            for name, (path, drawn) in pages(shown_run).items():
                page.goto(f"{base}{path}")
                page.wait_for_selector(drawn)
                settle(page)
                shoot(page, out / f"{name}-{theme}.png")
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the dashboard.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots",
                        help="where the PNGs go (default: docs/screenshots)")  # fmt: skip
    options = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no {CHROMIUM}: apt-get install -y chromium, or set KEEL_TEST_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="keel-shots-") as scratch:
        folder = Path(scratch)
        db_path = folder / "keel.db"
        db_url = f"sqlite:///{db_path}"
        keel(db_url, "deploy", *map(str, SOURCES.values()))
        store = SQLiteStore(str(db_path))
        try:
            token, _ = create_token(store, ADMIN, "admin", groups=("intake-team",))
        finally:
            store.close()
        began = time.monotonic()
        claims = backfill(db_path, random.Random(21))
        print(f"the last day's runs executed in {time.monotonic() - began:.1f} s")
        with served(db_url, folder) as base:
            current_work(Api(base, token))
            screenshots(base, token, claims[SHOWN_CLAIM], options.out.resolve())


if __name__ == "__main__":
    main()
