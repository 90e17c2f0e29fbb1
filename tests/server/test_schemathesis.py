"""The API against its own OpenAPI schema, with schemathesis: for every operation,
generated requests (valid ones and ones that break the schema) sent with an admin token
to the app over the conftest's store. No request may get a 5xx; every response must
have a status, content type and body the schema declares; a request that breaks the
schema must get a 4xx.

Path parameters are drawn from the store's runs, nodes and names as well as generated,
so the routes act on real runs (a run cancelled by one example stays cancelled for the
next: the checks hold in any state). Bounded and derandomized, so CI runs the same
examples every time."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from keel.server.limits import MOST_BODY_BYTES
from tests.server.conftest import Api

EXAMPLES = 25
#: the operations are split into this many tests (each takes every SHARDS-th), so xdist
#: runs them side by side and none nears the per-test timeout on a busy machine
SHARDS = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]  # fmt: skip

#: (operation, field, a valid value the store knows): see ``flatmap_body``
REAL_BODIES = [
    ("POST /runs", "workflow", "review"),
    ("POST /workflows", "definition", "name: other\nnodes:\n  - {id: a, task: m:f}\n"),
]


@pytest.fixture
def api_schema(api: Api) -> schemathesis.BaseSchema:
    admin = api.auth("admin")
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app, headers=admin)
    schema.config.update(headers=admin)
    schema.config.generation.update(
        max_examples=EXAMPLES, deterministic=True,
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    )  # fmt: skip
    known = {"run_id": [api.waiting, api.failed, api.paused], "node": ["check", "book", "ping"],
             "name": ["ping", "review", "viewer-1", "review-daily"]}  # fmt: skip

    @schema.hook
    def flatmap_path_parameters(_: Any, path_parameters: dict[str, Any] | None) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        return st.fixed_dictionaries(
            {key: st.sampled_from([value, *known.get(key, ())])
             for key, value in path_parameters.items()}
        )  # fmt: skip

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        """Some bodies name the deployed workflow or hold a valid definition, so starts
        and deploys succeed too (only a field already valid is replaced: a body that
        breaks the schema still does)."""
        label = context.operation.label
        for operation, field, value in REAL_BODIES:
            current = body.get(field) if isinstance(body, dict) else None
            if label == operation and isinstance(current, str) and 0 < len(current) < 1000:
                return st.sampled_from([body, {**body, field: value}])
        return st.just(body)

    return schema


@pytest.mark.parametrize("shard", range(SHARDS))
def test_the_api_keeps_to_its_schema(api_schema: schemathesis.BaseSchema, shard: int) -> None:
    """Each operation, valid and schema-breaking requests, as hypothesis tests run here
    (schemathesis' pytest plugin reaches into pytest's internals, which pytest 9.2
    changed; its Python API does not)."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations[shard::SHARDS]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
            @given(case=strategy)
            def check(case: schemathesis.Case[Any]) -> None:
                response = case.call()
                if response.status_code == 413:  # a field longer than allowed can make
                    assert len(response.request.body or b"") > MOST_BODY_BYTES  # a body
                    return  # too large to read: refused before it is read, as it should
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:  # nothing of it can break the schema (no parameters)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every operation is tried; all failures reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
