"""``keel.cli.common.fitted``: how a one-line error is wrapped to the console's width."""

from __future__ import annotations

from keel.cli.common import fitted


def test_a_long_message_wraps_at_spaces_with_its_continuation_indented() -> None:
    message = "word " * 30 + "end"
    lines = fitted(message, 40).splitlines()
    assert len(lines) > 1
    assert all(len(line) <= 40 for line in lines)
    assert all(line.startswith("  word") or line.startswith("  end") for line in lines[1:])
    assert " ".join(fitted(message, 40).split()) == " ".join(message.split())


def test_a_command_in_backquotes_and_a_long_word_are_never_broken() -> None:
    message = "x" * 30 + " see `keel show 1234abcd --json` for more, in /a/very/long/" + "p" * 50
    lines = fitted(message, 40).splitlines()
    assert any("`keel show 1234abcd --json`" in line for line in lines), lines
    assert any(line.strip() == "/a/very/long/" + "p" * 50 for line in lines), lines


def test_short_and_multi_line_messages_keep_their_lines() -> None:
    assert fitted("no runs", 80) == "no runs"
    said = "problems:\n  - node a: " + "bad " * 25
    lines = fitted(said, 40).splitlines()
    assert lines[0] == "problems:"
    assert lines[1].startswith("  - node a: bad")
    assert all(line.startswith("    bad") for line in lines[2:])
