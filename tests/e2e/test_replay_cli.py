"""``keel replay`` as a user runs it (real processes, a SQLite file per test): the story of
a recorded run, and the check of changed code against it, with its exit status; bad
input gets one line naming what was wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

SHOP = """\
import keel


@keel.task
def check_fraud(amount: float) -> float:
    return 0.1


@keel.task
def charge(amount: float, currency: str = "USD") -> str:
    return f"charged {amount} {currency}"


@keel.task
def notify(who: str, receipt: str) -> str:
    return f"told {who}"


@keel.workflow
def order(amount: float, vip: bool = False) -> str:
    BODY
"""
RECORDED = """receipt = charge(amount)
    with keel.when(vip):
        notify("vip desk", receipt)
    return receipt"""
FRAUD_CHECKED = """check_fraud(amount)
    receipt = charge(amount)
    with keel.when(vip):
        notify("vip desk", receipt)
    return receipt"""
ALWAYS_TOLD = """receipt = charge(amount)
    with keel.when(amount > 10):
        notify("vip desk", receipt)
    return receipt"""


def keel(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{cwd}/k.db",
           "COLUMNS": "80"}  # fmt: skip
    env.pop("KEEL_SERVER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def write_shop(folder: Path, body: str) -> None:
    (folder / "shop.py").write_text(SHOP.replace("BODY", body))


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, str]:
    """A folder whose ``shop.py`` recorded one run of ``order`` (not a VIP); its id."""
    write_shop(tmp_path, RECORDED)
    ran = keel(tmp_path, "run", "shop.py", "-i", "amount=20")
    assert ran.returncode == 0, ran.stderr
    listed = keel(tmp_path, "runs", "--json")
    return tmp_path, json.loads(listed.stdout)[0]["id"]


def test_replay_tells_the_story_of_a_run(run: tuple[Path, str]) -> None:
    folder, run_id = run
    told = keel(folder, "replay", run_id[:8])

    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    assert lines[0] == f"order · run {run_id} · succeeded"
    assert "its history replays to what the run's row says" in told.stdout
    assert all(len(line) <= 80 for line in lines), told.stdout
    scheduled = next(line for line in lines if " charge " in line and "scheduled" in line)
    assert " keel " in scheduled  # decided by the definition
    assert 'args {"amount": 20}' in told.stdout
    assert "skipped" in told.stdout
    assert 'reason "when: input.vip was false"' in told.stdout
    assert 'output "charged 20.0 USD"' in told.stdout

    as_json = json.loads(keel(folder, "replay", run_id, "--json").stdout)
    history = keel(folder, "history", run_id, "--json").stdout.splitlines()
    assert [e["seq"] for e in as_json["entries"]] == [json.loads(h)["seq"] for h in history]
    assert as_json["matches"] is True
    assert {e["kind"]: e["decided"] for e in as_json["entries"]} == {
        "run_started": False, "node_scheduled": True, "node_started": False,
        "node_succeeded": False, "node_skipped": True, "run_completed": True,
    }  # fmt: skip


def test_replay_with_the_same_code_is_clean(run: tuple[Path, str]) -> None:
    folder, run_id = run
    checked = keel(folder, "replay", run_id, "--code", "shop.py")
    assert checked.returncode == 0, checked.stderr
    said = " ".join(checked.stdout.split())  # as one line, however it wrapped
    assert said.startswith(f"✓ run {run_id[:8]} replays clean against shop.py")
    assert said.endswith("(the version it recorded): 6 events, 3 decisions made again")


def test_replay_with_changed_code_names_the_first_divergence(run: tuple[Path, str]) -> None:
    folder, run_id = run
    write_shop(folder, FRAUD_CHECKED)
    checked = keel(folder, "replay", run_id, "--code", "shop.py:order")

    assert checked.returncode == 1, checked.stderr
    assert f"✗ run {run_id[:8]} diverges from shop.py:order" in checked.stdout
    assert "  event     2\n" in checked.stdout
    assert "  recorded  node_scheduled charge (attempt 1)\n" in checked.stdout
    assert "  new code  node_scheduled check_fraud (attempt 1)\n" in checked.stdout
    assert "a node added before a recorded node" in " ".join(checked.stdout.split())

    write_shop(folder, ALWAYS_TOLD)
    as_json = keel(folder, "replay", run_id, "--code", "shop.py", "--json")
    assert as_json.returncode == 1
    found = json.loads(as_json.stdout)
    assert found["ok"] is False
    assert found["divergence"]["recorded"]["kind"] == "node_skipped"
    assert found["divergence"]["decided"]["kind"] == "node_scheduled"
    assert found["divergence"]["explanation"] == (
        "its condition changed (when: input.vip → input.amount > 10)"
    )


def test_replay_bad_input_gets_one_line(run: tuple[Path, str]) -> None:
    folder, run_id = run
    (folder / "other.py").write_text(
        "import keel\n\n@keel.task\ndef a() -> int:\n    return 1\n\n"
        "@keel.workflow\ndef other() -> int:\n    return a()\n"
    )
    cases = [
        (("replay", "feedface"), "no run"),
        (("replay", run_id, "--code", "other.py"),
         "--code other.py: other.py has no workflow 'order' (it has: other)"),
        (("replay", run_id, "--code", "shop.py:nope"), "has no workflow 'nope'"),
        (("replay", run_id, "--code", "missing.py"), "no such file: missing.py"),
    ]  # fmt: skip
    for args, said in cases:
        result = keel(folder, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert said in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_modified_copy_under_another_file_name_reports_the_real_change(
    run: tuple[Path, str],
) -> None:
    """The main use of --code: a changed copy of the recorded file, under another name.
    Its tasks are the recording's in another module: said once, then compared by name,
    so the check reaches what really changed (a condition)."""
    folder, run_id = run
    (folder / "shop_copy.py").write_text(SHOP.replace("BODY", RECORDED))
    same = keel(folder, "replay", run_id, "--code", "shop_copy.py")
    assert same.returncode == 0, same.stdout + same.stderr
    said = " ".join(same.stdout.split())
    assert "the tasks are in module shop_copy here and were in shop when recorded" in said
    assert f"✓ run {run_id[:8]} replays clean against shop_copy.py" in said

    (folder / "shop_cond.py").write_text(SHOP.replace("BODY", ALWAYS_TOLD))
    checked = keel(folder, "replay", run_id, "--code", "shop_cond.py")
    assert checked.returncode == 1, checked.stderr
    said = " ".join(checked.stdout.split())
    assert said.count("the tasks are in module shop_cond") == 1
    assert "runs shop_cond:charge now" not in said
    assert "its condition changed (when: input.vip → input.amount > 10)" in said
    assert all(len(line) <= 80 for line in checked.stdout.splitlines()), checked.stdout
    as_json = json.loads(keel(folder, "replay", run_id, "--code", "shop_cond.py", "--json").stdout)
    assert as_json["renamed_modules"] == {"shop_cond": "shop"}
    assert as_json["divergence"]["decided"]["kind"] == "node_scheduled"
