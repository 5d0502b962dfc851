"""The typed bundle of long-lived objects the endpoints use, built once per app."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from aperture.governance.budgets import BudgetBook
from aperture.governance.console_sessions import ConsoleSessions, LiveSession
from aperture.governance.guardrails import Ask, Guardrails
from aperture.governance.keys import KeyRing
from aperture.governance.ocr import OcrReader
from aperture.governance.pii import PiiScanner
from aperture.governance.policy import PolicyEngine
from aperture.governance.prices import PriceTable
from aperture.governance.ratelimit import RateLimiter
from aperture.governance.reclaim import Reclaimer, new_instance_id
from aperture.images.workers import DecodePool
from aperture.metrics import Metrics
from aperture.pipeline import (
    Continuation,
    Dispatch,
    DocumentPreparer,
    ImagePreparer,
    IntakeDocuments,
    PdfWork,
    Pipeline,
    Record,
    ResponseArchive,
    Screening,
    TargetLimits,
    build_pipeline,
)
from aperture.pipeline.admit import Admission
from aperture.pipeline.answers import AnswerScreen
from aperture.pipeline.guard_model import GuardModel
from aperture.routing.breaker import SharedBreakers
from aperture.routing.catalog import Catalog
from aperture.routing.dispatch import Dispatcher
from aperture.routing.live import LiveCatalog
from aperture.routing.retry import RetryPolicy
from aperture.routing.router import Router
from aperture.routing.sync import CatalogSync
from aperture.settings import AuthSettings, Settings
from aperture.storage import RedisOptions, Storage, open_storage
from aperture.storage.audit_writer import AuditWriter
from aperture.storage.ledger_writer import LedgerWriter
from aperture.tracing import NO_TRACER, Tracer
from aperture.upstream import UpstreamClient
from aperture.upstream.fetch import FetchPolicy, ImageFetcher

# The console stands on the services, never on governance: its sessions come through here.
__all__ = ["ConsoleSessions", "LiveSession", "Services", "open_services"]

log = logging.getLogger("aperture")


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    catalog: LiveCatalog
    sync: CatalogSync
    pipeline: Pipeline
    images: ImagePreparer
    router: Router
    client: UpstreamClient
    fetcher: ImageFetcher
    storage: Storage
    keys: KeyRing
    console_sessions: ConsoleSessions
    audit: AuditWriter
    metrics: Metrics
    admission: Admission
    responses: ResponseArchive

    @property
    def auth_required(self) -> bool:
        auth = self.settings.auth
        return auth is not None and auth.master_key is not None


async def open_services(
    settings: Settings, stack: AsyncExitStack, group: TaskGroup, tracer: Tracer = NO_TRACER
) -> Services:
    """Build every service inside the app lifespan; ``stack`` closes them in reverse order
    and ``group`` owns their background tasks (key-cache watcher, audit writer)."""
    options = settings.storage
    storage = await open_storage(
        options.database,
        options.redis,
        migrate=True,
        redis=RedisOptions(
            timeout_s=options.redis_timeout_s,
            retry_s=options.redis_retry_s,
            prefix=options.redis_prefix,
        ),
        database_timeout_s=options.database_timeout_s,
    )
    stack.push_async_callback(storage.close)
    # The ledger is money: rows the database cannot take now are spooled, never dropped.
    ledger = LedgerWriter(
        storage.ledger,
        Path(options.spool_dir) / "ledger",
        write_timeout_s=options.ledger_timeout_s,
    )
    await ledger.start(group)
    stack.push_async_callback(ledger.stop)
    storage = dataclasses.replace(storage, ledger=ledger)
    # Only shared limits (Redis) outlive an instance; in memory its holds die with it.
    instance = new_instance_id() if settings.storage.redis is not None else None
    admission = _admission(settings, storage, instance)
    reclaimer = _reclaimer(settings, storage, admission, instance)
    if reclaimer is not None:
        await reclaimer.tick()  # beat before the first hold, so no hold is ever unowned
        # Runs after the pollers stop (the stack unwinds in reverse), before storage closes.
        stack.push_async_callback(reclaimer.retire)
    client = UpstreamClient.create()
    stack.push_async_callback(client.close)
    fetcher = _fetcher(settings)
    stack.push_async_callback(fetcher.close)
    auth = settings.auth
    master = auth.master_key if auth else None
    pepper = (auth.key_pepper if auth else None) or master or "aperture-open-gateway"
    keys = KeyRing(storage.keys, pepper.encode(), master)
    await keys.refresh(force=True)
    signin = auth or AuthSettings()
    console_sessions = ConsoleSessions(
        storage.sessions,
        keys,
        idle_s=signin.console_idle_s,
        max_s=signin.console_max_s,
        cache_s=signin.console_cache_s,
    )
    audit = AuditWriter(storage.audit, Path(settings.storage.spool_dir))
    await audit.start(group)
    stack.push_async_callback(audit.stop)
    pollers = _Pollers(group)
    # Stopped before the storage closes: a poll cut off by the pool's disposal would leave
    # its connection to be garbage-collected unclosed.
    stack.push_async_callback(pollers.stop)
    pollers.start(keys.watch)
    metrics = Metrics()
    breakers = SharedBreakers(storage.counters)
    router = Router(Dispatcher(client), breakers, RetryPolicy(), tracer=tracer)
    metrics.watch_breakers(lambda: tuple(router.seen), breakers.state)
    catalog = LiveCatalog(Catalog.from_settings(settings))
    sync = CatalogSync(settings, storage.routes, storage.models, catalog)
    await sync.seed()
    pollers.start(sync.watch)
    limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
    target_limits = TargetLimits(settings.providers)
    if reclaimer is not None:
        pollers.start(reclaimer.run)
    # One pool for every decode: normalisation and OCR share its workers and its ceilings.
    decoder = _decoder(settings, stack)
    images = ImagePreparer(settings.images, limiter, target_limits, tracer=tracer, decoder=decoder)
    screening = _screening(
        settings, admission, limiter, GuardModel(catalog, router, images), decoder
    )
    screening = dataclasses.replace(screening, answers=_answers(settings, screening))
    responses = ResponseArchive(
        storage.responses, retention_hours=settings.responses.retention_hours
    )
    pollers.start(responses.purge_periodically)
    pdf = PdfWork(decoder)
    documents = IntakeDocuments(
        settings.documents,
        pdf,
        target_limits=target_limits,
        read_text=_reads_text(settings),
        ocr=screening.ocr,
    )
    pipeline = build_pipeline(
        catalog,
        settings.images,
        fetcher,
        limiter,
        target_limits,
        Dispatch(
            router,
            images,
            metrics.attempt,
            DocumentPreparer(settings.documents, pdf, target_limits),
        ),
        Record(audit, metrics),
        screening,
        tracer=tracer,
        continuation=Continuation(responses),
        documents=documents,
        document_settings=settings.documents,
    )
    return Services(
        settings=settings,
        catalog=catalog,
        sync=sync,
        pipeline=pipeline,
        images=images,
        router=router,
        client=client,
        fetcher=fetcher,
        storage=storage,
        keys=keys,
        console_sessions=console_sessions,
        audit=audit,
        metrics=metrics,
        admission=admission,
        responses=responses,
    )


def _reads_text(settings: Settings) -> bool:
    """Whether a check reads the request's text (then a document's text layer is read too)."""
    governance = settings.governance
    return (
        governance.pii is not None
        or any(rule.deny_patterns for rule in governance.policy)
        or any(guard.stage == "pre" for guard in governance.guardrails)
    )


def _decoder(settings: Settings, stack: AsyncExitStack) -> DecodePool | None:
    """The worker processes that decode images, stopped when the app stops."""
    decode = settings.images.decode
    if decode.workers == 0:
        return None
    pool = DecodePool(
        workers=decode.workers or os.cpu_count() or 1,
        memory_mb=decode.max_memory_mb,
        cpu_s=decode.max_cpu_s,
    )
    stack.callback(pool.close)
    return pool


class _Pollers:
    """Background tasks that poll the storage, stopped (and awaited) before it closes."""

    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self._scopes: list[anyio.CancelScope] = []
        self._done: list[anyio.Event] = []

    def start(self, poll: Callable[[], Awaitable[None]]) -> None:
        scope, done = anyio.CancelScope(), anyio.Event()
        self._scopes.append(scope)
        self._done.append(done)

        async def run() -> None:
            try:
                with scope:
                    await poll()
            finally:
                done.set()

        self._group.start_soon(run)

    async def stop(self) -> None:
        for scope in self._scopes:
            scope.cancel()
        for done in self._done:
            await done.wait()


def _answers(settings: Settings, screening: Screening) -> AnswerScreen:
    pii = settings.governance.pii
    scan = pii is not None and pii.scan_responses
    return AnswerScreen(screening.pii if scan else None, screening.pii_action, screening.guardrails)


def _screening(
    settings: Settings,
    admission: Admission,
    limiter: anyio.CapacityLimiter,
    ask: Ask,
    decoder: DecodePool | None,
) -> Screening:
    governance = settings.governance
    ocr: OcrReader | None = OcrReader(governance.ocr, limiter=limiter, decoder=decoder)
    if ocr is not None and ocr.enabled:
        missing = ocr.availability()  # runs tesseract once: only here, at start
        if missing is not None:
            # Configured but unusable: say so at start, and run without it rather than not at
            # all (the PII scan still covers the text portions).
            log.error("%s; images are not read", missing)
            ocr = None
    else:
        ocr = None
    pii = governance.pii
    return Screening(
        policy=PolicyEngine(governance.policy) if governance.policy else None,
        ocr=ocr,
        pii=PiiScanner(pii) if pii is not None else None,
        pii_action=pii.action if pii is not None else "redact",
        guardrails=Guardrails(governance.guardrails, ask) if governance.guardrails else None,
        admission=admission,
    )


def _reclaimer(
    settings: Settings, storage: Storage, admission: Admission, instance: str | None
) -> Reclaimer | None:
    if instance is None:
        return None
    return Reclaimer(
        storage.limits,
        storage.ledger,
        storage.audit,
        admission.budgets,
        instance=instance,
        heartbeat_s=settings.storage.heartbeat_s,
        ttl_s=settings.storage.instance_ttl_s,
    )


def _admission(settings: Settings, storage: Storage, instance: str | None) -> Admission:
    governance = settings.governance
    tenants = {
        rule.tenant: rule.budget
        for rule in governance.limits
        if rule.tenant is not None and rule.budget is not None
    }
    prices = PriceTable(governance.prices)
    unpriced = prices.unpriced(
        [(model.name, model.upstream_model or model.name) for model in settings.models]
    )
    if unpriced:
        # Not an error (local models are free), but a USD budget would never stop them.
        log.info(
            "no price for %s: they count against token budgets, not USD ones "
            "(set governance.prices)",
            ", ".join(unpriced),
        )
    return Admission(
        RateLimiter(storage.limits, governance.limits),
        BudgetBook(storage.limits, storage.ledger, tenants, instance=instance),
        prices,
    )


def _fetcher(settings: Settings) -> ImageFetcher:
    fetch = settings.images.fetch
    return ImageFetcher(
        FetchPolicy(
            timeout_s=fetch.timeout_s,
            connect_timeout_s=fetch.connect_timeout_s,
            max_redirects=fetch.max_redirects,
            max_bytes=settings.images.max_image_bytes,
            allow_private_hosts=fetch.allow_private_hosts,
            allow_http=fetch.allow_http,
        ),
        cache_bytes=fetch.cache_bytes,
    )
