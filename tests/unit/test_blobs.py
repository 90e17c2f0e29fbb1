"""Which values of an event become blobs, how the stored text names them, and reading
it back (``keel.store.blobs``), apart from any database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.engine.events import (
    NodeAwaiting,
    NodeScheduled,
    NodeSucceeded,
    RunStarted,
    from_data,
    to_data,
)
from keel.errors import StoreError
from keel.store.blobs import (
    MARKER,
    blob_name,
    column_data,
    column_name,
    column_value,
    filled,
    names_in,
    references,
    stored_payload,
    verify_blobs,
)
from keel.store.chain import ChainLink, canonical_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=30,
)


def stored(event: Any, threshold: int) -> tuple[str, dict[str, str]]:
    data = to_data(event)
    return stored_payload(data, canonical_json(data), threshold)


def read(text: str, blobs: dict[str, str]) -> Any:
    data = json.loads(text)
    return from_data(filled(data, blobs, "here") if text.startswith(MARKER) else data)


@settings(max_examples=50, deadline=None)  # a loaded machine is no failure
@given(
    output=json_values,
    args=st.dictionaries(st.text(max_size=4), json_values, max_size=4),
    threshold=st.integers(min_value=0, max_value=80),
)
def test_every_event_reads_back_as_it_was_whatever_the_threshold(
    output: Any, args: dict[str, Any], threshold: int
) -> None:
    for event in (NodeSucceeded(node="a", attempt=1, output=output),
                  NodeScheduled(node="a", attempt=1, args=args)):  # fmt: skip
        text, blobs = stored(event, threshold)
        assert read(text, blobs) == event
        assert all(blob_name(content) == name for name, content in blobs.items())
        assert names_in([text]) == set(blobs)
        links = [ChainLink(1, 0.0, text, "0" * 64)]
        assert verify_blobs(links, blobs) == []


def test_an_event_no_longer_than_the_threshold_is_its_canonical_text() -> None:
    event = NodeSucceeded(node="a", attempt=1, output={"$blobs": [["output"]], "x": 1})
    data = to_data(event)
    payload = canonical_json(data)
    assert stored_payload(data, payload, len(payload)) == (payload, {})
    # longer, but no value longer on its own: the same text, no blob
    assert stored_payload(data, payload, len(payload) - 1) == (payload, {})


def test_a_long_value_is_a_reference_listed_first_in_the_stored_text() -> None:
    event = NodeSucceeded(node="a", attempt=2, output="x" * 50)
    text, blobs = stored(event, 40)
    (name,) = blobs
    assert blobs[name] == '"' + "x" * 50 + '"'
    assert text == (
        '{"$blobs":[["output"]],"attempt":2,"item":null,"kind":"node_succeeded","node":"a",'
        f'"output":{{"$blob":"{name}","size":52}}}}'
    )


def test_named_values_go_longest_first_until_the_rest_is_short() -> None:
    args = {"big": "b" * 400, "mid": "m" * 250, "small": "s" * 40, "tiny": 1}
    text, blobs = stored(NodeScheduled(node="n", attempt=1, args=args), 300)
    data = json.loads(text)
    # big (past 300 alone), then mid (the rest was still past 300); small and tiny stay
    assert data["$blobs"] == [["args", "big"], ["args", "mid"]]
    assert data["args"]["small"] == "s" * 40
    assert data["args"]["tiny"] == 1
    assert len(canonical_json(data["args"])) <= 300
    assert read(text, blobs) == NodeScheduled(node="n", attempt=1, args=args)


def test_a_named_value_shorter_than_a_reference_stays() -> None:
    args = {f"k{i}": "v" * 60 for i in range(10)}  # 10 x 62: each shorter than a reference
    text, blobs = stored(NodeScheduled(node="n", attempt=1, args=args), 300)
    assert (text, blobs) == (canonical_json(to_data(NodeScheduled(node="n", attempt=1,
                                                                    args=args))), {})  # fmt: skip


def test_an_argument_and_the_output_it_came_from_are_one_blob() -> None:
    output = {"rows": list(range(40))}
    _, produced = stored(NodeSucceeded(node="a", attempt=1, output=output), 50)
    _, taken = stored(NodeScheduled(node="b", attempt=1, args={"rows": output, "k": 1}), 50)
    _, started = stored(RunStarted(workflow="w", spec_version="v", input=output), 50)
    assert produced == taken == started


def test_a_wait_s_details_are_named_values_too() -> None:
    event = NodeAwaiting(node="child", attempt=1, waits_for="run",
                         details={"run_id": "r2", "input": "i" * 80})  # fmt: skip
    text, blobs = stored(event, 60)
    assert json.loads(text)["$blobs"] == [["details", "input"]]
    assert read(text, blobs) == event


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"$blobs": "output"}, "its $blobs is not a list of paths"),
        ({"$blobs": [[]]}, "its $blobs lists [], not a path"),
        ({"$blobs": [["output"]], "output": "sha256:00"}, "its output is not a blob reference"),
        (
            {"$blobs": [["args", "x"]], "args": {"x": {"$blob": "md5:00"}}},
            "its args.x is not a blob reference",
        ),
    ],
)
def test_a_malformed_reference_is_an_error_naming_it(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        references(data)
    with pytest.raises(StoreError, match=re.escape(f"run r event 3: {problem}")):
        filled(data, {}, "run r event 3")
    text = canonical_json(data)
    assert verify_blobs([ChainLink(3, 0.0, text, "0" * 64)], {}) == [f"event 3: {problem}"]
    assert names_in([text]) == set()


def test_a_missing_blob_is_an_error_naming_the_event_and_the_blob() -> None:
    text, blobs = stored(NodeSucceeded(node="a", attempt=1, output="x" * 20), 10)
    (name,) = blobs
    with pytest.raises(StoreError, match=f"run r event 4: blob {name} \\(output\\) is missing"):
        filled(json.loads(text), {}, "run r event 4")


def test_a_run_column_names_a_blob_no_json_text_can_be_taken_for() -> None:
    text = canonical_json("sha256:" + "0" * 64)  # a user's string that looks like a name
    assert column_value(text, 1_000) == (text, {})
    assert column_name(text) is None
    assert column_data(text, {}, "run r") == "sha256:" + "0" * 64

    long = canonical_json({"k": "v" * 100})
    name, blobs = column_value(long, 50)
    assert column_name(name) == name == blob_name(long)
    assert column_data(name, blobs, "run r") == {"k": "v" * 100}
    with pytest.raises(StoreError, match=f"run r: blob {name} is missing"):
        column_data(name, {}, "run r")
