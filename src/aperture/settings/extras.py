"""The optional extras: what in a configuration needs one, and what to say when it is missing.

A plain ``pip install aperture`` leaves out what only some gateways use: Bedrock's SigV4
and credential chain (botocore, ``aperture[bedrock]``) and libphonenumber for the PII phone
detector (phonenumberslite, ``aperture[pii]``). A configuration that needs one that is not
installed fails its check (``aperture check-config``, and so ``serve``) at the field that
needs it, with the command that installs it, instead of failing at the first request.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

__all__ = ["Extra", "installed", "needs"]

Extra = Literal["bedrock", "pii"]

# The module each extra brings, and what uses it.
_MODULES: dict[Extra, tuple[str, str]] = {
    "bedrock": ("botocore", "a bedrock provider"),
    "pii": ("phonenumbers", "the PII phone detector"),
}


def installed(extra: Extra) -> bool:
    """Whether ``extra``'s module can be imported (it is not imported here)."""
    module, _ = _MODULES[extra]
    return importlib.util.find_spec(module) is not None


def needs(extra: Extra) -> str:
    """The message for a configuration that needs ``extra`` where it is not installed."""
    module, user = _MODULES[extra]
    return f"{user} needs the {extra} extra ({module}): pip install 'aperture[{extra}]'"
