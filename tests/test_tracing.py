"""OpenTelemetry traces: spans from a real gateway, exported by the real SDK, and none of it
(not even the import) when tracing is off."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aperture.app import create_app
from aperture.settings import Settings
from aperture.settings.schema import StorageSettings
from aperture.tracing import NO_TRACER, NoTracer, open_tracer, traces_endpoint
from aperture.tracing.otel import OtelTracer
from tests import sample_images
from tests.servers import reserve_port, serve

SECRET_PROMPT = "describe-the-secret-lighthouse"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced_url(
    gateway_settings: Settings,
    exporter: InMemorySpanExporter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = OtelTracer(provider)
    # A database and spool of its own: the spool directory belongs to one gateway.
    state = tmp_path_factory.mktemp("traced-state")
    storage = StorageSettings(database=f"sqlite:///{state}/aperture.db", spool_dir=str(state))
    settings = msgspec.structs.replace(gateway_settings, storage=storage)
    try:
        with serve(create_app(settings, tracer=tracer)) as url:
            yield url
    finally:
        tracer.close()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def _trace(exporter: InMemorySpanExporter, request_id: str) -> list[ReadableSpan]:
    """The spans of the request ``request_id``, once its root span has ended (the client
    can have the whole answer a moment before the middleware closes the span)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        finished = exporter.get_finished_spans()
        root = next(
            (s for s in finished if (s.attributes or {}).get("aperture.request_id") == request_id),
            None,
        )
        if root is not None:
            trace_id = root.context.trace_id
            return [s for s in finished if s.context.trace_id == trace_id]
        time.sleep(0.01)
    raise AssertionError(f"no finished aperture.request span for {request_id}")


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


def _vision_body(model: str, image: bytes, mime: str, *, stream: bool = False) -> dict[str, object]:
    return {
        "model": model,
        "stream": stream,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": SECRET_PROMPT},
                    {
                        "type": "image_url",
                        "image_url": {"url": sample_images.data_uri(image, mime)},
                    },
                ],
            }
        ],
    }


def test_a_vision_request_is_one_trace_of_nested_spans(
    traced_url: str, spans: InMemorySpanExporter
) -> None:
    # The provider takes at most 100 px a side: the image is resized for the attempt.
    image = sample_images.png(300, 200)
    body = _vision_body("small-images", image, "image/png")
    response = httpx.post(f"{traced_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text

    trace = _trace(spans, response.headers["x-request-id"])
    request = _one(trace, "aperture.request")
    intake = _one(trace, "aperture.intake")
    attempt = _one(trace, "aperture.upstream.attempt")
    prepare = _one(trace, "aperture.image.prepare")
    assert request.parent is None
    assert _child_of(intake, request)
    assert _child_of(attempt, request)
    assert _child_of(prepare, attempt)
    assert request.kind is SpanKind.SERVER
    assert attempt.kind is SpanKind.CLIENT

    assert dict(request.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/v1/chat/completions",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "aperture.request_id": response.headers["x-request-id"],
    }
    intake_attributes = dict(intake.attributes or {})
    assert intake_attributes["aperture.images.count"] == 1
    assert intake_attributes["aperture.images.mime"] == ("image/png",)
    assert intake_attributes["aperture.images.bytes"] == len(image)
    assert intake_attributes["aperture.images.fetched"] == 0
    prepare_attributes = dict(prepare.attributes or {})
    assert prepare_attributes["aperture.provider"] == "recorded-small"
    assert prepare_attributes["aperture.images.normalized"] == 1
    assert prepare_attributes["aperture.image_tokens"] == int(
        response.headers["x-aperture-image-tokens"]
    )
    assert dict(attempt.attributes or {}) == {
        "aperture.provider": "recorded-small",
        "aperture.provider.kind": "openai",
        "aperture.model": "emulator-vision",
        "aperture.attempt": 1,
        "aperture.outcome": "ok",
    }
    assert all(s.status.status_code is StatusCode.UNSET for s in trace)

    # Metadata only: not the prompt, not the image, not a data URI.
    recorded = json.dumps([dict(s.attributes or {}) for s in trace] + [s.name for s in trace])
    assert SECRET_PROMPT not in recorded
    assert "base64" not in recorded
    assert "data:" not in recorded
    assert all(not s.events for s in trace)


def test_a_stream_attempt_ends_at_its_first_event_and_the_request_at_the_last(
    traced_url: str, spans: InMemorySpanExporter
) -> None:
    body = _vision_body("demo-vision", sample_images.jpeg(), "image/jpeg", stream=True)
    with httpx.stream(
        "POST", f"{traced_url}/v1/chat/completions", json=body, timeout=30
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert text.rstrip().endswith("data: [DONE]")

    trace = _trace(spans, response.headers["x-request-id"])
    request = _one(trace, "aperture.request")
    attempt = _one(trace, "aperture.upstream.attempt")
    assert _child_of(attempt, request)
    assert (attempt.attributes or {})["aperture.outcome"] == "ok"
    assert attempt.end_time is not None and request.end_time is not None
    assert attempt.end_time <= request.end_time


def test_failed_attempts_are_error_spans_with_their_code(
    traced_url: str, spans: InMemorySpanExporter
) -> None:
    body = {"model": "failing-503", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    response = httpx.post(f"{traced_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 503

    trace = _trace(spans, response.headers["x-request-id"])
    request = _one(trace, "aperture.request")
    attempts = sorted(
        (s for s in trace if s.name == "aperture.upstream.attempt"),
        key=lambda s: (s.attributes or {})["aperture.attempt"],
    )
    assert [(s.attributes or {})["aperture.attempt"] for s in attempts] == [1, 2, 3]
    for attempt in attempts:
        assert _child_of(attempt, request)
        assert (attempt.attributes or {})["aperture.outcome"] == "upstream_unavailable"
        assert attempt.status.status_code is StatusCode.ERROR
        assert attempt.status.description == "upstream_unavailable"
    assert request.status.status_code is StatusCode.ERROR
    assert (request.attributes or {})["http.response.status_code"] == 503
    # No span for a text-only request's (absent) images.
    assert {s.name for s in trace} == {"aperture.request", "aperture.upstream.attempt"}


def test_a_callers_traceparent_continues_its_trace(
    traced_url: str, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with openai.OpenAI(
        base_url=f"{traced_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="demo-text", messages=[{"role": "user", "content": "hi"}]
        )
    request = _one(_trace(spans, raw.headers["x-request-id"]), "aperture.request")
    assert request.context.trace_id == int(trace_id, 16)
    assert request.parent is not None and request.parent.span_id == int(parent_id, 16)


def test_probes_are_not_traced(traced_url: str, spans: InMemorySpanExporter) -> None:
    assert httpx.get(f"{traced_url}/healthz").status_code == 200
    httpx.get(f"{traced_url}/nowhere")  # a 404 is traffic: traced
    deadline = time.monotonic() + 5
    while not spans.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(s.attributes or {}).get("url.path") for s in spans.get_finished_spans()] == [
        "/nowhere"
    ]


def test_no_endpoint_means_no_tracer(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "aperture.tracing"):
        tracer = open_tracer({})
    assert tracer is NO_TRACER
    assert not tracer.enabled
    assert "tracing: off" in caplog.text


def test_an_endpoint_without_the_sdk_says_how_to_install_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aperture.tracing.otel", None)  # None: import fails
    with caplog.at_level(logging.INFO, "aperture.tracing"):
        tracer = open_tracer({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert isinstance(tracer, NoTracer)
    assert "pip install 'aperture[otel]'" in caplog.text


def test_an_endpoint_and_the_sdk_turn_tracing_on(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pw@collector:4318/",
        "OTEL_SERVICE_NAME": "gateway-eu",
    }
    with caplog.at_level(logging.INFO, "aperture.tracing"):
        tracer = open_tracer(env)
    try:
        assert isinstance(tracer, OtelTracer)
        assert tracer.enabled
    finally:
        tracer.close()
    assert "tracing: on, OTLP/HTTP to https://collector:4318/v1/traces as service 'gateway-eu'" in (
        caplog.text
    )
    assert "pw" not in caplog.text


def test_the_traces_endpoint_follows_the_standard_variables() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        traces_endpoint(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
            }
        )
        == "http://t:4318/custom"
    )
    assert open_tracer(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}
    ) is (NO_TRACER)


class _Collector:
    """An OTLP/HTTP traces endpoint that keeps what it receives."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.app = Starlette(routes=[Route("/v1/traces", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.content_types.append(request.headers["content-type"])
        self.requests.append(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(ExportTraceServiceResponse().SerializeToString())

    def span_names(self) -> set[str]:
        return {
            span.name
            for export in self.requests
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }

    def service_names(self) -> set[str]:
        return {
            attribute.value.string_value
            for export in self.requests
            for resource in export.resource_spans
            for attribute in resource.resource.attributes
            if attribute.key == "service.name"
        }


def test_aperture_serve_exports_spans_over_otlp_http(tmp_path: Path) -> None:
    collector = _Collector()
    with serve(collector.app) as collector_url:
        port, admin_port = reserve_port(), reserve_port()
        ports = [str(s.getsockname()[1]) for s in (port, admin_port)]
        port.close()
        admin_port.close()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APERTURE_CONFIG"))
        }
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": collector_url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        argv = [sys.executable, "-m", "aperture", "serve", "--port", ports[0]]
        gateway = subprocess.Popen(
            [*argv, "--admin-port", ports[1]],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{ports[0]}"
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline and gateway.poll() is None
                try:
                    httpx.get(f"{url}/healthz").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            body = _vision_body("demo-vision", sample_images.png(), "image/png")
            assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
            deadline = time.monotonic() + 10
            while "aperture.request" not in collector.span_names():
                assert time.monotonic() < deadline, collector.span_names()
                time.sleep(0.05)
            gateway.send_signal(signal.SIGTERM)
            assert gateway.wait(timeout=30) == 0
        finally:
            if gateway.poll() is None:
                gateway.kill()
            _, stderr = gateway.communicate(timeout=30)
    assert "tracing: on, OTLP/HTTP to" in stderr
    assert {"aperture.request", "aperture.upstream.attempt"} <= collector.span_names()
    assert collector.service_names() == {"aperture"}
    assert set(collector.content_types) == {"application/x-protobuf"}


_UNTRACED_GATEWAY = """
import sys

import msgspec
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.app import create_app
from aperture.demo import demo_settings
from aperture.emulator import create_emulator_app
from aperture.settings.schema import StorageSettings
from aperture.tracing import open_tracer
from tests import sample_images
from tests.servers import reserve_port, serve

state = sys.argv[1]
with serve(Starlette(routes=[Mount("/emulator", create_emulator_app())])) as emulator:
    settings = demo_settings({}, host="127.0.0.1", port=int(emulator.rpartition(":")[2]))
    storage = StorageSettings(database=f"sqlite:///{state}/aperture.db", spool_dir=state)
    settings = msgspec.structs.replace(settings, storage=storage)
    app = create_app(settings, tracer=open_tracer({}))
    image = sample_images.data_uri(sample_images.png(), "image/png")
    content = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": image}}]
    body = {"model": "demo-vision", "messages": [{"role": "user", "content": content}]}
    with TestClient(app) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        body["stream"] = True
        assert client.post("/v1/chat/completions", json=body).status_code == 200
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_tracing_off_never_imports_opentelemetry(tmp_path: Path) -> None:
    # A fresh interpreter (this one has imported the SDK for the tests above), and an
    # environment without any OTEL_* variable.
    done = subprocess.run(
        [sys.executable, "-c", _UNTRACED_GATEWAY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
