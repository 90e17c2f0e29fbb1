"""Workflows with an ``http`` step run as a user runs them: ``keel run`` in a real
subprocess (its SQLite database in the test's folder, the loopback allowed by the folder's
``keel.toml``) against a real HTTP server, and read back with ``keel history``, ``keel
show``, ``keel logs`` and ``keel audit export``.

The secret test is the done-when of secrets by reference: a server that echoes the token
it was sent (in its body, a header and an error) leaves no trace of the value anywhere
keel writes: every table of the database, every file keel made, every command's output."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zlib
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from tests.steps.peers import Peer, Received, Reply, json_reply

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-9d2f7a51c0e84b3b-live"


def keel(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("KEEL_DATABASE_URL", "KEEL_SECRET"))}  # fmt: skip
    environ.update({"PYTHONPATH": str(ROOT), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=folder, env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def workflow(folder: Path, name: str, text: str) -> Path:
    (folder / "keel.toml").write_text('[http]\nallow = ["127.0.0.1"]\n')
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def run_id(folder: Path) -> str:
    runs = json.loads(keel(folder, "runs", "--json").stdout)
    return str(runs[0]["id"])


def history(folder: Path, run: str) -> list[dict[str, Any]]:
    listed = keel(folder, "history", run, "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]


def test_a_workflow_records_the_http_step_output(peer: Peer, tmp_path: Path) -> None:
    peer.routes["/claims/c-7"] = lambda got: json_reply({"id": "c-7", "amount": 120.5})
    flow = workflow(tmp_path, "claims", f"""
name: claims
input_schema:
  type: object
  properties: {{id: {{type: string}}}}
  required: [id]
nodes:
  - id: fetch
    kind: http
    url: "{peer.url('/claims/')}${{{{ input.id }}}}"
    timeout: 10s
outputs:
  amount: nodes.fetch.output.body.amount
  status: nodes.fetch.output.status
""")  # fmt: skip
    ran = keel(tmp_path, "run", str(flow), "-i", "id=c-7", "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"amount": 120.5, "status": 200}
    events = history(tmp_path, run_id(tmp_path))
    done = next(event for event in events if event["kind"] == "node_succeeded")
    assert done["output"]["body"] == {"id": "c-7", "amount": 120.5}
    assert done["output"]["headers"]["content-type"] == "application/json"
    assert peer.received[0].headers["idempotency-key"].endswith(":fetch")


def test_a_503_with_retry_after_is_retried_no_sooner_than_asked(peer: Peer, tmp_path: Path) -> None:
    def busy_once(got: Received) -> Reply:
        if len(peer.received) == 1:
            return Reply(503, {"Retry-After": "2"}, b"busy, come back")
        return json_reply({"done": True})

    peer.routes["/job"] = busy_once
    flow = workflow(tmp_path, "busy", f"""
name: busy
nodes:
  - id: call
    kind: http
    method: POST
    url: "{peer.url('/job')}"
    body: {{run: true}}
    retry: {{max_attempts: 3, initial_backoff: 0.1s, jitter: 0}}
outputs:
  body: nodes.call.output.body
""")  # fmt: skip
    ran = keel(tmp_path, "run", str(flow), "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"body": {"done": True}}
    events = history(tmp_path, run_id(tmp_path))
    failed = next(event for event in events if event["kind"] == "node_failed")
    assert failed["error"]["retry_after"] == 2
    assert "HTTP 503" in failed["error"]["message"]
    assert "busy, come back" in failed["error"]["message"]
    again = next(e for e in events if e["kind"] == "node_scheduled" and e["attempt"] == 2)
    assert again["not_before"] - failed["at"] >= 2  # the server's wait, not the 0.1 s backoff
    keys = [got.headers["idempotency-key"] for got in peer.received]
    assert len(keys) == 2
    assert keys[0] == keys[1] == f"{run_id(tmp_path)}:call"  # a retry is the same request


def test_a_404_fails_the_run_at_once(peer: Peer, tmp_path: Path) -> None:
    flow = workflow(tmp_path, "missing", f"""
name: missing
nodes:
  - id: call
    kind: http
    url: "{peer.url('/nothing')}"
    retry: {{max_attempts: 5}}
""")  # fmt: skip
    ran = keel(tmp_path, "run", str(flow))
    assert ran.returncode == 1
    assert "HTTP 404" in ran.stdout + ran.stderr
    assert len(peer.received) == 1  # not retried


def test_a_refused_address_fails_the_run_naming_the_setting(tmp_path: Path) -> None:
    flow = workflow(
        tmp_path,
        "metadata",
        """
name: metadata
nodes:
  - id: call
    kind: http
    url: "http://169.254.169.254/latest/meta-data/"
    retry: {max_attempts: 5}
""",
    )
    ran = keel(tmp_path, "run", str(flow))
    assert ran.returncode == 1
    said = " ".join((ran.stdout + ran.stderr).split())
    assert "169.254.169.254" in said
    assert "[http]" in said
    assert "Traceback" not in ran.stderr
    events = history(tmp_path, run_id(tmp_path))
    assert sum(event["kind"] == "node_started" for event in events) == 1  # not retried


def _database_text(database: Path) -> str:
    """Every row of every table of the SQLite file, as text (blobs decoded, and
    decompressed when they are zlib)."""
    parts: list[str] = []
    with closing(sqlite3.connect(database)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert len(tables) > 5
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                        with suppress(zlib.error):
                            parts.append(zlib.decompress(value).decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_a_secret_the_server_echoes_is_recorded_nowhere(peer: Peer, tmp_path: Path) -> None:
    def echo(got: Received) -> Reply:
        token = got.headers.get("authorization", "")
        return json_reply({"you_sent": token}, **{"X-Echo": token})

    def refuse(got: Received) -> Reply:
        return Reply(400, {"Content-Type": "text/plain"},
                     f"bad token {got.headers.get('x-api-key')}".encode())  # fmt: skip

    peer.routes["/me"] = echo
    peer.routes["/refuse"] = refuse
    flow = workflow(tmp_path, "echo", f"""
name: echo
nodes:
  - id: me
    kind: http
    url: "{peer.url('/me')}"
    headers: {{Authorization: "Bearer ${{{{ secrets.API_TOKEN }}}}"}}
  - id: show
    kind: http
    method: POST
    url: "{peer.url('/me')}"
    headers: {{Authorization: "${{{{ nodes.me.output.body.you_sent }}}}"}}
    body: {{seen: "${{{{ nodes.me.output.headers['x-echo'] }}}}"}}
outputs:
  first: nodes.me.output
""")  # fmt: skip
    failing = workflow(tmp_path, "refused", f"""
name: refused
nodes:
  - id: call
    kind: http
    url: "{peer.url('/refuse')}"
    headers: {{X-Api-Key: "${{{{ secrets.API_TOKEN }}}}"}}
""")  # fmt: skip
    secret = {"KEEL_SECRET_API_TOKEN": TOKEN}
    outputs = [
        keel(tmp_path, "run", str(flow), **secret),
        keel(tmp_path, "run", str(failing), **secret),
    ]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[1].returncode == 1
    assert "[secret API_TOKEN]" in outputs[0].stdout  # the output, redacted
    received = [
        got.headers.get("authorization") or got.headers.get("x-api-key") for got in peer.received
    ]
    assert received[:1] == [f"Bearer {TOKEN}"]  # the server did get the value
    assert peer.received[-1].headers["x-api-key"] == TOKEN
    # the second step was sent what the first recorded: the redacted text, not the value
    assert peer.received[1].headers["authorization"] == "Bearer [secret API_TOKEN]"

    runs = [str(run["id"]) for run in json.loads(keel(tmp_path, "runs", "--json").stdout)]
    assert len(runs) == 2
    for run in runs:
        for args in (("history", run, "--json"), ("show", run), ("show", run, "--json"),
                     ("logs", run), ("why", run)):  # fmt: skip
            outputs.append(keel(tmp_path, *args))
    outputs.append(keel(tmp_path, "audit", "export"))
    outputs.append(keel(tmp_path, "audit", "export", "--format", "csv"))
    assert all(out.returncode in (0, 1) for out in outputs), [o.stderr for o in outputs]
    assert any("[secret API_TOKEN]" in out.stdout for out in outputs[2:])  # the redacted text
    for out in outputs:
        assert TOKEN not in out.stdout, out.args
        assert TOKEN not in out.stderr, out.args
    made = [path for path in (tmp_path / ".keel").rglob("*") if path.is_file()]
    assert made
    for path in made:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in _database_text(tmp_path / ".keel" / "keel.db")
