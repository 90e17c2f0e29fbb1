"""Before a run is recorded: can the model nodes of its spec find their providers here?

A bad ``[llm]`` table in ``keel.toml`` or a provider name no config knows would
otherwise surface only at the first model node, after the run was recorded (and its
earlier steps run). ``keel run`` and ``keel validate`` ask this first and refuse with the
reason; a worker elsewhere may still be configured differently, so the step checks again.
"""

from __future__ import annotations

import difflib

from keel.llm.config import LlmConfigError, load_llm_config
from keel.llm.providers import BUILT_IN
from keel.spec.model import AgentNode, LlmNode, WorkflowSpec


def provider_problems(spec: WorkflowSpec) -> list[str]:
    """What stops the spec's model nodes from finding their providers (none: fine)."""
    nodes = [node for node in spec.nodes if isinstance(node, LlmNode | AgentNode)]
    if not nodes:
        return []
    try:
        config = load_llm_config()
    except LlmConfigError as exc:
        return [str(exc)]
    known = sorted({*config.providers, *BUILT_IN})
    problems = []
    for node in nodes:
        if node.provider in known:
            continue
        close = difflib.get_close_matches(node.provider, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(
            f"node '{node.id}': no LLM provider named '{node.provider}'{hint}; known: "
            f"{', '.join(known)} (define it in keel.toml as [llm.providers.{node.provider}], "
            f"or set KEEL_LLM_{node.provider.upper().replace('-', '_')}_BASE_URL)"
        )
    return problems
