"""LLM and agent steps: a model request as a durable, priced, replayable record.

In a Python workflow, ``keel.llm.step(...)`` and ``keel.llm.agent(...)`` add an ``llm``
or ``agent`` node (YAML: ``kind: llm`` / ``kind: agent``). keel's own tasks run them
(``keel.llm.steps``), recording every request in the ledger (``keel.store.model_calls``)
before it is sent and its answer as soon as it is in.
"""

from keel.llm.authoring import agent, step, tool
from keel.spec.model import LlmBudget

__all__ = ["LlmBudget", "agent", "step", "tool"]
