"""The OpenTelemetry SDK behind the ``Tracer`` facade; imported only when tracing is on."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aperture import __version__
from aperture.tracing import Attributes, AttributeValue, Span, SpanKind

__all__ = ["OtelTracer"]

_KINDS: dict[SpanKind, trace.SpanKind] = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
}


class _OtelSpan:
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, error_type: str) -> None:
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, error_type))


class OtelTracer:
    """Spans recorded by ``provider``: its processors decide where they go."""

    def __init__(self, provider: TracerProvider) -> None:
        # Our own provider, not the process-global one: the gateway's spans go where its
        # configuration says even when a library in the process sets up tracing of its own.
        self._provider = provider
        self._tracer = provider.get_tracer("aperture", __version__)
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def exporting(cls, endpoint: str, service: str) -> OtelTracer:
        """Spans batched in a background thread and sent to ``endpoint`` over OTLP/HTTP."""
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": __version__,
                # Several workers share a host and a service name; the pid tells them apart.
                "process.pid": os.getpid(),
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return True

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: SpanKind = "internal",
        remote_parent: Mapping[str, str] | None = None,
    ) -> Iterator[Span]:
        parent = self._propagator.extract(remote_parent) if remote_parent else None
        # Exceptions are not recorded as events: their messages can quote the request.
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=_KINDS[kind],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            traced = _OtelSpan(span)
            try:
                yield traced
            except BaseException as exc:
                traced.fail(_error_type(exc))
                raise

    def close(self) -> None:
        self._provider.shutdown()


def _error_type(exc: BaseException) -> str:
    # A GatewayError's stable code (``upstream_timeout``), else the exception's class name.
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__qualname__
