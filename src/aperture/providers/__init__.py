"""Provider adapters: pure translation between the canonical model and each provider's wire
format. No I/O: ``routing.dispatch`` sends what an adapter builds."""

from aperture.providers._status import retry_after_s
from aperture.providers.adapters import provider_for
from aperture.providers.base import Authorizes, CountsTokens, Provider, StreamParser

__all__ = [
    "Authorizes",
    "CountsTokens",
    "Provider",
    "StreamParser",
    "provider_for",
    "retry_after_s",
]
