"""Schemathesis against the API in process: every operation, every check, a seeded small budget.

No operation may answer 5xx, and every response (errors included) must match the OpenAPI
document: its status codes, headers, content types and bodies."""

from __future__ import annotations

import pytest
import schemathesis

from tests.services.http.test_auth import EXPECTED
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from tests.services.http.test_hostile import _app

EXAMPLES = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app, ledger, secrets = _app(
        tmp_path_factory.mktemp("schemathesis"), learning=True, per_token="100000 per second",
        failed_auth_per_client="100000 per second",
    )
    yield app, secrets
    ledger.dispose()


@pytest.mark.timeout(180)
def test_every_operation_conforms_to_the_openapi_document(world):
    app, secrets = world
    with TestClient(app):  # the lifespan: the runtime, the registry and the learning loop
        _run(app, secrets)


def _run(app, secrets) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {secrets['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    seen = {(op.method.upper(), op.path) for op in operations}
    assert seen == set(EXPECTED) | {("GET", "/metrics")}  # every route of test_auth.py's matrix, and the scrape
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers=headers)

        conforms()
