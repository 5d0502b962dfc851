"""Prometheus metrics: one registry per app (never the library's global one).

The only module that imports prometheus_client. Everything is recorded after the response,
from the request's context, so the hot path pays nothing but a few counter updates.

With several workers (``aperture serve --workers N``) the parent points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker imports the library:
each worker then keeps its values in files there, and ``/metrics``, whichever worker
answers, reports the sums over all of them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_DIR_ENV", "Metrics", "Snapshot"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own switch to multiprocess mode, read when it is first imported."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_BREAKER_STATES = ("closed", "half_open", "open")

M = TypeVar("M", Counter, Histogram)


class _Children(Generic[M]):
    """A labelled metric's children, each looked up once.

    ``labels()`` validates, converts and takes a lock on every call, several times per
    request; the label sets a gateway sees are few and come back again and again.
    """

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        # No `_created` series: a timestamp per label set, doubling what a shared Prometheus
        # stores for nothing it needs (rate() copes with restarts). The library's switch is
        # process-wide; every metric of the gateway is made here, after it.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._breakers: _BreakerStates | None = None
        # What /metrics reports: this process's registry, or every worker's files summed.
        self._exposed = self.registry
        shared = environ.get(MULTIPROCESS_DIR_ENV)
        if shared:
            if values.ValueClass is values.MutexValue:
                raise RuntimeError(
                    f"{MULTIPROCESS_DIR_ENV} was set after prometheus_client was imported"
                )
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=shared)  # type: ignore[no-untyped-call]
        r = self.registry
        self.requests = Counter(
            "aperture_requests", "Requests answered", ["endpoint", "model", "status"], registry=r
        )
        self.latency = Histogram(
            "aperture_request_duration_seconds",
            "Time from request to the end of the answer",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "aperture_gateway_overhead_seconds",
            "Total time minus the time spent waiting on providers",
            ["endpoint"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "aperture_tokens",
            "Tokens the provider reported, by kind: prompt, completion",
            ["model", "kind"],
            registry=r,
        )
        # Its own metric: the estimate is part of the prompt tokens, so as a kind of
        # aperture_tokens_total it was counted twice by anyone summing the kinds.
        self.image_tokens = Counter(
            "aperture_image_tokens_estimated",
            "Input tokens of the images as sent, estimated by the provider's own formula",
            ["model"],
            registry=r,
        )
        self.images = Counter("aperture_images", "Images processed", ["mime"], registry=r)
        self.image_bytes = Counter("aperture_image_bytes", "Bytes of images processed", registry=r)
        self.image_saved = Counter(
            "aperture_image_bytes_saved",
            "Bytes normalisation took off images before they went upstream",
            registry=r,
        )
        self.attempts = Counter(
            "aperture_upstream_attempts",
            "Upstream attempts by target and outcome",
            ["target", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "aperture_upstream_duration_seconds",
            "Time waiting on a provider per attempt",
            ["target"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "aperture_rejections",
            "Requests refused, by error code (rate limits, budgets, policy, images...)",
            ["code"],
            registry=r,
        )
        # What the per-request methods below count with.
        self._requests = _Children(self.requests)
        self._latency = _Children(self.latency)
        self._overhead = _Children(self.overhead)
        self._tokens = _Children(self.tokens)
        self._image_tokens = _Children(self.image_tokens)
        self._images = _Children(self.images)
        self._attempts = _Children(self.attempts)
        self._upstream_latency = _Children(self.upstream_latency)
        self._rejections = _Children(self.rejections)

    def request(
        self, endpoint: str, model: str, status: int, seconds: float, overhead_s: float
    ) -> None:
        """A request answered, in ``seconds``, of which ``overhead_s`` were the gateway's."""
        self._requests(endpoint, model, str(status)).inc()
        self._latency(endpoint).observe(seconds)
        self._overhead(endpoint).observe(overhead_s)

    def rejection(self, code: str) -> None:
        self._rejections(code).inc()

    def count_tokens(self, model: str, kind: str, tokens: int) -> None:
        if kind == "image_estimate":  # the accounting's name for the estimate
            self.image_tokens_estimated(model, tokens)
        else:
            self._tokens(model, kind).inc(tokens)

    def image_tokens_estimated(self, model: str, tokens: int) -> None:
        self._image_tokens(model).inc(tokens)

    def image(self, mime: str, size_bytes: int) -> None:
        self._images(mime).inc()
        self.image_bytes.inc(size_bytes)

    def image_bytes_saved(self, size_bytes: int) -> None:
        if size_bytes > 0:
            self.image_saved.inc(size_bytes)

    def attempt(self, key: str, outcome: str, seconds: float) -> None:
        self._attempts(key, outcome).inc()
        self._upstream_latency(key).observe(seconds)

    def watch_breakers(
        self, keys: Callable[[], Iterable[str]], state: Callable[[str], Awaitable[str]]
    ) -> _BreakerStates:
        """Report breaker states at scrape time (see ``refresh``)."""
        collector = _BreakerStates(keys, state)
        self.registry.register(collector)
        if self._exposed is not self.registry:
            # Per worker, not summed: from a shared store every worker reads the same states.
            self._exposed.register(collector)
        self._breakers = collector
        return collector

    async def snapshot(self) -> Snapshot:
        """Every counter and histogram as totals since start (summed over workers), and the
        breakers' current states: what the console's overview turns into rates."""
        breakers: dict[str, str] = {}
        if self._breakers is not None:
            await self._breakers.refresh()
            breakers = dict(self._breakers.states)
        return summarise(self._exposed.collect(), breakers)

    async def render(self) -> bytes:
        """The exposition text, breaker states read fresh from their (maybe shared) store."""
        if self._breakers is not None:
            await self._breakers.refresh()
        return generate_latest(self._exposed)


class _BreakerStates(Collector):
    """Breaker state per target as a state set: one series per state, 1 for the current one
    and 0 for the others (``aperture_breaker_state{state="open"} == 1`` finds the open ones).
    Refreshed before a scrape, since reading shared state is async and a collector is not."""

    def __init__(
        self, keys: Callable[[], Iterable[str]], state: Callable[[str], Awaitable[str]]
    ) -> None:
        self._keys = keys
        self._state = state
        self._last: dict[str, str] = {}

    async def refresh(self) -> None:
        self._last = {key: await self._state(key) for key in self._keys()}

    @property
    def states(self) -> Mapping[str, str]:
        """Each target's state at the last refresh."""
        return self._last

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "aperture_breaker_state",
            "Circuit breaker per target: 1 for its current state, 0 for the others",
            labels=["target", "state"],
        )
        for key, current in sorted(self._last.items()):
            for state in _BREAKER_STATES:
                family.add_metric([key, state], 1.0 if state == current else 0.0)
        yield family


Snapshot = dict[str, Any]
"""Totals since start, as JSON-ready values: see ``summarise``."""


def _histogram() -> dict[str, Any]:
    return {"count": 0.0, "sum": 0.0, "buckets": {}}


def summarise(families: Iterable[Metric], breakers: Mapping[str, str]) -> Snapshot:
    """The families' samples folded to what an overview needs, every label but the one
    that matters summed away: requests by status, refusals by code, latency and overhead
    histograms (cumulative buckets by ``le``), tokens by kind, images, attempts by target
    and outcome."""
    snap: Snapshot = {
        "requests": {},
        "errors": {},
        "latency": _histogram(),
        "overhead": _histogram(),
        "tokens": {"prompt": 0.0, "completion": 0.0, "image_estimate": 0.0},
        "images": {"count": 0.0, "bytes": 0.0, "bytes_saved": 0.0},
        "attempts": {},
        "breakers": dict(sorted(breakers.items())),
    }
    histograms = {
        "aperture_request_duration_seconds": snap["latency"],
        "aperture_gateway_overhead_seconds": snap["overhead"],
    }
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if family.name in histograms:
                _fold_histogram(histograms[family.name], name, labels, value)
            elif name == "aperture_requests_total":
                _add(snap["requests"], labels["status"], value)
            elif name == "aperture_rejections_total":
                _add(snap["errors"], labels["code"], value)
            elif name == "aperture_tokens_total":
                _add(snap["tokens"], labels["kind"], value)
            elif name == "aperture_image_tokens_estimated_total":
                _add(snap["tokens"], "image_estimate", value)
            elif name == "aperture_images_total":
                _add(snap["images"], "count", value)
            elif name == "aperture_image_bytes_total":
                _add(snap["images"], "bytes", value)
            elif name == "aperture_image_bytes_saved_total":
                _add(snap["images"], "bytes_saved", value)
            elif name == "aperture_upstream_attempts_total":
                _add(snap["attempts"].setdefault(labels["target"], {}), labels["outcome"], value)
    return snap


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def _fold_histogram(
    into: dict[str, Any], name: str, labels: Mapping[str, str], value: float
) -> None:
    if name.endswith("_bucket"):
        _add(into["buckets"], labels["le"], value)
    elif name.endswith("_sum"):
        into["sum"] += value
    elif name.endswith("_count"):
        into["count"] += value
