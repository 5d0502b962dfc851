"""Optional OpenTelemetry traces behind a facade the rest of the gateway calls unconditionally.

    with tracer.span("aperture.intake", {"aperture.images.count": 2}) as span:
        ...
        span.set("aperture.images.bytes", total)

Tracing is on when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``) and the SDK is installed (``pip install 'aperture[otel]'``).
Otherwise ``open_tracer`` returns ``NO_TRACER``, whose spans are one shared do-nothing object,
and OpenTelemetry is never imported: a gateway without tracing pays a method call per span.

Spans carry metadata only: never a payload, image bytes, a URL or a secret. Children nest
under the span that is current in the task (OpenTelemetry's context is a ``ContextVar``), so
a span opened in an endpoint, a pipeline stage or the router needs no parent passed to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Literal, Protocol

__all__ = [
    "NO_TRACER",
    "AttributeValue",
    "Attributes",
    "NoTracer",
    "Span",
    "SpanKind",
    "Tracer",
    "open_tracer",
]

log = logging.getLogger("aperture.tracing")

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int]
Attributes = Mapping[str, AttributeValue]
SpanKind = Literal["internal", "server", "client"]


class Span(Protocol):
    def set(self, key: str, value: AttributeValue) -> None:
        """Add (or overwrite) one attribute: metadata only, never a payload or a secret."""
        ...

    def fail(self, error_type: str) -> None:
        """Mark the span failed (``error.type`` and an error status) without an exception."""
        ...


class Tracer(Protocol):
    @property
    def enabled(self) -> bool:
        """Whether spans are recorded: callers skip work that only feeds attributes."""
        ...

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: SpanKind = "internal",
        remote_parent: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span around the ``with`` block, child of the current one (or of the W3C
        ``traceparent`` in ``remote_parent``, a request's headers). An exception leaving
        the block marks the span failed with its error code, never its message."""
        ...

    def close(self) -> None:
        """Export what is buffered and stop; called once, when the process stops serving."""
        ...


class _NoSpan:
    """The one span of ``NoTracer``: its own context manager, so a span costs no allocation."""

    __slots__ = ()

    def set(self, key: str, value: AttributeValue) -> None:
        return None

    def fail(self, error_type: str) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


_NO_SPAN = _NoSpan()


class NoTracer:
    """Tracing off."""

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return False

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: SpanKind = "internal",
        remote_parent: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        return _NO_SPAN

    def close(self) -> None:
        return None


NO_TRACER: Tracer = NoTracer()

_INSTALL = "pip install 'aperture[otel]'"


def open_tracer(env: Mapping[str, str]) -> Tracer:
    """The tracer ``env`` asks for, and one log line saying whether tracing is on and why.

    The exporter's other settings (headers, timeout, compression, certificates), the sampler
    (``OTEL_TRACES_SAMPLER``) and ``OTEL_RESOURCE_ATTRIBUTES`` are OpenTelemetry's own
    standard variables, read by the SDK.
    """
    endpoint = traces_endpoint(env)
    if endpoint is None:
        log.info("tracing: off (set OTEL_EXPORTER_OTLP_ENDPOINT to export OpenTelemetry traces)")
        return NO_TRACER
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing: off (OTEL_SDK_DISABLED=true)")
        return NO_TRACER
    try:
        # Imported only now: without an endpoint the SDK is never loaded.
        from aperture.tracing.otel import OtelTracer
    except ImportError as exc:
        log.warning(
            "tracing: off: an OTLP endpoint is set but the OpenTelemetry SDK is not "
            "installed (%s); install it with: %s",
            exc,
            _INSTALL,
        )
        return NO_TRACER
    service = env.get("OTEL_SERVICE_NAME") or "aperture"
    tracer = OtelTracer.exporting(endpoint, service)
    log.info("tracing: on, OTLP/HTTP to %s as service %r", _without_credentials(endpoint), service)
    return tracer


def traces_endpoint(env: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL the standard variables name, or None.

    The signal-specific variable is the whole URL; the general one is a base to which the
    traces path is added, as the OpenTelemetry specification says.
    """
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return f"{base.rstrip('/')}/v1/traces"
    return None


def _without_credentials(url: str) -> str:
    # The scheme, host and path only: a collector URL may carry a user, password or token.
    scheme, sep, rest = url.partition("://")
    host_and_path = rest.rpartition("@")[2].partition("?")[0]
    return f"{scheme}{sep}{host_and_path}"
