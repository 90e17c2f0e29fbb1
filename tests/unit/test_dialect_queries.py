"""Every query the SQL skeleton runs by name exists in both dialects' ``queries.sql``: a
query missing from one would otherwise show only when that code path first runs there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keel.store.sql import load_queries

SKELETON = Path(__file__).resolve().parents[2] / "keel" / "store" / "sqlstore"
#: ``q["name"]``, ``self.q["name"]``, ``queries["name"]`` in the skeleton's modules, and
#: the rows it inserts through its dialect (``dialect.insert(cur, "name", rows)``)
_NAMED = re.compile(r"""\b(?:q|queries)\[["'](\w+)["']\]|\.insert\(\w+, ["'](\w+)["']""")


def _names_the_skeleton_runs() -> set[str]:
    names: set[str] = set()
    for path in SKELETON.glob("*.py"):
        for match in _NAMED.finditer(path.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def test_the_skeleton_runs_named_queries() -> None:
    assert len(_names_the_skeleton_runs()) > 30  # the pattern still finds them


@pytest.mark.parametrize("dialect", ["keel.store.sqlite", "keel.store.postgres"])
def test_every_query_the_skeleton_runs_is_in_the_dialect(dialect: str) -> None:
    missing = _names_the_skeleton_runs() - set(load_queries(dialect))
    assert not missing, f"{dialect}/queries.sql lacks {sorted(missing)}"
