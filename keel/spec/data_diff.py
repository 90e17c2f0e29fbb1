"""Where two JSON values differ, as paths: ``output.reference: "C-1" -> "C-2"``.

The diff of two workflow versions and of two runs both come down to this: walk two
values side by side and name each place they differ, deepest first, so a person reads
what changed rather than two whole documents. Pure: no I/O, nothing but JSON values.

Rules: objects are compared key by key (the first value's keys in order, then keys only
the second has); a key only one side has is ``MISSING`` on the other, and when its value
is an object the walk goes on inside it (``retry.max_attempts: (missing) -> 5`` rather
than the whole policy); lists of the same length are compared item by item, lists of
different lengths are one change (an insertion would otherwise show every later item as
changed); ``True`` is not ``1`` and ``1`` is ``1.0``, as in JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal


class _Missing:
    """The value on the side of a change where the key is not there at all."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """One place where the two values differ: ``before`` is the first's, ``after`` the
    second's (either may be ``MISSING``)."""

    path: Path
    before: Any
    after: Any

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        if self.before is MISSING:
            return "added"
        return "removed" if self.after is MISSING else "changed"

    @property
    def where(self) -> str:
        return path_text(self.path)


def data_changes(before: Any, after: Any, path: Path = ()) -> list[Change]:
    """Every place where ``after`` differs from ``before`` (either may be ``MISSING``),
    in document order; empty when they are equal."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[Change] = []
        for key in [*before, *(key for key in after if key not in before)]:
            changes += _key_changes(before.get(key, MISSING), after.get(key, MISSING),
                                    (*path, key))  # fmt: skip
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [c for i, (a, b) in enumerate(zip(before, after, strict=True))
                for c in data_changes(a, b, (*path, i))]  # fmt: skip
    return [] if same_data(before, after) else [Change(path, before, after)]


def _key_changes(before: Any, after: Any, path: Path) -> list[Change]:
    """A key's changes; an object only one side has is walked against an empty one, so
    each of its fields is a change of its own (an empty object is one change)."""
    if before is MISSING and isinstance(after, dict) and after:
        return [Change(c.path, MISSING, c.after) for c in data_changes({}, after, path)]
    if after is MISSING and isinstance(before, dict) and before:
        return [Change(c.path, c.before, MISSING) for c in data_changes(before, {}, path)]
    return data_changes(before, after, path)


def same_data(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1 == 1.0``, but ``True`` is not ``1`` (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b, strict=True))
    return (type(a) is type(b) and a == b) or (_number(a) and _number(b) and a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def path_text(path: Path) -> str:
    """``nodes.book_car.output.reference``; a list index as ``[0]``, a key that is not a
    plain name as ``["a key"]``; the whole value is ``.``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _NAME.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text or "."


def value_text(value: Any, missing: str = "(missing)") -> str:
    """A side of a change as compact JSON on one line (``missing`` for ``MISSING``)."""
    if value is MISSING:
        return missing
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


def change_document(change: Change) -> dict[str, Any]:
    """A change as JSON: ``path`` (text), ``parts`` (its keys and indexes), ``change``
    (added, removed, changed) and the sides that exist, ``a`` and ``b``."""
    doc: dict[str, Any] = {"path": change.where, "parts": list(change.path), "change": change.kind}
    if change.before is not MISSING:
        doc["a"] = change.before
    if change.after is not MISSING:
        doc["b"] = change.after
    return doc


def change_of(doc: dict[str, Any]) -> Change:
    """``change_document`` read back."""
    return Change(tuple(doc["parts"]), doc.get("a", MISSING), doc.get("b", MISSING))
