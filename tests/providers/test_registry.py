"""Every provider kind has a whole spec, and a kind without one is an error everywhere."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import get_args
from urllib.parse import urlsplit

import pytest

from aperture.images.limits import CONVERTIBLE_MIME_TYPES, limits_for
from aperture.images.tokens import TokenFamily, family_by_rule, token_family
from aperture.model import ChatRequest, Message, Target, Text
from aperture.providers import Provider, provider_for
from aperture.providers._anthropic_request import IMAGE_MEDIA_TYPES
from aperture.providers._bedrock_request import IMAGE_FORMATS
from aperture.providers._gemini_request import IMAGE_MIME_TYPES
from aperture.providers.registry import LISTED, SPECS, spec_for
from aperture.providers.spec import ProviderSpec, TokenRule
from aperture.routing.known_models import known_capabilities
from aperture.settings import Capability, ProviderSettings
from tests.contract.test_providers import KINDS as CONTRACT_KINDS

ALL = pytest.mark.parametrize("spec", LISTED, ids=lambda spec: spec.kind)


def test_each_kind_is_listed_once_under_its_own_name() -> None:
    assert len(SPECS) == len(LISTED)
    assert all(SPECS[spec.kind] is spec for spec in LISTED)


@ALL
def test_the_adapter_is_a_provider(spec: ProviderSpec) -> None:
    module, _, name = spec.adapter.partition(":")
    adapter = getattr(importlib.import_module(module), name)
    members = {n for n in vars(Provider) if not n.startswith("_")} | set(Provider.__annotations__)
    assert members <= set(dir(adapter))
    assert type(provider_for(spec.kind)) is adapter


def test_every_wire_runs_the_contract_suite() -> None:
    # A kind with a wire of its own needs an emulator and a place in the contract suite;
    # so does each other wire a kind offers (``kind-wire`` there).
    wires = {spec.wire for spec in LISTED}
    contract = {SPECS[name.partition("-")[0]].wire for name in CONTRACT_KINDS}
    assert contract == wires
    offered = {f"{spec.kind}-{wire.name}" for spec in LISTED for wire in spec.wires}
    assert offered <= set(CONTRACT_KINDS)


@ALL
def test_each_offered_wire_has_an_adapter(spec: ProviderSpec) -> None:
    for wire in spec.wires:
        module, _, name = wire.adapter.partition(":")
        adapter = getattr(importlib.import_module(module), name)
        assert type(provider_for(spec.kind, wire.name)) is adapter
    with pytest.raises(LookupError, match="no wire 'carrier-pigeon'"):
        provider_for(spec.kind, "carrier-pigeon")


@ALL
def test_image_limits_are_usable(spec: ProviderSpec) -> None:
    images = spec.images
    assert images.accepted <= CONVERTIBLE_MIME_TYPES
    assert images.accepted & {"image/png", "image/jpeg"}, "normalisation needs a target type"
    assert min(images.max_bytes, images.max_side, images.max_images) > 0
    limits = limits_for(spec.kind)
    assert limits.fetches_urls is spec.fetches_urls
    assert limits.accepted == images.accepted


@ALL
def test_the_token_rule_names_a_family(spec: ProviderSpec) -> None:
    assert spec.image_tokens in get_args(TokenRule)
    family = token_family(spec.kind, "some-model")
    assert family == family_by_rule(spec.image_tokens, "some-model")
    assert family in get_args(TokenFamily)


@ALL
def test_known_models_are_patterns_with_capabilities(spec: ProviderSpec) -> None:
    for pattern, capabilities in spec.known_models:
        assert pattern
        assert capabilities <= set(get_args(Capability))
    for pattern, capabilities in spec.known_models[:1]:
        model = pattern.replace("*", "x")
        # The kinds that read PDFs do so on their vision models.
        reads = spec.documents is not None and "vision" in capabilities
        expected = capabilities | {"documents"} if reads else capabilities
        assert known_capabilities(spec.kind, model) == expected


@ALL
def test_a_provider_without_base_url_still_has_an_endpoint(spec: ProviderSpec) -> None:
    if spec.base_url_needed is not None:
        assert spec.base_url is None, "a default endpoint makes base_url optional"
        return
    settings = ProviderSettings(name="p", kind=spec.kind, api_key="k", region="us-east-1")
    request = ChatRequest(model="m", messages=(Message("user", (Text("Hi"),)),))
    built = provider_for(spec.kind).build_request(request, Target(settings, "model-id"))
    url = urlsplit(built.url)
    assert url.scheme in ("http", "https") and url.hostname


def test_the_adapters_take_the_image_types_their_specs_accept() -> None:
    assert SPECS["anthropic"].images.accepted == IMAGE_MEDIA_TYPES
    assert set(IMAGE_FORMATS) == SPECS["bedrock"].images.accepted
    assert SPECS["gemini"].images.accepted == IMAGE_MIME_TYPES


def test_a_kind_without_a_spec_is_an_error_not_a_default() -> None:
    # Before, an unknown kind silently got OpenAI's image limits, no known models (text-only)
    # and the "unknown" token family.
    for lookup in (
        lambda: spec_for("nope"),
        lambda: limits_for("nope"),
        lambda: token_family("nope", "gpt-4o"),
        lambda: known_capabilities("nope", "gpt-4o"),
        lambda: provider_for("nope"),
    ):
        with pytest.raises(LookupError, match="unknown provider kind 'nope' \\(known: openai, "):
            lookup()


def test_reading_every_spec_imports_no_adapter() -> None:
    # The adapters stay imported on first use: a cold start loads neither botocore nor the
    # providers' wire types, however many kinds the config names.
    script = """
import sys
import aperture.app
from aperture.images.limits import limits_for
from aperture.images.tokens import token_family
from aperture.providers.registry import SPECS
from aperture.routing.known_models import known_capabilities
for kind in SPECS:
    limits_for(kind), token_family(kind, "m"), known_capabilities(kind, "m")
adapters = {spec.adapter.partition(":")[0] for spec in SPECS.values()}
print(sorted(m for m in sys.modules if m in adapters or m.startswith("botocore")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
