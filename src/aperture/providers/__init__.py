"""Provider adapters: pure translation between the canonical model and each provider's wire
format. No I/O: ``routing.dispatch`` sends what an adapter builds."""

from aperture.providers._status import retry_after_s
from aperture.providers.base import Authorizes, Provider, StreamParser
from aperture.providers.registry import provider_for

__all__ = ["Authorizes", "Provider", "StreamParser", "provider_for", "retry_after_s"]
