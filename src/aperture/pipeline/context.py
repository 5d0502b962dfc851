"""What the gateway knows about one request as it moves through the stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aperture.dialects.locator import FieldLocator, OpenAILocator
from aperture.model import Target
from aperture.routing.catalog import ModelEntry

__all__ = ["RequestContext"]


@dataclass(slots=True)
class RequestContext:
    """Mutable per-request state, owned by the endpoint that serves the request."""

    request_id: str
    endpoint: str
    locator: FieldLocator = field(default_factory=OpenAILocator)
    started: float = field(default_factory=time.perf_counter)
    entry: ModelEntry | None = None
    target: Target | None = None
    attempts: int = 0
