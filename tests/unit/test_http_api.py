"""The HTTP API over a fake Control: every route, every error class, the token rule, and the
OpenAPI document against the router."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api import check_exposure, make_app
from orchestrator.api.openapi import build_document
from orchestrator.views import LogLine
from orchestrator.errors import UserError
from orchestrator.settings import Settings
from tests.unit.conftest import AUTH, STACK_YAML, TOKEN
from tests.unit.fake_control import FakeControl

YAML = {"Content-Type": "application/yaml"}


async def deploy(client: TestClient, stack: str = "shop", text: str = STACK_YAML) -> Any:
    response = await client.put(f"/v1/stacks/{stack}", data=text, headers=YAML)
    return response.status, await response.json()


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    return body["error"]


# ---------------------------------------------------------------------------- deploy


async def test_deploy_yaml_creates_then_reports_unchanged(client: TestClient) -> None:
    assert await deploy(client) == (201, {
        "stack": "shop", "result": "created", "changed_services": ["web", "worker"], "warnings": []})
    status, body = await deploy(client)
    assert (status, body["result"]) == (200, "unchanged")


async def test_deploy_json_body_sends_files_env_and_base_dir(client: TestClient,
                                                            control: FakeControl) -> None:
    override = "services:\n  web:\n    image: ${IMAGE}\n"
    response = await client.put("/v1/stacks/shop", json={
        "files": [{"name": "a.yml", "content": STACK_YAML}, {"name": "b.yml", "content": override}],
        "env": {"IMAGE": "nginx"}, "base_dir": "/srv/shop"})
    assert response.status == 201
    assert control.specs["shop"].services["web"].image == "nginx"


async def test_deploy_returns_the_loaders_warnings(client: TestClient) -> None:
    text = "services:\n  web:\n    image: x\n    deploy:\n      placement: {constraints: [a==b]}\n"
    status, body = await deploy(client, text=text)
    assert status == 201
    assert [w.split(":")[0] for w in body["warnings"]] == ["services.web.deploy.placement"]


async def test_bad_stack_file_is_400_with_every_problem_path_and_line(
        client: TestClient, control: FakeControl) -> None:
    text = STACK_YAML + "  db:\n    image: redis\n    bogus: 1\n    deploy:\n      replicas: -1\n"
    response = await client.put("/v1/stacks/shop", data=text, headers=YAML)
    error = await error_of(response, 400)
    assert error["code"] == "invalid_stack_file"
    assert error["path"] == "services.db.bogus"
    assert [(p["path"], p["line"]) for p in error["problems"]] == [
        ("services.db.bogus", 10), ("services.db.deploy.replicas", 12)]
    assert control.specs == {}  # nothing deployed


async def test_deploy_checks_what_only_a_deploy_needs(client: TestClient, control: FakeControl, tmp_path: Any) -> None:
    """A secret's missing file loads in `orchestrator config` (a warning) but fails a deploy,
    at its key path (docs/stackfile.md)."""
    text = "services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./later.txt\n"
    response = await client.put("/v1/stacks/shop", json={"files": [{"name": "a.yml", "content": text}], "base_dir": str(tmp_path)})
    error = await error_of(response, 400)
    assert [(p["path"], p["line"], p["message"]) for p in error["problems"]] == [
        ("secrets.s.file", 7, f"file {tmp_path / 'later.txt'} does not exist")]
    assert control.specs == {}


@pytest.mark.parametrize(("body", "path"), [
    pytest.param({"files": []}, "files", id="no-files"),
    pytest.param({"files": [{"name": "a"}]}, "files[0].content", id="no-content"),
    pytest.param({"files": [{"name": "", "content": ""}]}, "files[0].name", id="empty-name"),
    pytest.param({"files": [{"name": "a", "content": "x"}], "env": {"A": 1}}, "env.A", id="env-int"),
    pytest.param({"files": [{"name": "a", "content": "x"}], "base_dir": "rel"}, "base_dir",
                 id="relative-base-dir"),
    pytest.param({"files": [{"name": "a", "content": "x"}], "extra": 1}, "extra", id="unknown"),
    pytest.param([1], None, id="not-an-object"),
])
async def test_bad_deploy_body_names_the_field(client: TestClient, body: Any, path: str | None) -> None:
    error = await error_of(await client.put("/v1/stacks/shop", json=body), 400)
    assert error.get("path") == path


async def test_deploy_rejects_bad_json_and_unknown_content_type(client: TestClient) -> None:
    bad = await client.put("/v1/stacks/shop", data="{", headers={"Content-Type": "application/json"})
    assert (await error_of(bad, 400))["code"] == "invalid_json"
    other = await client.put("/v1/stacks/shop", data=b"x", headers={"Content-Type": "image/png"})
    assert (await error_of(other, 415))["code"] == "unsupported_media_type"
    binary = await client.put("/v1/stacks/shop", data=b"\xff\xfe", headers=YAML)
    assert (await error_of(binary, 400))["code"] == "invalid_encoding"


async def test_body_over_the_limit_is_413(client: TestClient) -> None:
    response = await client.put("/v1/stacks/shop", data="#" * (65 * 1024), headers=YAML)
    assert (await error_of(response, 413))["code"] == "body_too_large"


@pytest.mark.parametrize("name", ["Shop", "-x", "a" * 64, "a.b", "%C3%A9"])
async def test_bad_names_are_400(client: TestClient, name: str) -> None:
    error = await error_of(await client.get(f"/v1/stacks/{name}/services"), 400)
    assert (error["code"], error["path"]) == ("invalid_name", "stack")


# ---------------------------------------------------------------------------- reads


async def test_list_and_inspect(client: TestClient) -> None:
    assert await (await client.get("/v1/stacks")).json() == []
    await deploy(client)
    [stack] = await (await client.get("/v1/stacks")).json()
    assert (stack["name"], stack["services"], stack["replicas_desired"]) == ("shop", 2, 3)
    detail = await (await client.get("/v1/stacks/shop")).json()
    assert detail["spec"]["services"]["web"]["replicas"] == 2
    assert detail["summary"]["name"] == "shop"
    assert [s["name"] for s in detail["services"]] == ["web", "worker"]


async def test_services_and_tasks(client: TestClient) -> None:
    await deploy(client)
    services = await (await client.get("/v1/stacks/shop/services")).json()
    assert [(s["name"], s["replicas_desired"], s["replicas_running"]) for s in services] == [
        ("web", 2, 2), ("worker", 1, 1)]
    current = await (await client.get("/v1/stacks/shop/tasks")).json()
    assert [t["current"] for t in current] == [True] * 3
    everything = await (await client.get("/v1/stacks/shop/tasks?all=true")).json()
    assert len(everything) == 6
    error = await error_of(await client.get("/v1/stacks/shop/tasks?all=maybe"), 400)
    assert error["path"] == "all"


@pytest.mark.parametrize("path", [
    "/v1/stacks/nope", "/v1/stacks/nope/services", "/v1/stacks/nope/tasks",
    "/v1/stacks/nope/services/web/logs",
])
async def test_unknown_stack_is_404(client: TestClient, path: str) -> None:
    error = await error_of(await client.get(path), 404)
    assert (error["code"], error["path"]) == ("unknown_stack", "stack")


async def test_unknown_route_and_method(client: TestClient) -> None:
    assert (await error_of(await client.get("/v2/nothing"), 404))["code"] == "not_found"
    response = await client.post("/v1/stacks")
    assert (await error_of(response, 405))["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET"


# ---------------------------------------------------------------------------- changes


async def test_scale(client: TestClient, control: FakeControl) -> None:
    await deploy(client)
    response = await client.post("/v1/stacks/shop/scale", json={"web": 5, "worker": 0})
    assert response.status == 200
    assert control.counts["shop"] == {"web": 5, "worker": 0}
    error = await error_of(await client.post("/v1/stacks/shop/scale", json={"db": 1}), 404)
    assert error["code"] == "unknown_service"
    assert control.counts["shop"] == {"web": 5, "worker": 0}


@pytest.mark.parametrize(("body", "path"), [
    pytest.param({"web": -1}, "web", id="negative"),
    pytest.param({"web": 1.5}, "web", id="float"),
    pytest.param({"web": True}, "web", id="bool"),
    pytest.param({"web": "3"}, "web", id="string"),
    pytest.param({"-web": 3}, "-web", id="bad-name"),
    pytest.param({"web\n": 3}, "web\n", id="trailing-newline"),
    pytest.param({}, None, id="empty"),
    pytest.param([3], None, id="list"),
])
async def test_scale_counts_are_validated(client: TestClient, body: Any, path: str | None) -> None:
    await deploy(client)
    error = await error_of(await client.post("/v1/stacks/shop/scale", json=body), 400)
    assert error.get("path") == path


async def test_rollback_conflicts_without_a_previous_spec(client: TestClient,
                                                          control: FakeControl) -> None:
    await deploy(client)
    url = "/v1/stacks/shop/services/web/rollback"
    assert (await error_of(await client.post(url), 409))["code"] == "conflict"
    await deploy(client, text=STACK_YAML.replace("image: busybox", "image: v2", 1))
    assert (await client.post(url)).status == 202
    assert control.specs["shop"].services["web"].image == "busybox"
    missing = await client.post("/v1/stacks/shop/services/db/rollback")
    assert (await error_of(missing, 404))["code"] == "unknown_service"


async def test_remove(client: TestClient, control: FakeControl) -> None:
    await deploy(client)
    response = await client.delete("/v1/stacks/shop?volumes=true")
    assert response.status == 200
    assert await response.json() == {"stack": "shop", "removed": True, "volumes": True,
                                     "state": "removed", "message": ""}
    assert control.removed_volumes == ["shop"]
    assert (await error_of(await client.delete("/v1/stacks/shop"), 404))["code"] == "unknown_stack"


async def test_remove_still_refused_is_202_with_the_reason(client: TestClient, control: FakeControl) -> None:
    await deploy(client)
    control.refusing_removal["shop"] = "device or resource busy"
    response = await client.delete("/v1/stacks/shop")
    assert response.status == 202
    assert await response.json() == {"stack": "shop", "removed": False, "volumes": False,
                                     "state": "removing", "message": "device or resource busy"}


# ---------------------------------------------------------------------------- logs, health, metrics


async def test_logs_as_json_lines_and_text(client: TestClient, control: FakeControl) -> None:
    await deploy(client)
    control.log_lines = [LogLine(1, "t01web", "stdout", "hello"), LogLine(2, "t02web", "stderr", "oops\n")]
    response = await client.get("/v1/stacks/shop/services/web/logs")
    assert response.content_type == "application/x-ndjson"
    lines = [json.loads(x) for x in (await response.text()).splitlines()]
    assert [(x["slot"], x["text"]) for x in lines] == [(1, "hello"), (2, "oops\n")]
    text = await (await client.get("/v1/stacks/shop/services/web/logs?format=text&tail=1")).text()
    assert text == "shop_web.2.t02web | oops\n"
    error = await error_of(await client.get("/v1/stacks/shop/services/db/logs"), 404)
    assert error["code"] == "unknown_service"
    error = await error_of(await client.get("/v1/stacks/shop/services/web/logs?tail=-1"), 400)
    assert error["path"] == "tail"


async def test_health_is_503_when_the_engine_is_down(client: TestClient, control: FakeControl) -> None:
    assert (await client.get("/v1/health")).status == 200
    control.healthy = False
    response = await client.get("/v1/health")
    assert response.status == 503
    assert (await response.json())["engine_error"] == "engine not reachable"


async def test_metrics_show_replicas_per_service(client: TestClient) -> None:
    await deploy(client)
    await client.post("/v1/stacks/shop/scale", json={"web": 4})
    response = await client.get("/metrics")
    text = await response.text()
    assert response.content_type == "text/plain"
    assert 'orchestrator_replicas_desired{service="web",stack="shop"} 4.0' in text
    assert "orchestrator_reconcile_pass_seconds_bucket" in text
    await client.delete("/v1/stacks/shop")
    assert 'stack="shop"' not in (await (await client.get("/metrics")).text()).split(
        "orchestrator_http_requests")[0]


async def test_events_without_redis_is_503(client: TestClient) -> None:
    assert (await error_of(await client.get("/v1/events"), 503))["code"] == "events_unavailable"
    assert (await error_of(await client.get("/v1/events?since=x"), 400))["path"] == "since"


# ---------------------------------------------------------------------------- errors and auth


class Exploding(FakeControl):
    def stacks(self) -> Any:
        raise RuntimeError("secret internals")


async def test_unexpected_failure_is_a_bare_500() -> None:
    app = make_app(Exploding(), Settings(token=TOKEN))
    async with TestClient(TestServer(app), headers=AUTH) as client:
        error = await error_of(await client.get("/v1/stacks"), 500)
    assert "secret" not in error["message"]


async def test_token_is_required_everywhere_but_health(control: FakeControl) -> None:
    app = make_app(control, Settings(token="s3cret"))
    async with TestClient(TestServer(app)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = await client.get("/v1/stacks", headers=headers)
            assert (await error_of(response, 401))["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/v1/openapi.json")).status == 401
        assert (await client.get("/v1/health")).status == 200
        ok = await client.get("/v1/stacks", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200


async def test_health_tells_reasons_only_to_an_authenticated_caller(control: FakeControl) -> None:
    """The reasons name addresses (Redis host:port, the engine's socket): not for anyone."""
    control.healthy = False
    app = make_app(control, Settings(token="s3cret"))
    async with TestClient(TestServer(app)) as client:
        anonymous = await client.get("/v1/health")
        assert (anonymous.status, await anonymous.json()) == (503, {"engine": False, "redis": True})
        known = await client.get("/v1/health", headers={"Authorization": "Bearer s3cret"})
        assert (await known.json())["engine_error"] == "engine not reachable"


async def raw_status(client: TestClient, *header_lines: bytes) -> int:
    """Send GET /v1/stacks with these header lines byte for byte; the answer's status."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(b"GET /v1/stacks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n")
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


@pytest.mark.parametrize("header", [
    pytest.param(b"Authorization: Bearer \xff\xfe", id="invalid-utf8"),
    pytest.param("Authorization: Bearer sécret".encode(), id="non-ascii"),
    pytest.param(b"Authorization: Bearer \xff" + TOKEN.encode(), id="token-after-a-bad-byte"),
    pytest.param(b"Authorization:", id="empty"),
    pytest.param(b"Authorization: Bearer", id="scheme-only"),
    pytest.param(TOKEN.encode().join([b"Authorization: ", b""]), id="no-scheme"),
    pytest.param(b"Authorization: Basic " + TOKEN.encode(), id="other-scheme"),
    pytest.param(b"Authorization: Bearer " + b"x" * 8000, id="huge"),
    pytest.param(b"Authorization: Bearer " + TOKEN.encode()[:-1], id="prefix-of-the-token"),
    pytest.param(b"Authorization: Bearer " + TOKEN.encode() + b"x", id="token-and-more"),
])
async def test_bad_credentials_are_401_never_500(client: TestClient, header: bytes) -> None:
    assert await raw_status(client, header) == 401


async def test_the_token_passes_byte_for_byte(client: TestClient) -> None:
    assert await raw_status(client, b"Authorization: bearer  " + TOKEN.encode() + b" ") == 200
    two = b"Authorization: Bearer " + TOKEN.encode()
    assert await raw_status(client, two, two) == 401  # which one would count? neither


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(UserError, match="ORCHESTRATOR_TOKEN"):
        check_exposure(Settings(listen="0.0.0.0:7420"))
    check_exposure(Settings(listen="0.0.0.0:7420", token="t"))
    check_exposure(Settings(listen="127.0.0.1:7420"))


# ---------------------------------------------------------------------------- OpenAPI


def _routes(app: web.Application) -> set[tuple[str, str]]:
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
            if r.resource is not None}


async def test_openapi_documents_exactly_the_routes(client: TestClient) -> None:
    document = await (await client.get("/v1/openapi.json")).json()
    assert document == json.loads(json.dumps(build_document(Settings(token=TOKEN))))
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == _routes(client.app)
    assert document["openapi"] == "3.1.0"



# ---------------------------------------------------------------------------- strict input


@pytest.mark.parametrize("tail", ["²", "١", "-1", "+5", " 5", "5 ", "5.0", "1e3", "0x10", "100001",
                                  "9" * 30, "ALL"])
async def test_tail_is_ascii_digits_within_its_range(client: TestClient, tail: str) -> None:
    await deploy(client)
    response = await client.get("/v1/stacks/shop/services/web/logs", params={"tail": tail})
    error = await error_of(response, 400)
    assert error["path"] == "tail" and "from 0 to 100000" in error["message"]


@pytest.mark.parametrize("tail", ["0", "100000", "007", "all", ""])
async def test_tail_takes_what_the_document_says(client: TestClient, tail: str) -> None:
    await deploy(client)
    response = await client.get("/v1/stacks/shop/services/web/logs", params={"tail": tail})
    assert response.status == 200


@pytest.mark.parametrize(("query", "headers", "path"), [
    pytest.param("?since=²", {}, "since", id="since-superscript"),
    pytest.param("?since=", {}, "since", id="since-empty"),
    pytest.param(f"?since={2**63}", {}, "since", id="since-too-big"),
    pytest.param("", {"Last-Event-ID": "²"}, "Last-Event-ID", id="last-event-id-superscript"),
    pytest.param("", {"Last-Event-ID": "-1"}, "Last-Event-ID", id="last-event-id-negative"),
])
async def test_event_seqs_are_ascii_digits_within_range(client: TestClient, query: str,
                                                        headers: dict[str, str], path: str) -> None:
    error = await error_of(await client.get(f"/v1/events{query}", headers=headers), 400)
    assert error["path"] == path


async def test_flags_take_exactly_the_documented_values_and_empty_is_false(client: TestClient) -> None:
    await deploy(client)
    assert len(await (await client.get("/v1/stacks/shop/tasks?all=")).json()) == 3
    assert len(await (await client.get("/v1/stacks/shop/tasks?all=yes")).json()) == 6
    for value in ("TRUE", "True", "on", " true", "2"):
        error = await error_of(await client.get("/v1/stacks/shop/tasks", params={"all": value}), 400)
        assert error["path"] == "all"
    assert (await client.get("/v1/stacks/shop/services/web/logs?follow=")).status == 200
    response = await client.delete("/v1/stacks/shop?volumes=")
    assert (await response.json())["volumes"] is False


@pytest.mark.parametrize("count", [10_001, 1_000_000_000_000, 10**30])
async def test_scale_beyond_max_replicas_is_a_400_naming_the_setting(
        client: TestClient, control: FakeControl, count: int) -> None:
    await deploy(client)
    response = await client.post("/v1/stacks/shop/scale", json={"web": count})
    error = await error_of(response, 400)
    assert (error["code"], error["path"]) == ("limit_exceeded", "web")
    assert "limit of 10000 per service" in error["message"] and "ORCHESTRATOR_MAX_REPLICAS)" in error["message"]
    assert control.counts["shop"] == {"web": 2, "worker": 1}


async def test_the_daemons_total_of_replicas_is_bounded(client: TestClient, control: FakeControl) -> None:
    control.limits = Settings(max_replicas_total=6)
    await deploy(client)  # 3 replicas
    assert (await client.post("/v1/stacks/shop/scale", json={"web": 5})).status == 200  # 6
    error = await error_of(await client.post("/v1/stacks/shop/scale", json={"worker": 2}), 400)
    assert error["code"] == "limit_exceeded" and "ORCHESTRATOR_MAX_REPLICAS_TOTAL" in error["message"]
    error = await error_of(await client.put("/v1/stacks/other", data=STACK_YAML, headers=YAML), 400)
    assert "would run 9 replicas in all, over the limit of 6" in error["message"]
    control.limits = Settings(max_replicas_total=4)  # lowered below what runs: shrinking still works
    assert (await client.post("/v1/stacks/shop/scale", json={"web": 4})).status == 200
    assert control.counts == {"shop": {"web": 4, "worker": 1}}


async def test_the_body_limit_is_the_setting(control: FakeControl) -> None:
    app = make_app(control, Settings(token=TOKEN, max_body_bytes=2048))
    async with TestClient(TestServer(app), headers=AUTH) as client:
        response = await client.put("/v1/stacks/shop", data="#" * 2049, headers=YAML)
        assert "larger than 2048 bytes" in (await error_of(response, 413))["message"]
        assert (await client.put("/v1/stacks/shop", data=STACK_YAML, headers=YAML)).status == 201


@pytest.mark.parametrize("request_kwargs", [
    pytest.param({"json": {"files": [{"name": "a.yml", "content": ""}]}}, id="json-empty-content"),
    pytest.param({"json": {"files": [{"name": "a.yml", "content": STACK_YAML},
                                     {"name": "b.yml", "content": "# nothing\n"}]}}, id="json-empty-override"),
    pytest.param({"data": "", "headers": YAML}, id="yaml-empty"),
])
async def test_an_empty_stack_file_is_an_invalid_stack_file(client: TestClient, control: FakeControl,
                                                             request_kwargs: dict[str, Any]) -> None:
    error = await error_of(await client.put("/v1/stacks/shop", **request_kwargs), 400)
    assert error["code"] == "invalid_stack_file" and "empty" in error["message"]
    assert control.specs == {}


async def test_json_nested_too_deeply_is_a_400(client: TestClient) -> None:
    response = await client.post("/v1/stacks/shop/scale", data="[" * 60_000,
                                 headers={"Content-Type": "application/json"})
    assert (await error_of(response, 400))["code"] == "invalid_json"


async def test_the_document_states_the_limits(client: TestClient) -> None:
    document = await (await client.get("/v1/openapi.json")).json()
    scale = document["paths"]["/v1/stacks/{stack}/scale"]["post"]["requestBody"]
    assert scale["content"]["application/json"]["schema"]["additionalProperties"]["maximum"] == 10_000
    assert document["paths"]["/v1/health"]["get"]["security"] == []
    assert document["security"] == [{"bearer": []}]
    assert "" in document["paths"]["/v1/stacks/{stack}/tasks"]["get"]["parameters"][1]["schema"]["enum"]


async def test_a_whole_number_written_as_a_float_is_a_count_as_json_schema_says(
        client: TestClient, control: FakeControl) -> None:
    await deploy(client)
    assert (await client.post("/v1/stacks/shop/scale", data='{"web": 3.0, "worker": 2e0}',
                              headers={"Content-Type": "application/json"})).status == 200
    assert control.counts["shop"] == {"web": 3, "worker": 2}
    for bad in ("1e400", "NaN", "-0.5"):
        response = await client.post("/v1/stacks/shop/scale", data=f'{{"web": {bad}}}',
                                     headers={"Content-Type": "application/json"})
        assert (await error_of(response, 400))["path"] == "web"
