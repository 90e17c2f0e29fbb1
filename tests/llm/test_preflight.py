"""``keel run`` refuses, before it records a run, a workflow whose model nodes name a
provider the ``[llm]`` config here lacks, or a config that does not read."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.app import app
from keel.llm.preflight import provider_problems
from keel.spec import check, parse_spec

FLOW = """name: f
nodes:
  - id: a
    kind: llm
    provider: PROVIDER
    model: stub-small
    max_tokens: 5
    prompt: hi
"""


def _keel_run(folder: Path, provider: str) -> tuple[int, str]:
    (folder / "f.yaml").write_text(FLOW.replace("PROVIDER", provider))
    result = CliRunner().invoke(app, ["run", str(folder / "f.yaml"), "--db",
                                      f"sqlite:///{folder / 'k.db'}"])  # fmt: skip
    return result.exit_code, result.output


def test_an_unknown_provider_is_refused_before_a_run_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_LLM_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")
    code, said = _keel_run(tmp_path, "lcoal")
    assert code == 1
    assert "no LLM provider named 'lcoal' (did you mean 'local'?)" in said
    assert not (tmp_path / "k.db").exists()  # nothing recorded


def test_a_config_that_does_not_read_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keel.toml").write_text('[llm.providers.local]\nbaseurl = "x"\n')
    code, said = _keel_run(tmp_path, "local")
    assert code == 1
    assert "unknown key 'baseurl'" in said
    assert not (tmp_path / "k.db").exists()


def test_known_providers_and_specs_without_model_nodes_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = check(parse_spec({"name": "f", "nodes": [
        {"id": "a", "kind": "llm", "model": "m", "max_tokens": 5, "prompt": "hi"}]}))  # fmt: skip
    assert provider_problems(spec) == []  # openai is built in
    plain = check(parse_spec({"name": "g", "nodes": [{"id": "t", "task": "m:t"}]}))
    assert provider_problems(plain) == []
