"""The ticket-routing example (``examples/tickets.py``) against a real local model: the
llama.cpp server with SmolLM2-135M (``tests/llm/real_model.py``), through the real CLI.
Opt-in: ``KEEL_REAL_LLM=1``; skipped otherwise.

The model is small and answers poorly, so the test asserts what keel guarantees whatever
it thinks: the classification fits the schema (one of the enum values, asked in
``json_object`` mode with the schema, as llama.cpp wants), the branch of that sentiment
ran, the ledger counts the tokens of every request, and the run waits for a person and
finishes once approved. What the model answered is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import test_run_cli, test_waiting_cli
from tests.e2e.test_run_cli import Keel, nodes_of
from tests.e2e.test_tickets_example import BRANCHES, ledger, run_until_approval
from tests.e2e.test_waiting_cli import Start
from tests.llm.real_model import RealModel
from tests.llm.real_model import real_model as real_model  # the fixture, for pytest

# loading the model and answering take seconds, far more on a loaded machine
pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(600)]

#: prices made up for the test, so the ledger shows a cost (dollars per million tokens)
KEEL_TOML = """\
[llm.providers.local]
base_url = "{base_url}"
output_mode = "json_object"
timeout = 300

[llm.prices."{model}"]
input = 0.10
output = 0.40
"""


@pytest.fixture
def keel(tmp_path: Path, real_model: RealModel) -> Keel:
    """``keel`` in a folder whose ``keel.toml`` aims provider ``local`` at the llama.cpp
    server, the example's model set to the one it serves."""
    base: Keel = test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    toml = KEEL_TOML.format(base_url=real_model.base_url, model=real_model.model)
    (tmp_path / "keel.toml").write_text(toml, encoding="utf-8")
    env = {k: v for k, v in base.env.items() if not k.startswith(("KEEL_TICKETS_", "KEEL_LLM_"))}
    env["KEEL_TICKETS_MODEL"] = real_model.model
    return Keel(base.cwd, env, base.db)


@pytest.fixture
def start(keel: Keel) -> Iterator[Start]:
    yield from test_waiting_cli.start.__wrapped__(keel)  # type: ignore[attr-defined]


@pytest.mark.parametrize("ticket", list(BRANCHES))
def test_a_real_model_routes_the_ticket_and_the_run_finishes_once_approved(
    keel: Keel, start: Start, real_model: RealModel, ticket: str
) -> None:
    running, run_id, waiting = run_until_approval(keel, start, ticket)

    nodes = nodes_of(keel.show(run_id))
    triage = nodes["classify"]["output"]
    assert triage["sentiment"] in BRANCHES, triage
    assert triage["urgency"] in ("low", "normal", "high"), triage
    assert isinstance(triage["topic"], str), triage
    taken = BRANCHES[triage["sentiment"]]
    assert nodes[taken]["status"] == "succeeded"
    for other in set(BRANCHES.values()) - {taken}:
        assert nodes[other]["status"] == "skipped", other
    assert nodes["approve_reply"]["status"] == "awaiting"
    calls = ledger(keel, run_id)
    assert [c["node"] for c in calls if c["state"] == "answered"] == sorted(["classify", taken])
    for call in calls:
        assert call["input_tokens"] > 0, call
        assert call["output_tokens"] > 0, call
        assert call["cost"] > 0, call

    keel.ok("approve", run_id, "approve_reply", "--by", "ann")
    code, out, err = running.finish()
    assert code == 0, err
    result = json.loads(out)
    assert result["triage"] == triage
    assert result["sent"]["reply"] == nodes["pick_draft"]["output"]
    report(ticket, triage, nodes["pick_draft"]["output"], calls, waiting, keel, run_id)


def report(
    ticket: str,
    triage: dict[str, str],
    draft: str,
    calls: list[dict[str, object]],
    waiting: dict[str, object],
    keel: Keel,
    run_id: str,
) -> None:
    """What the model said and what it cost, for whoever runs this with ``-s``."""
    shown = keel.show(run_id)
    print(f"\n--- ticket meant {ticket}: run {run_id[:8]} ({shown['duration']})")
    print(f"classify: {json.dumps(triage)}")
    print(f"draft: {draft!r}")
    for call in calls:
        print(f"  {call}")
    print(f"approval asked: {waiting['description']!r}")
