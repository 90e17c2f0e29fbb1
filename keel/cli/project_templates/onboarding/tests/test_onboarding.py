"""The onboarding workflow, run in memory: no database, no worker, no waiting."""

from __future__ import annotations

import json
from pathlib import Path

from onboarding import onboarding

from keel.testing import run

SAMPLE = json.loads((Path(__file__).parents[1] / "input.json").read_text(encoding="utf-8"))


def test_the_sample_customer_is_onboarded() -> None:
    result = run(onboarding, input=SAMPLE)

    assert result.status == "succeeded", result.error
    assert result.output["account"]["email"] == "ada@example.com"
    assert result.output["content"] == ["billing-starter", "reports-starter"]
    assert result.node("welcome").output == "msg-acct-ada"


def test_a_customer_without_interests_gets_the_general_content() -> None:
    result = run(onboarding, input={"email": "bo@example.org"})

    assert result.status == "succeeded", result.error
    assert result.output["account"]["plan"] == "free"
    assert result.output["content"] == ["general-starter"]


def test_a_bad_address_fails_at_once_without_retries() -> None:
    result = run(onboarding, input={"email": "not an address"})

    assert result.status == "failed"
    assert result.node("verify_email").attempts == 1  # InvalidEmail is not retried
    assert result.node("setup_account").status != "succeeded"


def test_a_flaky_mail_service_is_retried() -> None:
    calls: list[str] = []

    def welcome_failing_once(*args: object, **kwargs: object) -> str:
        calls.append("called")
        if len(calls) == 1:
            raise ConnectionError("mail service unavailable")
        return "msg-stubbed"

    result = run(onboarding, input=SAMPLE, stubs={"welcome": welcome_failing_once})

    assert result.status == "succeeded", result.error
    assert result.node("welcome").attempts == 2
    assert result.output["message"] == "msg-stubbed"
