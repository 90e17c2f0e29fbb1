"""Durations as people write them, normalised to seconds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keel.spec.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1d2h", 93600.0),
        (" 2 m ", 120.0),
        ("0s", 0.0),
        ("-5s", -5.0),
        ("+5s", 5.0),
    ],
)
def test_compact_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT5M", 300.0),
        ("pt5m", 300.0),
        ("PT1H30M", 5400.0),
        ("PT0.5S", 0.5),
        ("P1D", 86400.0),
        ("P1DT2H", 93600.0),
        ("P2W", 1209600.0),
    ],
)
def test_iso_8601_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (2.5, 2.5), (0, 0.0), ("10", 10.0), ("1.5", 1.5)],
)
def test_numbers_are_seconds(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert isinstance(result, float)


def test_timedelta() -> None:
    assert parse_duration(timedelta(minutes=2, milliseconds=500)) == 120.5


def test_equal_durations_written_differently_are_equal() -> None:
    assert parse_duration("60s") == parse_duration("1m") == parse_duration("PT1M") == 60.0


FORMS = ("'30s'", "'1h30m'", "'250ms'", "'PT5M'", "number of seconds")


@pytest.mark.parametrize("text", ["abc", "5x", "m5", "5s5", "1h 30", "s", "P", "PT", "5M"])
def test_unreadable_strings_list_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read duration") as raised:
        parse_duration(text)
    message = str(raised.value)
    assert repr(text) in message
    for form in FORMS:
        assert form in message


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_strings(value: str) -> None:
    with pytest.raises(ValueError, match="empty duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False, None, [30], {"s": 30}])
def test_values_of_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", float("inf"), float("nan")])
def test_non_finite_durations_are_refused(value: object) -> None:
    # an infinite timeout has no JSON form, so the spec's version could not be computed
    with pytest.raises(ValueError, match="not a finite number"):
        parse_duration(value)
