"""Schema-driven fuzzing (issue bar: "fuzzing the API from its OpenAPI schema finds no 5xx"): schemathesis reads the
app's own /openapi.json and generates requests for every operation, valid and invalid by the schema. Each case is
sent as generated (its random session id is unknown: 404 or a validation error) and again with the id of a real
session, so generated messages and feedback reach the pipeline and the store. In-process over ASGI."""
from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from serving_fixtures import pipeline_fixture  # noqa: F401  (fixture)

from ecrs.serving.app import ServeSettings, create_app


@pytest.fixture
def api(pipeline, tmp_path):
    app = create_app(lambda: pipeline, ServeSettings(db_url=f"sqlite:///{tmp_path / 's.db'}", rate_per_minute=0))
    with TestClient(app) as client:  # runs the lifespan: pipeline and store loaded
        sid = client.post("/sessions").json()["id"]
        client.post(f"/sessions/{sid}/messages", json={"text": "I loved Titanic", "reply": False})
        yield schemathesis.openapi.from_asgi("/openapi.json", app), sid


def test_no_5xx_from_schema_generated_requests(api):
    schema, sid = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6  # sessions, history, messages, stream, feedback, health
    statuses: set[int] = set()

    def send(case) -> None:
        response = case.call()
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:300])
        statuses.add(response.status_code)

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def check(case) -> None:
            send(case)
            if "session_id" in (case.path_parameters or {}):
                case.path_parameters["session_id"] = sid
                send(case)

        check()
    assert {200, 404, 422} <= statuses  # the cases reached the handlers, not only the validators
