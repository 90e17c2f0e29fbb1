"""A built-in step refused for want of a worker setting says which ``keel.toml`` keel
read, or that it found none from the folder ``keel run`` runs in upwards (not the
workflow file's folder): a real ``python -m keel run`` subprocess, run from a folder
other than the workflow's, reading the failed run's message as the user sees it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 60

NODES = {
    "http": 'kind: http\n    url: "http://127.0.0.1:9/claims"',
    "shell": "kind: shell\n    command: [echo, hi]",
    "sql": 'kind: sql\n    connection: warehouse\n    query: "SELECT 1"',
    "email": 'kind: email\n    to: [ann@example.com]\n    subject: hi\n    body: "hello"',
    "secret": 'kind: http\n    url: "http://127.0.0.1:9/"\n'
    '    headers: {Authorization: "${{ secrets.NO_SUCH_TOKEN }}"}',
}
#: what each refusal asks the operator to set
ASKS = {
    "http": "to the allow list of [http] in",
    "shell": "to [shell] allow in",
    "sql": "add [sql.connections.warehouse]",
    "email": "set sender on the step or in the [email] table of",
    "secret": "[secrets] file in",
}


def _failure(tmp_path: Path, kind: str, cwd: Path) -> str:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "keel.toml").write_text("# the workflow's folder: keel does not read this one\n")
    flow = flows / f"{kind}.yaml"
    flow.write_text(f"name: walk\nnodes:\n  - id: step\n    {NODES[kind]}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env |= {
        "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "1000",
    }
    done = subprocess.run([sys.executable, "-m", "keel", "run", str(flow)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          check=False)  # fmt: skip
    assert done.returncode != 0, done.stdout
    return " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("kind", sorted(NODES))
def test_a_refusal_says_no_keel_toml_was_found_from_the_current_folder(
    tmp_path: Path, kind: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    said = _failure(tmp_path, kind, elsewhere)

    assert ASKS[kind] in said
    assert f"none found in {elsewhere} or a folder above it" in said
    assert "not from the workflow file's folder" in said


@pytest.mark.parametrize("kind", sorted(NODES))
def test_a_refusal_names_the_keel_toml_read_once_and_the_table_it_lacks(
    tmp_path: Path, kind: str
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "keel.toml").write_text("concurrency = 2\n")

    said = _failure(tmp_path, kind, here)

    section = {"secret": "secrets"}.get(kind, kind)
    assert f"keel.toml ({here / 'keel.toml'}), which has no [{section}] table" in said
    assert "((" not in said
    assert "))" not in said
