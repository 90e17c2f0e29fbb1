"""A YAML author's natural mistakes in built-in steps, as ``keel validate`` reports them
in a real process: keel's own words naming the field and what to write, never
pydantic's ("Input should be a valid tuple"), and refused before anything runs."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_definition_errors_cli import keel

FLOW = """\
name: walk
nodes:
  - id: listing
    kind: shell
    command: "ls -la /tmp"
  - id: nothing
    kind: shell
    command: []
  - id: codes
    kind: shell
    command: [ls]
    ok_exit_codes: 1
    env: [A=1]
  - id: two
    kind: sql
    connection: warehouse
    query: "SELECT 1; DROP TABLE x"
  - id: params
    kind: sql
    connection: warehouse
    query: "SELECT * FROM t WHERE id = :id AND n > :min"
    params: {id: x, mn: 3}
  - id: templated
    kind: sql
    connection: warehouse
    query: "SELECT '${{ input.x }}'"
  - id: fetch
    kind: http
    url: "http://x/${{ input.id "
    headers: ["Authorization: x"]
    ok_status: 201
  - id: tell
    kind: email
    to: "a@example.com"
    subject: "Claim ${{ input.id"
  - id: tell_nobody
    kind: email
    to: []
    subject: hi
  - id: sign
    kind: approval
    title: Sign
    description: "Approve ${{ input.id"
"""


def test_step_mistakes_are_said_in_keels_words(tmp_path: Path) -> None:
    (tmp_path / "walk.yaml").write_text(FLOW)

    done = keel(tmp_path, "validate", "walk.yaml")

    assert done.returncode == 1
    said = " ".join((done.stdout + done.stderr).split())
    for pydantic_text in ("Input should", "valid tuple", "at least 1 item", "valid dictionary"):
        assert pydantic_text not in said
    assert "invalid (11 problems)" in said
    assert (
        "node 'listing', command: give the program and its arguments as a list, e.g. "
        '["ls", "-la", "/tmp"], not the text \'ls -la /tmp\': nothing is parsed by a shell'
    ) in said
    assert "node 'nothing', command: the command is empty: give the program and its" in said
    assert "node 'codes', env: write a mapping of names to values, e.g. {LANG:" in said
    assert "node 'two': the query holds more than one statement" in said
    assert (
        "node 'params': the query uses :min but 'params' gives no min; and params mn not "
        "used in the query"
    ) in said
    assert "node 'templated': a query must hold no ${{ }} parts" in said
    assert "node 'fetch', url: url has a '${{' with no '}}' closing it" in said
    assert "node 'fetch', headers: write a mapping of names to values" in said
    assert "node 'tell', subject: subject has a '${{' with no '}}' closing it" in said
    assert "node 'tell_nobody', to: give at least one address" in said
    assert "node 'sign', description: description has a '${{' with no '}}' closing it" in said
    # one address, one exit code, one status: a list of one, as keel.email takes it
    assert "node 'tell', to" not in said
    assert "node 'codes', ok_exit_codes" not in said
    assert "node 'fetch', ok_status" not in said
