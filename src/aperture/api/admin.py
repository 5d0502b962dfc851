"""The admin API (``server.admin_port``): keys, audit and models, for the master key only.

Admin bodies reject unknown fields: a typo in a key's limits must fail, not be ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aperture.api.admin_auth import admin_services, refusal_headers
from aperture.api.body import read_body
from aperture.api.health import metrics_endpoint
from aperture.api.models import model_entry
from aperture.api.openapi import admin_document
from aperture.api.playground import Traces, playground_routes
from aperture.api.render import routing_error, store_unavailable
from aperture.console import console_routes
from aperture.dialects.decoding import decode_request
from aperture.dialects.openai.outbound import render_error
from aperture.errors import (
    ConflictError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    clip,
    quote,
)
from aperture.governance.budgets import BudgetBook, BudgetLine
from aperture.governance.keys import Principal
from aperture.providers.registry import spec_for
from aperture.services import Services
from aperture.settings import ModelSettings, RouteSettings
from aperture.storage import (
    ApiKey,
    AuditQuery,
    DocumentStore,
    RecordExistsError,
    RecordNotFoundError,
    StorageError,
)
from aperture.storage.records import BudgetPeriod

__all__ = ["create_admin_app"]

log = logging.getLogger("aperture.admin")

_MAX_ADMIN_BODY = 1024 * 1024
_MAX_AUDIT_LIMIT = 1000


class BudgetBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    usd: float | None = None
    tokens: int | None = None
    period: BudgetPeriod = "monthly"


class KeyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    tenant: str | None = None
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget: BudgetBody | None = None
    expires_at: datetime | None = None
    admin: bool = False


_KEY_BODY = msgspec.json.Decoder(KeyBody)
_encode = msgspec.json.Encoder().encode


def create_admin_app() -> Starlette:
    """The admin API and the console; ``app.state.services`` is set by the public app's
    lifespan."""
    app = Starlette(
        routes=[
            Route("/v1/admin/keys", _keys, methods=["GET", "POST"]),
            Route("/v1/admin/keys/{key_id}", _key, methods=["GET", "DELETE"]),
            Route("/v1/admin/audit", _audit, methods=["GET"]),
            Route("/v1/admin/budgets", _budgets, methods=["GET"]),
            Route("/v1/admin/stats", _stats, methods=["GET"]),
            *playground_routes(),
            Route("/openapi.json", _openapi, methods=["GET"]),
            Route("/v1/admin/models", _models, methods=["GET", "POST"]),
            Route("/v1/admin/models/{doc_id}", _model, methods=["GET", "PUT", "DELETE"]),
            Route("/v1/admin/routes", _routes, methods=["GET", "POST"]),
            Route("/v1/admin/routes/{doc_id}", _route, methods=["GET", "PUT", "DELETE"]),
            # Outside the master key's reach: a scraper gets server.metrics_token at most.
            Route("/metrics", metrics_endpoint("admin"), methods=["GET"]),
            *console_routes(),
        ],
        exception_handlers={HTTPException: _http_error, StorageError: _storage_error},
    )
    app.state.playground_traces = Traces()
    return app


async def _services(request: Request) -> Services:
    return (await admin_services(request))[0]


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encode(value), status, media_type="application/json")


def _error(error: GatewayError) -> Response:
    return Response(
        render_error(error),
        error.status_code,
        headers=refusal_headers(error),
        media_type="application/json",
    )


def _key_view(key: ApiKey) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.structs.asdict(key)
    del view["key_hash"]  # never leaves the store, not even hashed
    return view


async def _keys(request: Request) -> Response:
    try:
        services = await _services(request)
        if request.method == "GET":
            keys = await services.keys.list(request.query_params.get("tenant"))
            return _json({"data": [_key_view(k) for k in keys]})
        body, _ = decode_request(await read_body(request, _MAX_ADMIN_BODY), _KEY_BODY)
        budget = body.budget
        issued = await services.keys.issue(
            body.name,
            tenant=body.tenant,
            models=body.models,
            rpm=body.rpm,
            tpm=body.tpm,
            budget_usd=budget.usd if budget else None,
            budget_tokens=budget.tokens if budget else None,
            budget_period=budget.period if budget else None,
            expires_at=body.expires_at.astimezone(UTC) if body.expires_at else None,
            admin=body.admin,
        )
        return _json({**_key_view(issued.record), "key": issued.secret}, 201)
    except GatewayError as error:
        return _error(error)


async def _key(request: Request) -> Response:
    try:
        services = await _services(request)
        key_id = request.path_params["key_id"]
        if request.method == "DELETE":
            revoked = await services.keys.revoke(key_id)
            if revoked is None:
                raise _key_not_found(key_id)
            return _json(_key_view(revoked))
        found = next((k for k in await services.keys.list() if k.id == key_id), None)
        if found is None:
            raise _key_not_found(key_id)
        return _json(_key_view(found))
    except GatewayError as error:
        return _error(error)


def _key_not_found(key_id: str) -> GatewayError:
    return NotFoundError(f"There is no API key {quote(key_id)}.", param="key_id")


async def _audit(request: Request) -> Response:
    try:
        services = await _services(request)
        query = _audit_query(request)
        if request.query_params.get("format") == "jsonl":
            export = services.storage.audit.export(msgspec.structs.replace(query, limit=None))
            return StreamingResponse(export, media_type="application/x-ndjson")
        events = await services.storage.audit.query(query)
        return _json({"data": events})
    except GatewayError as error:
        return _error(error)


def _audit_query(request: Request) -> AuditQuery:
    params = request.query_params
    try:
        limit = int(params.get("limit", "100"))
        status = int(params["status"]) if "status" in params else None
        since = _time(params.get("since"))
        until = _time(params.get("until"))
    except ValueError as exc:
        raise InvalidRequestError(f"Invalid audit filter: {clip(str(exc))}") from exc
    unknown = set(params) - {
        "request_id",
        "key_id",
        "tenant",
        "model",
        "status",
        "error_code",
        "since",
        "until",
        "limit",
        "format",
    }
    if unknown:
        raise InvalidRequestError(f"Unknown audit filter {quote(sorted(unknown)[0])}.")
    return AuditQuery(
        request_id=params.get("request_id"),
        key_id=params.get("key_id"),
        tenant=params.get("tenant"),
        model=params.get("model"),
        status=status,
        error_code=params.get("error_code"),
        since=since,
        until=until,
        limit=max(0, min(limit, _MAX_AUDIT_LIMIT)),
    )


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Documents(NamedTuple):
    """One kind of stored definition: routes or models."""

    noun: str
    kind: type[RouteSettings] | type[ModelSettings]
    store: Callable[[Services], DocumentStore]
    doc_id: Callable[[Any], str]


_ROUTES = _Documents("route", RouteSettings, lambda s: s.storage.routes, lambda r: r.id)
_MODELS = _Documents("model", ModelSettings, lambda s: s.storage.models, lambda m: m.name)


async def _routes(request: Request) -> Response:
    return await _collection(request, _ROUTES)


async def _route(request: Request) -> Response:
    return await _document(request, _ROUTES)


async def _models(request: Request) -> Response:
    if request.method == "GET" and request.query_params.get("view") == "catalog":
        return await _catalog_models(request)
    return await _collection(request, _MODELS)


async def _model(request: Request) -> Response:
    return await _document(request, _MODELS)


async def _collection(request: Request, docs: _Documents) -> Response:
    try:
        services = await _services(request)
        store = docs.store(services)
        if request.method == "GET":
            return _json({"data": [msgspec.Raw(d.body) for d in await store.list()]})
        value = await _definition(request, docs, services)
        try:
            await store.put(docs.doc_id(value), _encode(value), mode="create")
        except RecordExistsError as exc:
            raise ConflictError(
                f"A {docs.noun} {quote(docs.doc_id(value))} exists; PUT it to change it."
            ) from exc
        await _refresh_catalog(services)
        return _json(value, 201)
    except GatewayError as error:
        return _error(error)


async def _document(request: Request, docs: _Documents) -> Response:
    try:
        services = await _services(request)
        store = docs.store(services)
        doc_id = request.path_params["doc_id"]
        if request.method == "GET":
            found = await store.get(doc_id)
            if found is None:
                raise NotFoundError(f"There is no {docs.noun} {quote(doc_id)}.")
            return _json(msgspec.Raw(found.body))
        if request.method == "DELETE":
            if not await store.delete(doc_id):
                raise NotFoundError(f"There is no {docs.noun} {quote(doc_id)}.")
            await _refresh_catalog(services)
            return _json({"id": doc_id, "deleted": True})
        value = await _definition(request, docs, services)
        if docs.doc_id(value) != doc_id:
            field = "id" if docs is _ROUTES else "name"
            raise InvalidRequestError(f"The {field} must be {quote(doc_id)}.", param=field)
        try:
            await store.put(doc_id, _encode(value), mode="replace")
        except RecordNotFoundError as exc:
            raise NotFoundError(f"There is no {docs.noun} {quote(doc_id)}; POST it.") from exc
        await _refresh_catalog(services)
        return _json(value)
    except GatewayError as error:
        return _error(error)


async def _refresh_catalog(services: Services) -> None:
    # The write is done: a rebuild that fails now must not answer it with a 503 (a retried
    # POST would then be a 409). The catalog poll catches up within a second of the database.
    try:
        await services.sync.refresh()
    except StorageError as exc:
        log.warning("catalog not rebuilt after a change: %s", exc)


async def _definition(
    request: Request, docs: _Documents, services: Services
) -> RouteSettings | ModelSettings:
    body = await read_body(request, _MAX_ADMIN_BODY)
    value, _ = decode_request(body, msgspec.json.Decoder(docs.kind))
    known = sorted(p.name for p in services.settings.providers)
    if isinstance(value, RouteSettings):
        if not value.providers:
            raise InvalidRequestError("A route needs at least one provider.", param="providers")
        named = [(f"providers[{i}].provider", t.provider) for i, t in enumerate(value.providers)]
    else:
        named = [("provider", value.provider)]
    for param, provider in named:
        if provider not in known:
            raise InvalidRequestError(
                f"Unknown provider {quote(provider)} (configured: {', '.join(known)}).", param=param
            )
    if isinstance(value, ModelSettings) and value.wire is not None:
        kind = next(p.kind for p in services.settings.providers if p.name == value.provider)
        try:
            spec_for(kind).wire_named(value.wire)
        except LookupError as exc:
            raise InvalidRequestError(f"{exc}.", param="wire") from exc
    return value


async def _catalog_models(request: Request) -> Response:
    try:
        services = await _services(request)
        entries = services.catalog.current.entries
        return _json({"data": [model_entry(e, services, True) for e in entries]})
    except GatewayError as error:
        return _error(error)


async def _budgets(request: Request) -> Response:
    """Every key and tenant budget in its current window: limit, spent, held, remaining.

    ``spent`` is the shared counter enforcement reads; ``ledger`` is what the ledger sums to
    (they agree once in-flight requests settle). Filters: ``?key_id=`` and ``?tenant=``.
    """
    try:
        services = await _services(request)
        key_id = request.query_params.get("key_id")
        tenant = request.query_params.get("tenant")
        book = services.admission.budgets
        lines: list[BudgetLine] = []
        for key in await services.keys.list(tenant):
            if key_id in (None, key.id) and key.revoked_at is None:
                lines += [line for line in book.lines(Principal(key)) if line.scope == "key"]
        if key_id is None:
            for name, budget in sorted(book.tenants.items()):
                line = book.line_for("tenant", name, budget)
                if line is not None and tenant in (None, name):
                    lines.append(line)
        return _json({"data": [await _budget_view(book, line) for line in lines]})
    except StorageError as exc:
        log.warning("budget store failed on %s: %s", request.url.path, exc)
        return _error(store_unavailable(exc))
    except GatewayError as error:
        return _error(error)


async def _budget_view(book: BudgetBook, line: BudgetLine) -> dict[str, Any]:
    state = await book.state(line)
    ledger = await book.ledger_spend(line)
    limit_micros = line.key.limit_micros
    remaining_usd = None
    if limit_micros is not None:
        remaining_usd = (limit_micros - state.spent.micros - state.reserved.micros) / 1e6
    remaining_tokens = None
    if line.limit_tokens is not None:
        remaining_tokens = line.limit_tokens - state.spent.tokens - state.reserved.tokens
    return {
        "scope": line.scope,
        "id": line.id,
        "period": line.period,
        "window": line.window,
        "window_start": line.window_start,
        "window_end": line.window_end,
        "limit": {"usd": line.limit_usd, "tokens": line.limit_tokens},
        "spent": {"usd": state.spent.micros / 1e6, "tokens": state.spent.tokens},
        "reserved": {"usd": state.reserved.micros / 1e6, "tokens": state.reserved.tokens},
        "remaining": {"usd": remaining_usd, "tokens": remaining_tokens},
        "ledger": {"usd": ledger.micros / 1e6, "tokens": ledger.tokens},
    }


async def _stats(request: Request) -> Response:
    """The gateway's own metrics as totals since start (the console's overview takes rates
    between two readings), the breakers' states, and the ledger's spend of the last hour
    and of today (UTC)."""
    try:
        services = await _services(request)
        now = datetime.now(UTC)
        ledger = services.storage.ledger
        hour = await ledger.totals(since=now - timedelta(hours=1))
        today = await ledger.totals(since=now.replace(hour=0, minute=0, second=0, microsecond=0))
        snapshot = await services.metrics.snapshot()
        spend = {"last_hour_usd": hour.amount_micros / 1e6, "today_usd": today.amount_micros / 1e6}
        return _json({"time": now.timestamp(), **snapshot, "spend": spend})
    except StorageError as exc:
        log.warning("usage ledger failed on %s: %s", request.url.path, exc)
        return _error(store_unavailable(exc))
    except GatewayError as error:
        return _error(error)


async def _openapi(request: Request) -> Response:
    return _json(admin_document())


async def _storage_error(request: Request, exc: Exception) -> Response:
    # The database or Redis is away: a 503 the operator's tooling retries, not a 500.
    assert isinstance(exc, StorageError)
    log.warning("store failed on %s %s: %s", request.method, request.url.path, exc)
    return _error(store_unavailable(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(routing_error(request, exc))
