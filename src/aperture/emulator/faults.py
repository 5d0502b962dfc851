"""The ``x-emulator-fault`` header: scripted failures for gateway resilience tests.

Directives are comma-separated: ``status=<code>``, ``quota`` (or ``quota=<variant>``),
``delay=<ms>`` (or ``delay_ms=<ms>``) and ``midstream``, e.g. ``delay=50,status=503``. Each
provider renders the failure in its own wire format, ``quota`` as that provider's real
spent-quota answer and ``quota=<variant>`` as one of its other documented ones (the variants
each emulator knows are listed beside its ``_scripted_error``); this module only reads the
script.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAULT_HEADER", "FaultScript", "parse_faults"]

FAULT_HEADER = "x-emulator-fault"


@dataclass(frozen=True, slots=True)
class FaultScript:
    status: int | None = None
    quota: bool = False
    quota_variant: str = ""  # "" is the provider's usual spent-quota answer
    delay_ms: int = 0
    midstream: bool = False


def parse_faults(header: str | None) -> FaultScript:
    """Read the fault script.

    Raises:
        ValueError: an unknown directive or a malformed number, so a typo in a test fails
            loudly instead of silently testing the happy path.
    """
    if not header or not header.strip():
        return FaultScript()
    status: int | None = None
    quota = midstream = False
    variant = ""
    delay_ms = 0
    for raw in header.split(","):
        name, _, value = raw.strip().partition("=")
        name = name.strip().lower()
        if name == "status":
            status = _number(name, value, low=400, high=599)
        elif name in ("delay", "delay_ms"):
            delay_ms = _number(name, value, low=0, high=60_000)
        elif name == "quota" and (not value or _is_variant(value)):
            quota, variant = True, value.strip().lower()
        elif name == "midstream" and not value:
            midstream = True
        else:
            raise ValueError(f"Unknown {FAULT_HEADER} directive {raw.strip()!r}.")
    return FaultScript(
        status=status, quota=quota, quota_variant=variant, delay_ms=delay_ms, midstream=midstream
    )


def _is_variant(value: str) -> bool:
    name = value.strip()
    return bool(name) and name.replace("_", "").isalpha()


def _number(name: str, value: str, *, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"{FAULT_HEADER}: {name} needs an integer, got {value!r}.") from None
    if not low <= number <= high:
        raise ValueError(f"{FAULT_HEADER}: {name}={number} is outside {low}..{high}.")
    return number
