"""An answer checked against the step's output schema, and the feedback a re-ask sends.

Only a complete answer is judged: a truncated one (``finish_reason=length``) fails as
truncated before it gets here, and half a JSON document is never "repaired".
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match


def parsed(text: str | None, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The answer's data and None, or None and what is wrong with it (one line)."""
    if not text:
        return None, "the answer was empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the answer is not valid JSON ({exc.msg} at character {exc.pos})"
    error = best_match(Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return data, None
    where = "/".join(str(part) for part in error.absolute_path)
    return (
        None,
        f"the answer does not fit the schema{f' at {where}' if where else ''}: {error.message}",
    )


def feedback(problem: str) -> str:
    """What a re-ask tells the model."""
    return (
        f"Your answer was not accepted: {problem}. Answer again with only a JSON object "
        "that fits the schema."
    )
