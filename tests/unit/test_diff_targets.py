"""What ``keel diff``'s arguments name, on a real SQLite store: a run by id or prefix, a
version by its first digits or ``WORKFLOW@DIGITS``; and the refusals, each saying what
was found and how to say which is meant (run ids chosen to collide with versions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import InputError, RunNotFoundError, VersionNotFoundError
from keel.runtime.operations.control import start_run
from keel.runtime.views.diffs import diff_document, resolve_target
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.sqlite import SQLiteStore


def spec(name: str, task: str = "m:f") -> WorkflowSpec:
    return parse_spec({"name": name, "nodes": [{"id": "a", "task": task}]})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()


def test_runs_and_versions_are_found_by_prefix_and_by_their_forms(store: SQLiteStore) -> None:
    one, two = spec("w"), spec("w", "m:g")
    store.deploy([(one, None), (two, None)], 1.0)
    run = start_run(store, one, {}, run_id="feed" + "0" * 28)

    assert resolve_target(store, run.id[:6]).run == run
    assert resolve_target(store, f"run:{run.id[:6]}").run == run
    found = resolve_target(store, one.version[:10].upper())  # digits in either case
    assert found.version is not None
    assert found.version.version == one.version
    by_name = resolve_target(store, f"w@{two.version[:8]}").version
    assert by_name is not None
    assert by_name.version == two.version
    assert resolve_target(store, f"version:w@{two.version[:8]}").version == by_name


def test_a_prefix_of_both_a_run_and_a_version_says_how_to_choose(store: SQLiteStore) -> None:
    one = spec("w")
    store.deploy([(one, None)], 1.0)
    run = start_run(store, one, {}, run_id=one.version[:8] + "1" * 24)
    digits = one.version[:8]

    with pytest.raises(InputError, match=f"'{digits}' is both run {run.id[:12]} \\(w\\) and "
                                         f"version {one.version[:12]} \\(w\\): write "
                                         f"run:{digits} or version:{digits}"):  # fmt: skip
        resolve_target(store, digits)
    assert resolve_target(store, f"run:{digits}").run == run
    chosen = resolve_target(store, f"version:{digits}").version
    assert chosen is not None
    assert chosen.version == one.version


def test_names_of_several_or_of_nothing_are_refused(store: SQLiteStore) -> None:
    one = spec("w")
    start_run(store, one, {}, run_id="ab1" + "0" * 29)
    start_run(store, one, {}, run_id="ab2" + "0" * 29)

    with pytest.raises(RunNotFoundError, match="'ab' matches several runs: give more"):
        resolve_target(store, "ab")
    with pytest.raises(RunNotFoundError, match="'zz' is neither a run nor a stored version"):
        resolve_target(store, "zz")
    with pytest.raises(RunNotFoundError, match="no run with id 'ffff'"):
        resolve_target(store, "run:ffff")
    with pytest.raises(VersionNotFoundError, match="no stored version of workflow 'x' begins"):
        resolve_target(store, f"x@{one.version[:8]}")
    with pytest.raises(InputError, match="give a run id"):
        resolve_target(store, "run: ")
    with pytest.raises(InputError, match="names a version, not a run"):
        resolve_target(store, "run:w@ab")


def test_several_versions_of_one_prefix_are_named(store: SQLiteStore) -> None:
    specs = [spec("w", f"m:f{n}") for n in range(40)]
    store.deploy([(s, None) for s in specs], 1.0)
    first = sorted(s.version for s in specs)[0][0]  # 40 versions: some share a first digit
    sharing = [s.version for s in specs if s.version[0] == first]
    assert len(sharing) > 1

    with pytest.raises(InputError, match=f"'{first}' matches several versions: .*"
                                         "give more digits"):  # fmt: skip
        resolve_target(store, first)


def test_a_run_is_not_compared_with_a_version(store: SQLiteStore) -> None:
    one = spec("w")
    run = start_run(store, one, {}, run_id="c0ffee" + "0" * 26)
    said = r"is run c0ffee000000 \(w\) and .* is version .*: keel diff compares two runs or"
    with pytest.raises(InputError, match=said):
        diff_document(store, run.id, f"version:{one.version}")
    assert diff_document(store, run.id, run.id)["same"] is True
    assert diff_document(store, one.version, one.version)["same"] is True
