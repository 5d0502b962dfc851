"""Where Aperture keeps its state: narrow protocols per role, backends chosen by URL.

``open_storage(database_url, redis_url)`` returns the ``Storage`` bundle; ``migrate`` brings
a database's schema up to date. Backends (SQLite, PostgreSQL, Redis, memory) are imported
only when a URL names them, so the drivers of the others need not be installed.
"""

from __future__ import annotations

from aperture.storage.base import (
    AuditStore,
    Counters,
    DocumentStore,
    KeyStore,
    Limits,
    ModelStore,
    PutMode,
    RecordExistsError,
    RecordNotFoundError,
    ResponseStore,
    RouteStore,
    Storage,
    StorageError,
    UsageLedger,
)
from aperture.storage.records import (
    Admission,
    ApiKey,
    AuditAttempt,
    AuditDocument,
    AuditEvent,
    AuditImage,
    AuditQuery,
    AuditUsage,
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    Document,
    ResponseBlob,
    StoredResponse,
    UsageRow,
    UsageTotals,
    WindowAdmission,
    audit_time,
)
from aperture.storage.registry import RedisOptions, migrate, open_storage

__all__ = [
    "Admission",
    "ApiKey",
    "AuditAttempt",
    "AuditDocument",
    "AuditEvent",
    "AuditImage",
    "AuditQuery",
    "AuditStore",
    "AuditUsage",
    "BudgetCharge",
    "BudgetDecision",
    "BudgetScope",
    "BudgetState",
    "ClaimedHold",
    "Counters",
    "Document",
    "DocumentStore",
    "KeyStore",
    "Limits",
    "ModelStore",
    "PutMode",
    "RecordExistsError",
    "RecordNotFoundError",
    "RedisOptions",
    "ResponseBlob",
    "ResponseStore",
    "RouteStore",
    "Storage",
    "StorageError",
    "StoredResponse",
    "UsageLedger",
    "UsageRow",
    "UsageTotals",
    "WindowAdmission",
    "audit_time",
    "migrate",
    "open_storage",
]
