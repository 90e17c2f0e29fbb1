"""Secrets by reference (``keel.runtime.secrets``): where a value comes from, the checks
on the secrets file, and the redaction of every value an attempt looked up from what the
attempt hands back (output, error, logs), in this process and in a child process."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from keel.runtime.execution.invoke import Invocation, TaskCatalog, make_context
from keel.runtime.execution.task_logs import line_of
from keel.runtime.secrets import (
    SecretError,
    known_secrets,
    lookup,
    redact,
    redact_text,
    revealed_now,
    revealing,
    secret,
    supplying,
)
from tests.unit import secret_tasks  # noqa: F401  (loaded, as a worker loads its code)

TOKEN = "tok-7f3a9c1e5b"


@pytest.fixture(autouse=True)
def _no_inherited_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("KEEL_SECRET"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no keel.toml above a test's folder


def _secrets_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --- where a value comes from -----------------------------------------------------------------


def test_a_secret_comes_from_its_prefixed_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    assert lookup("API_TOKEN") == TOKEN


def test_the_workers_other_environment_is_not_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://u:pw@db/keel")
    with pytest.raises(SecretError) as caught:
        lookup("KEEL_DATABASE_URL")
    assert "$KEEL_SECRET_KEEL_DATABASE_URL" in str(caught.value)
    assert "pw@db" not in str(caught.value)


def test_a_secret_comes_from_the_secrets_file_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secrets_file(tmp_path / "secrets.toml", f'API_TOKEN = "{TOKEN}"\n')
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(path))
    assert lookup("API_TOKEN") == TOKEN


def test_the_environment_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secrets_file(tmp_path / "secrets.toml", 'API_TOKEN = "from-the-file"\n')
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(path))
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    assert lookup("API_TOKEN") == TOKEN


def test_the_secrets_file_may_be_named_in_keel_toml_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('[secrets]\nfile = "conf/secrets.toml"\n')
    (tmp_path / "conf").mkdir()
    _secrets_file(tmp_path / "conf" / "secrets.toml", f'API_TOKEN = "{TOKEN}"\n')
    (tmp_path / "sub").mkdir()
    assert lookup("API_TOKEN", start=tmp_path / "sub") == TOKEN


def test_a_secrets_file_others_may_read_is_refused_saying_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secrets_file(tmp_path / "secrets.toml", f'API_TOKEN = "{TOKEN}"\n', mode=0o644)
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(path))
    with pytest.raises(SecretError) as caught:
        lookup("API_TOKEN")
    assert "0644" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("API_TOKEN = [1, 2]\n", "API_TOKEN must be a string"),
        ("API_TOKEN = \n", "invalid TOML"),
        ('OTHER = "something"\n', "secret 'API_TOKEN' is not set"),
        ('API_TOKEN = "ab"\n', "shorter than 4 characters"),
    ],
)
def test_a_bad_secrets_file_or_value_says_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(_secrets_file(tmp_path / "s.toml", text)))
    with pytest.raises(SecretError, match=expected):
        lookup("API_TOKEN")


def test_a_missing_secret_names_every_place_keel_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secrets_file(tmp_path / "s.toml", "")
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(path))
    with pytest.raises(SecretError) as caught:
        lookup("API_TOKEN")
    assert "$KEEL_SECRET_API_TOKEN" in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_secret_name_must_be_an_identifier() -> None:
    with pytest.raises(SecretError, match="not a secret name"):
        lookup("API-TOKEN")


# --- redaction ----------------------------------------------------------------------------------


def test_redaction_replaces_longer_secrets_first_and_names_them() -> None:
    revealed = {"SHORT": "abcd", "LONG": "abcd-efgh"}
    assert redact_text("x abcd-efgh y abcd", revealed) == "x [secret LONG] y [secret SHORT]"
    data = {"abcd": ["abcd-efgh", 3, None], "k": True}
    assert redact(data, revealed) == {"[secret SHORT]": ["[secret LONG]", 3, None], "k": True}


def test_only_lookups_inside_an_attempt_are_revealed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    secret("API_TOKEN")
    assert revealed_now() == {}
    with revealing():
        secret("API_TOKEN")
        assert revealed_now() == {"API_TOKEN": TOKEN}
    assert revealed_now() == {}


def _invoke(name: str, isolation: str = "thread") -> object:
    ctx = make_context("run-1", "wf", "step", 1, None)
    invocation = Invocation(TaskCatalog(), f"tests.unit.secret_tasks:{name}", {}, ctx)
    if isolation == "process":
        return invocation.run_in_process(timeout=60)
    return invocation.run()


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_returned_secret_is_redacted_from_the_output(
    monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    outcome = _invoke("returns_it", isolation)
    assert outcome.error is None, outcome.error  # type: ignore[attr-defined]
    assert outcome.output == {  # type: ignore[attr-defined]
        "token": "[secret API_TOKEN]",
        "nested": ["Bearer [secret API_TOKEN]"],
        "[secret API_TOKEN]": "as a key",
    }


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_secret_in_an_error_is_redacted_from_its_message_and_traceback(
    monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    outcome = _invoke("raises_it", isolation)
    error = outcome.error  # type: ignore[attr-defined]
    assert error is not None
    assert error.message == "the server refused token [secret API_TOKEN]"
    assert TOKEN not in error.traceback
    assert "[secret API_TOKEN]" in error.traceback


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_attempt_that_looked_nothing_up_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", "abcd")  # would redact the output if revealed
    outcome = _invoke("reads_nothing", isolation)
    assert outcome.output == "no secret here: abcd-1234-efgh"  # type: ignore[attr-defined]


def test_a_logged_secret_is_redacted_for_every_handler_and_the_line_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's stderr (a plain handler here), its JSON lines and the lines kept with
    the attempt all format the record made while the attempt had revealed the secret."""
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("keel.task.redaction_test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("outside an attempt %s", "tok-not-a-secret")
        with revealing():
            secret("API_TOKEN")
            logger.info("calling with %s", TOKEN)
            try:
                raise RuntimeError(f"refused {TOKEN}")
            except RuntimeError:
                logger.exception("failed")
            record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "again %s",
                                       (TOKEN,), None)  # fmt: skip
        logger.info("after the attempt %s", TOKEN)  # nothing revealed here any more
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "calling with [secret API_TOKEN]" in written
    assert "RuntimeError: refused [secret API_TOKEN]" in written
    assert written.count(TOKEN) == 1  # only the line logged after the attempt ended
    assert "after the attempt" in written.splitlines()[-1]
    assert "tok-not-a-secret" in written
    assert line_of(record).message == "again [secret API_TOKEN]"


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_task_logging_its_secret_keeps_a_redacted_line(
    monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    outcome = _invoke("logs_it", isolation)
    assert outcome.output == "done"  # type: ignore[attr-defined]
    if isolation == "process":  # a child process sends its lines back with the answer
        lines = outcome.logs.lines  # type: ignore[attr-defined]
        assert [line.message for line in lines] == ["calling with [secret API_TOKEN]"]


def test_a_secret_is_redacted_also_as_a_url_or_json_text_writes_it() -> None:
    value = 'p@ss w/rd"é'
    revealed = {"PW": value}
    text = f"url ?pw={quote(value, safe='')} form pw={quote_plus(value)} json {json.dumps(value)}"
    assert redact_text(text, revealed) == (
        'url ?pw=[secret PW] form pw=[secret PW] json "[secret PW]"'
    )


def test_what_a_dying_child_wrote_is_redacted_of_every_secret_the_worker_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    outcome = _invoke("dies_saying_it", "process")
    error = outcome.error  # type: ignore[attr-defined]
    assert error is not None
    assert "about to die holding [secret API_TOKEN]" in error.message
    assert TOKEN not in error.message


def test_known_secrets_are_the_environments_and_the_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    monkeypatch.setenv("KEEL_SECRET_TINY", "ab")  # too short to be a secret
    path = _secrets_file(tmp_path / "s.toml", 'DB_URL = "postgresql://u:pw@h/db"\nN = 3\n')
    monkeypatch.setenv("KEEL_SECRETS_FILE", str(path))
    assert known_secrets() == {"API_TOKEN": TOKEN, "DB_URL": "postgresql://u:pw@h/db"}
    path.write_text("DB_URL = ")  # a file that cannot be read reveals nothing, fails nothing
    assert known_secrets() == {"API_TOKEN": TOKEN}


def _attempt_of(workflow: str, name: str = "API_TOKEN") -> object:
    ctx = make_context("run-1", workflow, "step", 1, None)
    invocation = Invocation(TaskCatalog(), "tests.unit.secret_tasks:returns_it", {}, ctx)
    return invocation.run()


def test_secrets_workflows_lists_who_may_read_each_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    assert _attempt_of("anything").error is None  # type: ignore[attr-defined]  (no table)
    (tmp_path / "keel.toml").write_text(
        '[secrets.workflows]\nAPI_TOKEN = ["claim_intake", "billing_*"]\nOTHER = ["x"]\n'
    )
    for allowed in ("claim_intake", "billing_daily"):
        outcome = _attempt_of(allowed)
        assert outcome.error is None, outcome.error  # type: ignore[attr-defined]
    refused = _attempt_of("reporting").error  # type: ignore[attr-defined]
    assert refused is not None
    assert refused.type == "keel.runtime.secrets.SecretError"
    assert not refused.retryable
    assert "workflow 'reporting' may not read secret 'API_TOKEN'" in refused.message
    assert "lists claim_intake, billing_*" in refused.message
    assert TOKEN not in refused.message
    (tmp_path / "keel.toml").write_text('[secrets.workflows]\nOTHER = ["x"]\n')
    unlisted = _attempt_of("claim_intake").error  # type: ignore[attr-defined]
    assert "does not list it" in unlisted.message  # with a table, unlisted is refused


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[secrets]\nfiles = "s.toml"\n', "[secrets] has two keys"),
        ("[secrets]\nworkflows = 3\n", "must be a table"),
        ('[secrets.workflows]\nAPI_TOKEN = "claims"\n', "must be a list of workflow names"),
        ('[secrets.workflows]\n"bad-name" = ["x"]\n', "is not a secret name"),
    ],
)
def test_a_wrong_secrets_table_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str, message: str
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    (tmp_path / "keel.toml").write_text(toml)
    error = _attempt_of("claims").error  # type: ignore[attr-defined]
    assert error is not None
    assert message in error.message


def test_a_tests_own_values_skip_the_scope_check_only_for_the_names_it_gave(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``keel.testing.run(secrets=...)``: a value the test gave is its own, not a worker's;
    a worker's secret read beside it is still checked against ``[secrets.workflows]``."""
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    (tmp_path / "keel.toml").write_text('[secrets.workflows]\nAPI_TOKEN = ["someone_else"]\n')
    with supplying({"UNRELATED": "abcd1234"}):
        refused = _attempt_of("onboarding").error  # type: ignore[attr-defined]
    assert refused is not None
    assert "may not read secret 'API_TOKEN'" in refused.message
    with supplying({"API_TOKEN": "given-by-the-test"}):
        outcome = _attempt_of("onboarding")
    assert outcome.error is None  # type: ignore[attr-defined]
