"""Schema-based fuzz of the API from its own OpenAPI document (schemathesis): valid and
invalid requests for every operation; the app must never answer 500 nor break its document.

The app runs over the fake Control with one stack deployed, served from a thread because
schemathesis' client is synchronous.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config._checks import PositiveDataAcceptanceConfig
from schemathesis.specs.openapi import checks as openapi_checks

from orchestrator.api.openapi import build_document
from tests.unit.conftest import AUTH, STACK_YAML
from tests.unit.threaded_server import Served, serve_in_thread

schema = schemathesis.openapi.from_dict(build_document())
# Both modes: documents-conforming requests, and requests that break the document on purpose.
schema.config.generation.update(modes=list(schemathesis.GenerationMode), database="none")


def deploy_a(served: Served) -> None:
    # The first deploy starts the loading worker: seconds on a loaded machine.
    response = requests.put(f"{served.url}/v1/stacks/a", data=STACK_YAML,
                            headers={"Content-Type": "application/yaml", **AUTH}, timeout=60)  # a loaded machine: the loader worker may start slowly
    response.raise_for_status()


@pytest.fixture(name="served", scope="module")
def _served() -> Iterator[Served]:
    with serve_in_thread() as served:
        deploy_a(served)
        yield served


# Streams are left out: logs are fuzzed below on their query, events need Redis (their
# input checks are in test_http_api; their replay in tests/integration/test_api_events).
STREAMS = ["/v1/stacks/{stack}/services/{service}/logs", "/v1/events"]


# A request the document calls valid is accepted, or names a stack/service that does not exist
# (404), or clashes with the state (409: nothing to roll back to).
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=["2xx", "404", "409"])
DEPLOY = ("PUT", "/v1/stacks/{stack}")


@schema.exclude(path=STREAMS).parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_document(case: schemathesis.Case, served: Served) -> None:
    # Every check schemathesis has (no 5xx, status codes, content types, response schemas, bad
    # input refused, auth not ignored, …); a deploy body the document calls valid is any text,
    # which the stack-file loader may still refuse (400 invalid_stack_file).
    deploy = (case.operation.method.upper(), case.operation.path) == DEPLOY
    case.call_and_validate(base_url=served.url, headers=AUTH, timeout=30, excluded_checks=[
        openapi_checks.positive_data_acceptance] if deploy else [])


def test_logs_never_fail_the_server(served: Served) -> None:
    """Logs stream (and `follow` never ends), so they are fuzzed on their query alone."""
    deploy_a(served)  # the fuzz above may have sent a DELETE for it
    operation = schema["/v1/stacks/{stack}/services/{service}/logs"]["GET"]
    for query in ({"tail": "x"}, {"follow": "maybe"}, {"format": "xml"}, {"tail": "3"}):
        case = operation.Case(path_parameters={"stack": "a", "service": "web"}, query=query)
        assert case.call(base_url=served.url, headers=AUTH, timeout=30).status_code in (200, 400)
