"""Load, when a worker starts, what its first run would otherwise load on the hot path.

The JSON Schema validator (a run's input is checked against its workflow's schema) and
the CEL evaluator (conditions and mappings that are not plain paths) are heavy imports,
done lazily so that commands that never need them (``keel runs``, ``keel show``) start
fast. A worker will need them: importing them at its start keeps about 100 ms of imports
off the first run's time and out of its first step's latency.
"""

from __future__ import annotations

from keel.spec.expressions import evaluate
from keel.spec.schemas import validator_class


def load_hot_path() -> None:
    """Import (and build once) the input validator and the CEL evaluator."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    validator_class(schema)(schema).is_valid({"n": 1})
    evaluate("input.n + 1", {"input": {"n": 1}, "nodes": {}})
