"""A workflow with ``shell`` steps run as a user runs it: ``keel run`` in a folder whose
``keel.toml`` allows the program, then the recorded outputs read back with ``keel show
--json`` and ``keel history --json``; and a worker that exits while a step's program
runs takes the program's whole group with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.processes import process_gone
from tests.steps.shell_support import PY, eventually

ROOT = Path(__file__).resolve().parents[2]
#: seconds a command may take before the test fails (generous: machines are busy)
COMMAND_TIMEOUT = 120

FLOW = """\
name: totals
input_schema:
  type: object
  properties: {numbers: {type: array, items: {type: integer}}}
  required: [numbers]
nodes:
  - id: add
    kind: shell
    command: [@PY@, -c, @ADD@, "${{ input.numbers }}"]
    parse: json
    timeout: 60s
  - id: report
    kind: shell
    command: [@PY@, -c, @REPORT@, "total ${{ nodes.add.output.stdout.total }}"]
    env: {TOKEN: "${{ secrets.REPORT_TOKEN }}"}
    stdin: "${{ nodes.add.output.stdout }}"
    timeout: 60s
outputs:
  total: nodes.add.output.stdout.total
  report: nodes.report.output.stdout
"""
ADD = "import json, sys; print(json.dumps({'total': sum(int(a) for a in sys.argv[1:])}))"
REPORT = (
    "import os, sys; print(sys.argv[1], sys.stdin.read().strip(), os.environ['TOKEN'], "
    "sorted(k for k in os.environ if k.startswith('KEEL')))"
)
SECRET = "report-token-4711"


def keel(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=folder, env=env, capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip


def test_keel_run_runs_shell_steps_and_records_their_redacted_output(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text(f'[shell]\nallow = ["{PY}"]\n')
    flow = FLOW.replace("@PY@", json.dumps(PY)).replace("@ADD@", json.dumps(ADD))
    (tmp_path / "flow.yaml").write_text(flow.replace("@REPORT@", json.dumps(REPORT)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env["KEEL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'keel.db'}"
    env["KEEL_SECRET_REPORT_TOKEN"] = SECRET
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    ran = keel(tmp_path, "run", "flow.yaml", "-i", "numbers=[1, 2, 39]", env=env)
    assert ran.returncode == 0, ran.stderr
    report = 'total 42 {"total": 42} [secret REPORT_TOKEN] []\n'
    assert json.loads(ran.stdout) == {"total": 42, "report": report}

    runs = json.loads(keel(tmp_path, "runs", "--json", env=env).stdout)
    run_id = runs[0]["id"]
    shown = json.loads(keel(tmp_path, "show", run_id, "--json", env=env).stdout)
    nodes: dict[str, dict[str, Any]] = {node["id"]: node for node in shown["nodes"]}
    assert nodes["add"]["output"] == {
        "exit_code": 0, "stdout": {"total": 42}, "stderr": "",
        "truncated": {"stdout": False, "stderr": False},
    }  # fmt: skip
    assert nodes["report"]["output"]["stdout"] == report
    history = keel(tmp_path, "history", run_id, "--json", env=env)
    events = [json.loads(line) for line in history.stdout.splitlines() if line]
    done = {event["node"]: event["output"] for event in events if event["kind"] == "node_succeeded"}
    assert done["report"]["stdout"] == report
    # the secret's value is nowhere keel records: not in what it prints, not in the database
    assert SECRET not in history.stdout + json.dumps(shown)
    assert SECRET.encode() not in (tmp_path / "keel.db").read_bytes()
    # ``keel show`` says what each step did, as its spec says it, not its raw definition
    text = keel(tmp_path, "show", run_id, env={**env, "COLUMNS": "200"}).stdout
    assert f"shell {PY} -c" in text
    assert '"step"' not in text


ABANDONED = """\
import sys, threading, time
from pathlib import Path
from keel.runtime.execution.invoke import make_context
from keel.steps.shell import shell_step

pid_file = Path(sys.argv[1])
script = 'sleep 300 & echo $! > "$1"; wait'
step = {"kind": "shell", "id": "s", "command": ["sh", "-c", script, "sh", str(pid_file)]}
ctx = make_context("run", "wf", "s", 1, None)
threading.Thread(target=shell_step, args=(step, {}, ctx), daemon=True).start()
while not pid_file.exists() or not pid_file.read_text().strip():
    time.sleep(0.01)
print("started", flush=True)
# the worker's process exits while the step's thread still waits for the program
"""


def test_a_worker_that_exits_mid_step_kills_the_programs_group(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('[shell]\nallow = ["sh"]\n')
    pid_file = tmp_path / "sleep.pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", ABANDONED, str(pid_file)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.stdout == "started\n", proc.stderr
    sleeper = int(pid_file.read_text())
    try:
        eventually(lambda: process_gone(sleeper), f"the step's sleep {sleeper} is gone")
    finally:
        if not process_gone(sleeper):
            os.kill(sleeper, signal.SIGKILL)


def test_a_yaml_with_a_shell_step_validates_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    good = textwrap.dedent("""\
        name: ok
        nodes:
          - id: s
            kind: shell
            command: [git, status]
            env: {GIT_DIR: /srv/repo}
    """)
    bad = good.replace("GIT_DIR", "1BAD").replace("[git, status]", '["", status]')
    (tmp_path / "good.yaml").write_text(good)
    (tmp_path / "bad.yaml").write_text(bad)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert keel(tmp_path, "validate", "good.yaml", env=env).returncode == 0
    refused = keel(tmp_path, "validate", "bad.yaml", env=env)
    assert refused.returncode != 0
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "the program: it is empty" in said
    assert "Traceback" not in said


TIMED = """\
name: slow
nodes:
  - id: hang
    kind: shell
    command: [sh, -c, 'sleep 300 & echo $! > "$1"; wait', sh, "@PID@"]
    timeout: 2s
"""


def test_a_shell_step_past_its_timeout_under_keel_run_is_killed_and_says_so(
    tmp_path: Path,
) -> None:
    (tmp_path / "keel.toml").write_text('[shell]\nallow = ["sh"]\n')
    pid_file = tmp_path / "sleep.pid"
    (tmp_path / "flow.yaml").write_text(TIMED.replace("@PID@", str(pid_file)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env["KEEL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'keel.db'}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    ran = keel(tmp_path, "run", "flow.yaml", env=env)
    assert ran.returncode != 0
    run_id = json.loads(keel(tmp_path, "runs", "--json", env=env).stdout)[0]["id"]
    history = keel(tmp_path, "history", run_id, "--json", env=env)
    events = [json.loads(line) for line in history.stdout.splitlines() if line]
    failed = [event for event in events if event["kind"] == "node_failed"]
    assert failed, history.stdout
    error = failed[-1]["error"]
    # the step's own kill ended the attempt, before the worker's timeout for it
    assert error["type"] == "TimeoutError"
    assert "was killed with everything it started" in error["message"]
    sleeper = int(pid_file.read_text())
    eventually(lambda: process_gone(sleeper), f"the step's sleep {sleeper} is gone")


def test_a_run_of_a_workflow_with_no_outputs_says_where_its_steps_results_are(
    tmp_path: Path,
) -> None:
    (tmp_path / "keel.toml").write_text('[shell]\nallow = ["echo"]\n')
    (tmp_path / "hello.yaml").write_text(
        "name: hello\nnodes:\n  - {id: hi, kind: shell, command: [echo, hi]}\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    ran = keel(tmp_path, "run", "hello.yaml", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {}  # stdout stays the output alone, for scripts
    assert "declares no outputs: `keel show " in " ".join(ran.stderr.split())
    quiet = keel(tmp_path, "run", "hello.yaml", "--quiet", env=env)
    assert "declares no outputs" not in quiet.stderr
