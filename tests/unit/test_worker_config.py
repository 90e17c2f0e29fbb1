"""Worker settings: flags > environment > keel.toml > [tool.keel] > defaults, and errors
that name the source and the key."""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from keel.runtime.worker import config as config_module
from keel.runtime.worker.config import (
    ENVIRONMENT,
    FLAGS,
    QUEUE_NAME,
    SWITCH_WORDS,
    WorkerConfig,
    WorkerConfigError,
    load_worker_config,
)
from keel.spec.policies import QueueName

KEYS = ("modules", "queues", "concurrency", "database_url", "allow", "code_wait", "inline",
        "metrics_port", "metrics_host", "log_format")  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(cwd: Path, environ: dict[str, str] | None = None, **flags: Any) -> WorkerConfig:
    return load_worker_config(cwd=cwd, environ=environ or {}, **flags)


def error(cwd: Path, environ: dict[str, str] | None = None, **flags: Any) -> str:
    with pytest.raises(WorkerConfigError) as info:
        load(cwd, environ, **flags)
    return str(info.value)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path.resolve()


# --- defaults and precedence --------------------------------------------------------------


def test_defaults_when_nothing_is_configured(root: Path) -> None:
    config = load(root)
    assert config == WorkerConfig(
        modules=(),
        queues=None,
        concurrency=8,
        database_url=None,
        sources=dict.fromkeys(KEYS, "default"),
        root=None,
    )
    assert config.inline is True


def test_every_key_has_an_environment_variable_and_a_flag() -> None:
    """A key added to one list and not the others would be settable in a file only."""
    assert config_module.KEYS == KEYS
    assert set(ENVIRONMENT) == set(FLAGS) == set(KEYS)


@dataclass(frozen=True)
class Case:
    flag: dict[str, Any]
    env: tuple[str, str]
    keel_toml: str
    pyproject: str
    #: the effective value when the flag, the environment, keel.toml, pyproject is on top
    expected: tuple[Any, Any, Any, Any]


PRECEDENCE = {
    "modules": Case(
        {"modules": ["pkg.flag"]},
        ("KEEL_WORKER_MODULES", "pkg.env"),
        '["pkg.keel"]',
        '["pkg.pyproject"]',
        (("pkg.flag",), ("pkg.env",), ("pkg.keel",), ("pkg.pyproject",)),
    ),
    "queues": Case(
        {"queues": "flag"},
        ("KEEL_QUEUES", "env"),
        '["keel"]',
        '["pyproject"]',
        (("flag",), ("env",), ("keel",), ("pyproject",)),
    ),
    "concurrency": Case({"concurrency": 1}, ("KEEL_CONCURRENCY", "2"), "3", "4", (1, 2, 3, 4)),
    "database_url": Case(
        {"database_url": "sqlite:///flag.db"},
        ("KEEL_DATABASE_URL", "sqlite:///env.db"),
        '"sqlite:///keel.db"',
        '"sqlite:///pyproject.db"',
        ("sqlite:///flag.db", "sqlite:///env.db", "sqlite:///keel.db", "sqlite:///pyproject.db"),
    ),
    "allow": Case(
        {"allow": ["m:flag"]},
        ("KEEL_ALLOW", "m:env"),
        '["m:keel"]',
        '["m:pyproject"]',
        (("m:flag",), ("m:env",), ("m:keel",), ("m:pyproject",)),
    ),
    "code_wait": Case({"code_wait": 1.0}, ("KEEL_CODE_WAIT", "2"), "3", "4.5", (1, 2, 3, 4.5)),
    # the values alternate, so each source shows only if it really is the one on top
    "inline": Case(
        {"inline": False}, ("KEEL_INLINE", "yes"), "false", "true", (False, True, False, True)
    ),
    "metrics_port": Case(
        {"metrics_port": 9101},
        ("KEEL_METRICS_PORT", "9102"),
        "9103",
        "9104",
        (9101, 9102, 9103, 9104),
    ),
    "metrics_host": Case(
        {"metrics_host": "10.0.0.1"},
        ("KEEL_METRICS_HOST", "10.0.0.2"),
        '"10.0.0.3"',
        '"::1"',
        ("10.0.0.1", "10.0.0.2", "10.0.0.3", "::1"),
    ),
    "log_format": Case(
        {"log_format": "json"},
        ("KEEL_LOG_FORMAT", "text"),
        '"json"',
        '"text"',
        ("json", "text", "json", "text"),
    ),
}


@pytest.mark.parametrize("top", [0, 1, 2, 3], ids=["flag", "environment", "keel.toml", "pyproject"])
@pytest.mark.parametrize("key", KEYS)
def test_each_source_overrides_every_source_below_it(root: Path, key: str, top: int) -> None:
    """All sources below ``top`` set the key too; only the top one may show (no merging)."""
    case = PRECEDENCE[key]
    flags = case.flag if top == 0 else {}
    environ = dict([case.env]) if top <= 1 else {}
    if top <= 2:
        write(root / "keel.toml", f"{key} = {case.keel_toml}\n")
    write(root / "pyproject.toml", f"[tool.keel]\n{key} = {case.pyproject}\n")

    config = load(root, environ, **flags)

    assert getattr(config, key) == case.expected[top]
    sources = [
        "flag",
        f"environment ({case.env[0]})",
        f"keel.toml ({root / 'keel.toml'})",
        f"pyproject.toml [tool.keel] ({root / 'pyproject.toml'})",
    ]
    assert config.sources[key] == sources[top]
    assert {k: v for k, v in config.sources.items() if k != key} == dict.fromkeys(
        set(KEYS) - {key}, "default"
    )


def test_keel_toml_wins_over_tool_keel_beside_it_which_fills_the_gaps(root: Path) -> None:
    write(root / "keel.toml", 'queues = ["fast"]\nconcurrency = 2\n')
    write(
        root / "pyproject.toml",
        """\
        [project]
        name = "demo"

        [tool.keel]
        concurrency = 16
        modules = ["pkg.flows"]
        database_url = "sqlite:///runs.db"
        """,
    )
    config = load(root)
    assert (config.queues, config.concurrency) == (("fast",), 2)
    assert (config.modules, config.database_url) == (("pkg.flows",), "sqlite:///runs.db")
    keel, pyproject = root / "keel.toml", root / "pyproject.toml"
    assert config.sources == {
        "queues": f"keel.toml ({keel})",
        "concurrency": f"keel.toml ({keel})",
        "modules": f"pyproject.toml [tool.keel] ({pyproject})",
        "database_url": f"pyproject.toml [tool.keel] ({pyproject})",
        "allow": "default",
        "code_wait": "default",
        "inline": "default",
        "metrics_port": "default",
        "metrics_host": "default",
        "log_format": "default",
    }
    assert config.root == root


def test_an_empty_environment_variable_counts_as_unset(root: Path) -> None:
    write(root / "keel.toml", 'queues = ["fast"]\nconcurrency = 2\n')
    config = load(root, {"KEEL_QUEUES": "", "KEEL_CONCURRENCY": "  ", "KEEL_DATABASE_URL": ""})
    assert (config.queues, config.concurrency, config.database_url) == (("fast",), 2, None)


def test_without_arguments_it_reads_the_current_folder_and_process_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(root / "keel.toml", 'queues = ["fast"]\n')
    monkeypatch.chdir(root)
    for name in ("KEEL_WORKER_MODULES", "KEEL_QUEUES", "KEEL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEL_CONCURRENCY", "3")
    config = load_worker_config()
    assert (config.queues, config.concurrency, config.root) == (("fast",), 3, root)
    assert config.sources["concurrency"] == "environment (KEEL_CONCURRENCY)"


# --- finding the config file ----------------------------------------------------------------


def test_walks_up_from_a_subfolder_and_resolves_files_against_the_config_folder(
    root: Path,
) -> None:
    write(root / "keel.toml", 'modules = ["flows.py"]\n')
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    config = load(sub)
    assert config.root == root
    assert config.modules == (str(root / "flows.py"),)
    assert config.sources["modules"] == f"keel.toml ({root / 'keel.toml'})"


def test_a_pyproject_without_tool_keel_does_not_stop_the_walk(root: Path) -> None:
    write(root / "pyproject.toml", "[tool.keel]\nconcurrency = 5\n")
    write(
        root / "a" / "pyproject.toml", '[project]\nname = "inner"\n\n[tool.ruff]\nline-length = 9\n'
    )
    config = load(root / "a")
    assert config.concurrency == 5
    assert config.root == root


def test_the_nearest_config_folder_wins_and_outer_files_are_not_merged(root: Path) -> None:
    write(root / "keel.toml", 'queues = ["outer"]\nconcurrency = 3\n')
    write(root / "a" / "pyproject.toml", "[tool.keel]\nconcurrency = 5\n")
    sub = root / "a" / "b"
    sub.mkdir()
    config = load(sub)
    assert config.root == root / "a"
    assert (config.concurrency, config.queues) == (5, None)
    assert config.sources["queues"] == "default"


def test_an_empty_keel_toml_still_marks_the_config_folder(root: Path) -> None:
    write(root / "pyproject.toml", "[tool.keel]\nconcurrency = 5\n")
    write(root / "a" / "keel.toml", "# nothing yet\n")
    config = load(root / "a")
    assert (config.root, config.concurrency) == (root / "a", 8)


# --- modules ----------------------------------------------------------------------------


def test_file_paths_in_a_config_file_are_relative_to_its_folder(root: Path) -> None:
    write(
        root / "proj" / "keel.toml",
        """\
        modules = [
            "flows.py",
            "specs/nightly.yaml",
            "../shared/common.yml",
            "lib/tasks",
            "pkg.flows",
            "flows",
        ]
        """,
    )
    (root / "proj" / "deep").mkdir()
    config = load(root / "proj" / "deep")
    assert config.modules == (
        str(root / "proj" / "flows.py"),
        str(root / "proj" / "specs" / "nightly.yaml"),
        str(root / "shared" / "common.yml"),
        str(root / "proj" / "lib" / "tasks"),
        "pkg.flows",
        "flows",
    )


def test_file_paths_from_flags_and_environment_are_relative_to_the_current_folder(
    root: Path,
) -> None:
    write(root / "keel.toml", "")
    here = root / "sub"
    here.mkdir()
    from_flag = load(here, modules=["flows.py", "pkg.flows"])
    assert from_flag.modules == (str(here / "flows.py"), "pkg.flows")
    from_env = load(here, {"KEEL_WORKER_MODULES": " jobs/a.yaml ,, pkg.b,"})
    assert from_env.modules == (str(here / "jobs" / "a.yaml"), "pkg.b")


def test_dotted_module_names_are_kept_as_written(root: Path) -> None:
    write(root / "pyproject.toml", '[tool.keel]\nmodules = ["company.flows.billing"]\n')
    assert load(root).modules == ("company.flows.billing",)


# --- queues ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    ['["fast", "slow:gpu"]', '"fast,slow:gpu"', '" fast , ,slow:gpu,"', '["fast", "", "slow:gpu"]'],
)
def test_queues_in_a_file_as_a_list_or_a_comma_separated_string(root: Path, literal: str) -> None:
    write(root / "keel.toml", f"queues = {literal}\n")
    assert load(root).queues == ("fast", "slow:gpu")


def test_queues_from_environment_and_flag_drop_empty_entries(root: Path) -> None:
    assert load(root, {"KEEL_QUEUES": "a,,b,"}).queues == ("a", "b")
    assert load(root, queues=" q1 ,q2,").queues == ("q1", "q2")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("default", True),
        ("a.b:c-d_e", True),
        ("x" * 100, True),
        ("x" * 101, False),
        ("has space", False),
        ("slash/es", False),
        ("ünïcode", False),
        ("semi;colon", False),
    ],
)
def test_queue_names_follow_the_spec_rule(root: Path, name: str, valid: bool) -> None:
    try:
        TypeAdapter(QueueName).validate_python(name)
        spec_accepts = True
    except ValidationError:
        spec_accepts = False
    assert spec_accepts is valid
    assert (QUEUE_NAME.match(name) is not None) is valid
    if valid:
        assert load(root, queues=name).queues == (name,)
    else:
        assert "invalid queue name" in error(root, queues=name)


# --- errors ------------------------------------------------------------------------------


def test_the_error_type_is_a_value_error() -> None:
    assert issubclass(WorkerConfigError, ValueError)


@pytest.mark.parametrize(
    ("literal", "shown"),
    [('"eight"', "'eight'"), ("0", "0"), ("-1", "-1"), ("true", "True"), ("1.5", "1.5")],
)
def test_bad_concurrency_in_keel_toml(root: Path, literal: str, shown: str) -> None:
    path = write(root / "keel.toml", f"concurrency = {literal}\n")
    assert error(root) == f"keel.toml ({path}): concurrency must be an integer >= 1, got {shown}"


def test_bad_concurrency_in_tool_keel(root: Path) -> None:
    path = write(root / "pyproject.toml", "[tool.keel]\nconcurrency = 0\n")
    message = error(root)
    assert f"pyproject.toml [tool.keel] ({path})" in message
    assert "concurrency must be an integer >= 1, got 0" in message


@pytest.mark.parametrize(("value", "shown"), [("eight", "'eight'"), ("0", "0"), ("-2", "'-2'")])
def test_bad_concurrency_in_environment(root: Path, value: str, shown: str) -> None:
    assert error(root, {"KEEL_CONCURRENCY": value}) == (
        f"environment (KEEL_CONCURRENCY): concurrency must be an integer >= 1, got {shown}"
    )


def test_bad_concurrency_flag(root: Path) -> None:
    assert error(root, concurrency=0) == (
        "flag (--concurrency): concurrency must be an integer >= 1, got 0"
    )


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ('["ok", "not ok"]', "invalid queue name 'not ok'"),
        ("[]", "names no queue"),
        ('""', "names no queue"),
        ('",, ,"', "names no queue"),
        ("5", "must be a list of strings or a comma-separated string, got 5"),
        ('["a", 1]', "entries must be strings, got 1"),
    ],
)
def test_bad_queues_in_a_file(root: Path, literal: str, problem: str) -> None:
    path = write(root / "keel.toml", f"queues = {literal}\n")
    message = error(root)
    assert message.startswith(f"keel.toml ({path}): queues ")
    assert problem in message


def test_bad_queues_from_environment_and_flag(root: Path) -> None:
    message = error(root, {"KEEL_QUEUES": "a,b c"})
    assert message.startswith("environment (KEEL_QUEUES): queues ")
    assert "'b c'" in message
    assert error(root, {"KEEL_QUEUES": ", ,"}).startswith(
        "environment (KEEL_QUEUES): queues names no queue"
    )
    assert error(root, queues="").startswith("flag (--queues): queues names no queue")
    assert error(root, queues=",").startswith("flag (--queues): queues names no queue")


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ('"flows.py"', "must be a list of strings, got 'flows.py'"),
        ('["ok.py", 3]', "entries must be strings, got 3"),
        ("[]", "names no file or module"),
        ('["", " "]', "names no file or module"),
    ],
)
def test_bad_modules_in_a_file(root: Path, literal: str, problem: str) -> None:
    path = write(root / "pyproject.toml", f"[tool.keel]\nmodules = {literal}\n")
    message = error(root)
    assert message.startswith(f"pyproject.toml [tool.keel] ({path}): modules ")
    assert problem in message


def test_bad_modules_from_environment_and_flag(root: Path) -> None:
    assert error(root, {"KEEL_WORKER_MODULES": " , "}).startswith(
        "environment (KEEL_WORKER_MODULES): modules names no file or module"
    )
    assert error(root, modules=[" "]).startswith("flag (MODULES): modules names no file")


def test_modules_flag_given_as_one_string_is_a_programming_error(root: Path) -> None:
    with pytest.raises(TypeError, match="not one string"):
        load(root, modules="flows.py")


@pytest.mark.parametrize(("literal", "shown"), [("5", "5"), ('""', "''"), ('"  "', "'  '")])
def test_bad_database_url_in_a_file(root: Path, literal: str, shown: str) -> None:
    path = write(root / "keel.toml", f"database_url = {literal}\n")
    assert error(root) == (
        f"keel.toml ({path}): database_url must be a non-empty string, got {shown}"
    )


def test_empty_database_url_flag(root: Path) -> None:
    assert error(root, database_url="").startswith("flag (--database-url): database_url must")


@pytest.mark.parametrize("name", ["keel.toml", "pyproject.toml"])
def test_invalid_toml_names_the_file_and_the_parser_message(root: Path, name: str) -> None:
    text = "concurrency = = 3\n"
    path = write(root / name, text)
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    message = error(root)
    assert message.startswith(f"{name} ({path}): invalid TOML: ")
    assert str(parser.value) in message


def test_invalid_toml_in_a_pyproject_on_the_way_up_is_reported(root: Path) -> None:
    path = write(root / "a" / "pyproject.toml", "[project\n")
    assert f"pyproject.toml ({path}): invalid TOML" in error(root / "a")


@pytest.mark.parametrize(
    ("name", "text", "label"),
    [
        ("keel.toml", "concurency = 8\n", "keel.toml"),
        ("pyproject.toml", "[tool.keel]\nconcurency = 8\n", "pyproject.toml [tool.keel]"),
    ],
)
def test_unknown_keys_are_errors_listing_the_known_ones(
    root: Path, name: str, text: str, label: str
) -> None:
    path = write(root / name, text)
    assert error(root) == (
        f"{label} ({path}): unknown key 'concurency' "
        "(known keys: allow, code_wait, concurrency, database_url, inline, log_format, "
        "metrics_host, metrics_port, modules, queues)"
    )


def test_tool_keel_must_be_a_table(root: Path) -> None:
    path = write(root / "pyproject.toml", "[tool]\nkeel = 5\n")
    assert error(root) == f"pyproject.toml [tool.keel] ({path}): tool.keel must be a table, got 5"


def test_a_broken_file_is_reported_even_when_flags_override_the_key(root: Path) -> None:
    path = write(root / "keel.toml", 'concurrency = "eight"\n')
    assert f"keel.toml ({path}): concurrency" in error(root, concurrency=4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('allow = "m:f"', "allow must be a list of 'module:function' strings"),
        ('allow = ["os.system"]', "allow has 'os.system', which is not an import path"),
        ("allow = [1]", "allow entries must be strings, got 1"),
        ("code_wait = -1", "code_wait must be a number of seconds >= 0, got -1"),
        ("code_wait = true", "code_wait must be a number of seconds >= 0, got True"),
    ],
)
def test_a_wrong_allow_or_code_wait_names_the_key_and_the_fix(
    root: Path, text: str, message: str
) -> None:
    path = write(root / "keel.toml", text + "\n")
    assert error(root).startswith(f"keel.toml ({path}): {message}")


# --- inline ------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), sorted(SWITCH_WORDS.items()))
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title])
def test_inline_from_the_environment_takes_each_on_off_word_in_any_case(
    root: Path, word: str, expected: bool, spelling: Callable[[str], str]
) -> None:
    config = load(root, {"KEEL_INLINE": f" {spelling(word)} "})
    assert config.inline is expected
    assert config.sources["inline"] == "environment (KEEL_INLINE)"


def test_the_on_off_words_are_the_documented_ones() -> None:
    assert SWITCH_WORDS == {"true": True, "1": True, "yes": True, "on": True,
                            "false": False, "0": False, "no": False, "off": False}  # fmt: skip


def test_an_empty_inline_variable_counts_as_unset(root: Path) -> None:
    write(root / "keel.toml", "inline = false\n")
    config = load(root, {"KEEL_INLINE": " "})
    assert config.inline is False
    assert config.sources["inline"] == f"keel.toml ({root / 'keel.toml'})"


def test_each_inline_flag_overrides_the_environment_and_the_file(root: Path) -> None:
    write(root / "keel.toml", "inline = false\n")
    assert load(root, {"KEEL_INLINE": "off"}, inline=True).inline is True
    assert load(root, {"KEEL_INLINE": "on"}, inline=False).inline is False
    assert load(root, {"KEEL_INLINE": "on"}).inline is True
    assert load(root).inline is False


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "nein", "true!"])
def test_a_wrong_inline_variable_names_it_and_the_accepted_words(root: Path, value: str) -> None:
    assert error(root, {"KEEL_INLINE": value}) == (
        "environment (KEEL_INLINE): inline must be true or false (or 1/0, yes/no, on/off, "
        f"in any case), got {value!r}"
    )


def test_a_wrong_inline_variable_is_reported_even_when_the_flag_overrides_it(root: Path) -> None:
    assert error(root, {"KEEL_INLINE": "maybe"}, inline=False).startswith(
        "environment (KEEL_INLINE): inline must be"
    )


@pytest.mark.parametrize(
    ("name", "text", "label", "shown"),
    [
        ("keel.toml", 'inline = "false"\n', "keel.toml", "'false'"),
        ("keel.toml", "inline = 0\n", "keel.toml", "0"),
        ("pyproject.toml", "[tool.keel]\ninline = 1\n", "pyproject.toml [tool.keel]", "1"),
        ("pyproject.toml", '[tool.keel]\ninline = "on"\n', "pyproject.toml [tool.keel]", "'on'"),
    ],
)
def test_a_non_boolean_inline_in_a_file_names_the_file_and_the_key(
    root: Path, name: str, text: str, label: str, shown: str
) -> None:
    path = write(root / name, text)
    assert error(root) == (
        f"{label} ({path}): inline must be a boolean (true or false, unquoted), got {shown}"
    )


def test_a_non_boolean_inline_flag_names_the_flag(root: Path) -> None:
    assert error(root, inline="no").startswith("flag (--inline/--no-inline): inline must be")


# --- metrics --------------------------------------------------------------------------------


def test_metrics_are_off_and_on_the_loopback_by_default(root: Path) -> None:
    config = load(root)
    assert (config.metrics_port, config.metrics_host) == (None, "127.0.0.1")


@pytest.mark.parametrize(
    ("source", "shown"),
    [("keel.toml", "0"), ("keel.toml", "65536"), ("keel.toml", "true"), ("keel.toml", '"9100"'),
     ("environment", "'http'"), ("environment", "0"), ("flag", "70000")],
)  # fmt: skip
def test_a_wrong_metrics_port_names_its_source_and_the_range(
    root: Path, source: str, shown: str
) -> None:
    message = "metrics_port must be a port number from 1 to 65535, got"
    if source == "keel.toml":
        path = write(root / "keel.toml", f"metrics_port = {shown}\n")
        expected = {"0": "0", "65536": "65536", "true": "True", '"9100"': "'9100'"}[shown]
        assert error(root) == f"keel.toml ({path}): {message} {expected}"
    elif source == "environment":
        value = shown.strip("'")
        assert error(root, {"KEEL_METRICS_PORT": value}) == (
            f"environment (KEEL_METRICS_PORT): {message} {int(value) if value.isdigit() else shown}"
        )
    else:
        assert error(root, metrics_port=int(shown)) == (f"flag (--metrics-port): {message} {shown}")


@pytest.mark.parametrize("literal", ['""', '"  "', "8", '"a b"'])
def test_a_wrong_metrics_host_names_the_key(root: Path, literal: str) -> None:
    path = write(root / "keel.toml", f"metrics_host = {literal}\n")
    assert error(root).startswith(f"keel.toml ({path}): metrics_host must be an address")
