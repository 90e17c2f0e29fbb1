"""What schemathesis (``test_schemathesis``) found, pinned one by one: the schema declares
the errors as they are sent, a run's time filters take only what the schema promises, and
revoking an unknown token is a 404."""

from __future__ import annotations

import pytest

from keel.server.problems import MEDIA_TYPE
from tests.server.conftest import Api


def test_the_schema_declares_errors_as_problems(api: Api) -> None:
    schema = api.client.get("/openapi.json", headers=api.auth("viewer")).json()
    assert "HTTPValidationError" not in schema.get("components", {}).get("schemas", {})
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = operation["responses"]["4XX"]["content"]
            assert list(errors) == [MEDIA_TYPE], (method, path)
            assert {"title", "status", "detail"} <= set(errors[MEDIA_TYPE]["schema"]["required"])
            assert "422" not in operation["responses"], (method, path)


def test_a_repeated_start_is_declared(api: Api) -> None:
    schema = api.client.get("/openapi.json", headers=api.auth("viewer")).json()
    assert {"200", "201"} <= set(schema["paths"]["/runs"]["post"]["responses"])


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2025-01-31", "2025-01-31T12:00:00"])
def test_a_time_filter_needs_an_rfc3339_time_with_its_offset(api: Api, value: str) -> None:
    response = api.client.get("/runs", params={"created_after": value},
                              headers=api.auth("viewer"))  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    assert response.json()["errors"][0]["field"] == "query.created_after"


@pytest.mark.parametrize("value", ["2025-01-31T12:00:00Z", "2025-01-31T12:00:00+02:00"])
def test_a_time_filter_with_an_offset_is_taken(api: Api, value: str) -> None:
    response = api.client.get("/runs", params={"created_before": value},
                              headers=api.auth("viewer"))  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["runs"] == []  # every fixture run was made after 2025


def test_revoking_an_unknown_or_revoked_token_is_not_found(api: Api) -> None:
    unknown = api.client.delete("/tokens/nobody", headers=api.auth("admin"))
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"] == MEDIA_TYPE
    assert api.client.delete("/tokens/viewer-1", headers=api.auth("admin")).status_code == 200
    again = api.client.delete("/tokens/viewer-1", headers=api.auth("admin"))
    assert again.status_code == 404
