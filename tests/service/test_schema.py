"""Schemathesis over /openapi.json through the ASGI app: no 5xx, every response matches the schema.

Driven with Hypothesis directly (schemathesis' pytest fixture loader does not run under pytest 9).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from svc_helpers import API_KEY, MODEL

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}


@pytest.fixture(scope="module")
def operations(app, registered):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {f"{op.method.upper()} {op.path}": op for op in (result.ok() for result in schema.get_all_operations())}


def test_every_endpoint_is_covered(operations):
    assert set(operations) == {
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "POST /v1/forecast",
        "POST /v1/forecast/batch",
        "GET /v1/models",
        "GET /v1/models/{name}",
        "POST /v1/models/{name}/reload",
        "GET /v1/models/{name}/scores",
        "POST /v1/classify",
        "GET /v1/series",
        "GET /v1/series/{name}",
        "GET /v1/series/{name}/observations",
        "POST /v1/series/{name}/observations",
        "DELETE /v1/series/{name}",
        "POST /invocations",
        "POST /v1/models/{name}/invocations",
    }


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [
    *[
        (op, POSITIVE)
        for op in (
            "POST /v1/forecast",
            "POST /v1/forecast/batch",
            "GET /v1/models/{name}",
            "POST /v1/models/{name}/reload",
            "GET /v1/models/{name}/scores",
            "GET /v1/models",
            "GET /health",
            "GET /ready",
            "GET /metrics",
        )
    ],
    ("POST /v1/forecast", NEGATIVE),  # only the bodies can be schema-invalid (path parameters are any string)
    ("POST /v1/forecast/batch", NEGATIVE),
    ("POST /invocations", POSITIVE),
    ("POST /invocations", NEGATIVE),
    ("POST /v1/models/{name}/invocations", POSITIVE),
    ("POST /v1/models/{name}/invocations", NEGATIVE),
    ("POST /v1/classify", POSITIVE),
    ("POST /v1/classify", NEGATIVE),
    *[
        (op, POSITIVE)
        for op in (
            "POST /v1/series/{name}/observations",
            "GET /v1/series",
            "GET /v1/series/{name}",
            "GET /v1/series/{name}/observations",
            "DELETE /v1/series/{name}",
        )
    ],
]


@pytest.mark.parametrize("operation, mode", CASES, ids=[f"{op}-{mode.value}" for op, mode in CASES])
def test_api_conforms_to_its_schema(operations, operation, mode):
    op = operations[operation]
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        if mode is GenerationMode.POSITIVE and operation == "POST /v1/forecast" and isinstance(case.body, dict):
            case.body["model"] = MODEL  # reach the model too, not only the 404 of a random name
        if mode is GenerationMode.POSITIVE and operation == "POST /invocations" and isinstance(case.body, dict):
            case.body["params"] = {**(case.body.get("params") or {}), "model": MODEL}  # past the lookup, likewise
        if mode is GenerationMode.POSITIVE and operation.endswith("{name}/invocations"):
            case.path_parameters = {"name": MODEL}
        response = case.call(headers={"X-API-Key": API_KEY})
        if response.status_code == 413:  # a body over SEQCAST_MAX_BODY_BYTES, whatever it holds (documented)
            return
        case.validate_response(response, checks=checks, headers={"X-API-Key": API_KEY})

    run()
