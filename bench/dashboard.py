"""The dashboard's budgets (issue 21): the runs list as fast over 100,000 runs as over
100, and a committed change on an open page within a second.

    python -m bench.dashboard [--runs 100000] [--reps 200] [--changes 20] [--no-browser]

**Runs list at scale.** Two SQLite stores are made (``bench.run_store``, each in a
process of its own): 100 runs, and ``--runs`` runs of the same mix. A real ``keel
serve`` process serves each (no worker, ``--rate-limit 0``), a viewer token made with
the ``keel`` command signs in through ``/ui/sign-in`` as a browser does (the form's
CSRF token and cookie, then the session cookie), and one keep-alive HTTP client per
server asks for each page ``--reps`` times: the list unfiltered, by status, workflow,
error type (a common one and a rare one) and late, its second page (the "older" link's
cursor), then the counts (the fragment the list loads after itself), and the JSON
API's ``GET /runs`` as a reference. After a warm-up (every request 5 times) the
requests are interleaved: each repetition takes them in a shuffled order, the two
servers in turns, so a change in the machine's load falls on both alike. Each row has
the median and 95th percentile of the latency the client saw (loopback), the rows of
runs each answer held, and the ratio big / small; the list's target is a median ratio
of 2 at most, like for like: where the small store has fewer runs to draw than the big
one (a filter that picks 2 of its 100), the big store's page is set against the small
store's unfiltered page, which draws as many (``table``). The counts cost in proportion
to the runs counted (``Store.count_runs`` says so): reported apart, without a target.

**Live latency** (``bench.live_latency``): Chromium, signed in, watches ``/ui/runs`` while
``--changes`` waiting runs are cancelled one by one from this process (the time taken
just before each commit); the page records when the run's row shows it. Target: under
1,000 ms. Skipped, saying why, without Playwright or ``/usr/bin/chromium``.

Targets are judged at the issue's size (100,000 runs or more) only. Results with every
latency go to ``bench/results/dashboard-*.json`` (or ``KEEL_BENCH_RESULTS``).
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import _free_port, _keel, _serve, _wait_until_up
from bench.distributed import stop_processes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("KEEL_BENCH_RESULTS", ROOT / "bench" / "results"))
SMALL = 100
#: the issue's size: targets are judged from it up
JUDGED_FROM = 100_000
WARM_UP = 5
#: a hang guard for one request, not a measurement
DEADLINE = 60.0
#: (name, path) of the list's pages; "second page" is found on the first
LIST = (("all runs", "/ui/runs"), ("status=failed", "/ui/runs?status=failed"),
        ("workflow=refunds", "/ui/runs?workflow=refunds"),
        ("error_type=TimeoutError", "/ui/runs?error_type=TimeoutError"),
        ("error_type=PermissionError (rare)", "/ui/runs?error_type=PermissionError"),
        ("late=true", "/ui/runs?late=true"), ("second page", ""))  # fmt: skip
COUNTS = (("counts", "/ui/runs/counts"),
          ("counts, workflow=refunds", "/ui/runs/counts?workflow=refunds"),
          ("counts, error_type=TimeoutError", "/ui/runs/counts?error_type=TimeoutError"),
          ("counts, late=true", "/ui/runs/counts?late=true"))  # fmt: skip
API = (("GET /runs", "/runs"), ("GET /runs?status=failed", "/runs?status=failed"),
       ("GET /runs, second page", ""))  # fmt: skip
_OLDER = re.compile(r'<a href="([^"]+)" rel="next">')
_ROW = re.compile(r'<tr id="run-')


@dataclass
class Server:
    """A ``keel serve`` over one store, and a client signed in to it."""

    runs: int
    url: str
    process: subprocess.Popen[bytes]
    client: Any  # httpx2.Client with the session cookie and the bearer token
    paths: dict[str, str] = field(default_factory=dict)


def make_store(folder: Path, runs: int, waiting: int = 0) -> tuple[str, dict[str, Any]]:
    """A store of ``runs`` runs made in a process of its own; its URL and what it said."""
    path = folder / f"runs-{runs}.db"
    out = subprocess.run(
        [sys.executable, "-m", "bench.run_store", str(runs), str(path), str(waiting)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"making a store of {runs} runs failed:\n{out.stderr}")
    made: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return f"sqlite:///{path}", made


def signed_in(base: str, token: str) -> Any:
    """An HTTP client signed in to the dashboard as a browser is (the form's CSRF token
    and cookie, then the session cookie), and carrying the token for the JSON API."""
    import httpx2

    client = httpx2.Client(base_url=base, timeout=DEADLINE, trust_env=False,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    form = client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if form.status_code != 200 or csrf is None:
        raise SystemExit(f"GET /ui/sign-in answered {form.status_code}: {form.text[:300]}")
    answer = client.post("/ui/sign-in", data={"token": token, "csrf": csrf.group(1),
                                              "next": "/ui/runs"})  # fmt: skip
    if answer.status_code != 303 or "keel_session" not in client.cookies:
        raise SystemExit(f"signing in answered {answer.status_code}: {answer.text[:300]}")
    return client


def start_server(url: str, runs: int, folder: Path) -> Server:
    log = folder / f"serve-{runs}.log"
    token = _keel("token", "create", "bench-viewer", "--role", "viewer", "--db", url,
                  log=log).strip()  # fmt: skip
    port = _free_port()
    process = _serve(url, port, log)
    try:
        _wait_until_up(process, port, log)
        server = Server(runs, url, process, signed_in(f"http://127.0.0.1:{port}", token))
        server.paths = _paths(server)
    except BaseException:
        stop_processes([process])
        raise
    return server


def _paths(server: Server) -> dict[str, str]:
    """Every request's path on this server (the second pages' cursors are its own)."""
    paths = {name: path for name, path in (*LIST, *COUNTS, *API) if path}
    first = _get(server, "/ui/runs")
    older = _OLDER.search(first)
    if older is None:
        raise SystemExit(f"the runs list of {server.runs} runs has no older page")
    paths["second page"] = html.unescape(older.group(1))
    cursor = json.loads(_get(server, "/runs"))["next_cursor"]
    paths["GET /runs, second page"] = f"/runs?cursor={cursor}"
    return paths


def _get(server: Server, path: str) -> str:
    answer = server.client.get(path)
    if answer.status_code != 200:
        raise SystemExit(f"GET {path} ({server.runs} runs) answered {answer.status_code}: "
                         f"{answer.text[:500]}")  # fmt: skip
    text: str = answer.text
    return text


def rows_in(name: str, body: str) -> int:
    """How many runs an answer holds (rows of the list, the JSON API's runs, or the
    counts' total)."""
    if name.startswith("GET"):
        return len(json.loads(body)["runs"])
    if name.startswith("counts"):
        total = re.search(r'data-status="all" data-count="(\d+)"', body)
        return int(total.group(1)) if total else 0
    return len(_ROW.findall(body))


def measure(servers: list[Server], reps: int, seed: int = 21) -> dict[str, Any]:
    """Each request ``reps`` times per server, interleaved; latencies in ms."""
    names = list(servers[0].paths)
    found: dict[str, dict[int, list[float]]] = {n: {s.runs: [] for s in servers} for n in names}
    rows: dict[str, dict[int, int]] = {n: {} for n in names}
    for server in servers:
        for name in names:
            for _ in range(WARM_UP):
                body = _get(server, server.paths[name])
            rows[name][server.runs] = rows_in(name, body)
    rng = random.Random(seed)
    for rep in range(reps):
        order = names[:]
        rng.shuffle(order)
        for name in order:
            for server in servers if rep % 2 else servers[::-1]:
                began = time.perf_counter()
                _get(server, server.paths[name])
                found[name][server.runs].append((time.perf_counter() - began) * 1e3)
    return {"latency_ms": found, "rows": rows}


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def table(result: dict[str, Any], names: tuple[tuple[str, str], ...], small: int, big: int,
          target: float | None, judged: bool) -> tuple[str, list[bool]]:  # fmt: skip
    """Markdown rows of some requests, and whether each met the target (when judged).

    A page is judged against the same page of the small store when both draw as many
    rows; when the small store has fewer runs to draw (a filter that picks 2 of its 100
    runs), against its unfiltered page, which draws as many as the big store's: else
    the ratio would measure drawing 48 more rows, not the store's size."""
    lines = [f"| request | rows {small:,} / {big:,} | median ms {small:,} | median ms {big:,} "
             f"| p95 ms {small:,} | p95 ms {big:,} | ratio median | ratio p95 | target | met |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    full = result["rows"][LIST[0][0]][small]
    full_ms = statistics.median(result["latency_ms"][LIST[0][0]][small])
    verdicts = []
    for name, _ in names:
        times = result["latency_ms"][name]
        a, b = statistics.median(times[small]), statistics.median(times[big])
        pa, pb = p95(times[small]), p95(times[big])
        rows = result["rows"][name]
        met = ""
        if target is not None:
            fewer = rows[small] < rows[big] == full
            ratio = b / (full_ms if fewer else a)
            if judged:
                verdicts.append(ratio <= target)
                met = "yes" if verdicts[-1] else "**no**"
            if fewer:
                met += (f" ({ratio:.2f}x the {small:,}-run list's unfiltered page, "
                        f"{full} rows)")  # fmt: skip
        goal = f"≤ {target:g}x" if target is not None else ""
        lines.append(f"| {name} | {rows[small]:,} / {rows[big]:,} | {a:.1f} | {b:.1f} | {pa:.1f} "
                     f"| {pb:.1f} | {b / a:.2f}x | {pb / pa:.2f}x | {goal} "
                     f"| {met.strip()} |")  # fmt: skip
    return "\n".join(lines), verdicts


def runs_list(runs: int, reps: int, folder: Path) -> tuple[list[str], dict[str, Any], list[bool]]:
    """Part 1: the tables, the raw results, the verdicts."""
    raw: dict[str, Any] = {}
    servers: list[Server] = []
    try:
        for size in (SMALL, runs):
            url, made = make_store(folder, size)
            raw[f"store_{size}"] = made
            print(f"store of {size:,} runs made in {made['seconds']:.1f} s: "
                  f"{made['by_status']}", flush=True)  # fmt: skip
            servers.append(start_server(url, size, folder))
        result = measure(servers, reps)
    finally:
        for server in servers:
            server.client.close()
        stop_processes([server.process for server in servers])
    raw["runs_list"] = result
    judged = runs >= JUDGED_FROM
    tables, verdicts = [], []
    for title, names, target in (("The runs list (/ui/runs)", LIST, 2.0),
                                 ("Its counts (/ui/runs/counts), no target", COUNTS, None),
                                 ("The JSON API, for reference", API, None)):  # fmt: skip
        text, met = table(result, names, SMALL, runs, target, judged)
        tables.append(f"{title}, {reps} requests each, after {WARM_UP} to warm up:\n\n{text}")
        verdicts += met
    return tables, raw, verdicts


def _option(args: list[str], name: str, default: int) -> int:
    if name not in args:
        return default
    at = args.index(name)
    value = args[at + 1] if at + 1 < len(args) else ""
    del args[at : at + 2]
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"{name} {value!r}: a whole number, 1 or more (see --help)")
    return int(value)


def main() -> None:
    args = sys.argv[1:]
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return
    runs = _option(args, "--runs", JUDGED_FROM)
    reps = _option(args, "--reps", 200)
    changes = _option(args, "--changes", 20)
    browser = "--no-browser" not in args
    args = [arg for arg in args if arg != "--no-browser"]
    if args:
        sys.exit(f"unknown argument {args[0]!r}: python -m bench.dashboard [--runs N] "
                 "[--reps N] [--changes N] [--no-browser] (see --help)")  # fmt: skip
    if runs <= SMALL:
        sys.exit(f"--runs {runs}: more than the small store's {SMALL} runs")
    from bench.__main__ import machine

    with tempfile.TemporaryDirectory() as folder:
        tables, raw, verdicts = runs_list(runs, reps, Path(folder))
        for text in tables:
            print(f"\n{text}", flush=True)
        if browser:
            from bench.live_latency import live_table, measure_live

            live = measure_live(changes, Path(folder))
            raw["live"] = live
            text, met = live_table(live, judged=runs >= JUDGED_FROM)
            print(f"\n{text}")
            verdicts += met
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"dashboard-{time.strftime('%Y%m%d-%H%M%S')}.json"
    data = {"machine": machine(), "runs": runs, "reps": reps, "raw": raw}
    path.write_text(json.dumps(data, indent=1))
    print(f"\nresults: {path}")
    if not all(verdicts):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
