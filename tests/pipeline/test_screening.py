"""Screening what the client wrote: PII in string content, in text parts and in the text OCR
read from images, under each action; and the policy's second pass after intake."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from aperture.dialects.openai.inbound import parse_chat_request
from aperture.errors import PiiDetectedError, PolicyViolationError
from aperture.governance.pii import PiiScanner
from aperture.governance.policy import PolicyEngine
from aperture.model import ChatRequest, Image, InlineImage, Text
from aperture.pipeline.context import RequestContext
from aperture.pipeline.screening import EnforcePolicy, ScreenPii
from aperture.routing.catalog import Catalog
from aperture.settings import parse_settings
from aperture.settings.governance import PiiAction, PiiSettings, PolicyRule
from aperture.storage.records import AuditFinding

pytestmark = pytest.mark.anyio

CATALOG = Catalog.from_settings(
    parse_settings(
        """
providers: [{name: oa, kind: openai, api_key: k}]
models: [{name: vision, provider: oa, upstream_model: gpt-4o, capabilities: [vision]}]
""",
        {},
    )
)
SCANNER = PiiScanner(PiiSettings())
EMAIL = "john.smith@example.com"
PHONE = "212-555-0123"
SSN = "536-90-4399"
URL = "https://images.example.com/scan.png"
IMAGE_PATH = "messages[0].content[1].image_url.url"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def parsed(*messages: dict[str, Any]) -> tuple[ChatRequest, RequestContext]:
    body = {"model": "vision", "messages": list(messages)}
    request, locator = parse_chat_request(json.dumps(body).encode())
    resolution = CATALOG.resolve("vision")
    ctx = RequestContext(
        request_id="r1",
        endpoint="/v1/chat/completions",
        locator=locator,
        resolution=resolution,
        options=resolution.options,
    )
    return request, ctx


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image() -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": URL}}


def screen(action: PiiAction) -> ScreenPii:
    return ScreenPii(SCANNER, action)


# --- PII in the text -------------------------------------------------------------------------


async def test_redact_rewrites_string_content() -> None:
    request, ctx = parsed({"role": "system", "content": "Be brief."}, user(f"Mail {EMAIL} please"))
    screened = await screen("redact")(ctx, request)
    assert screened.messages[0] is request.messages[0]
    assert screened.messages[1].content == "Mail [EMAIL] please"
    assert ctx.texts == ("Be brief.", "Mail [EMAIL] please")
    assert ctx.findings == [
        AuditFinding(check="pii", name="email", action="redact", param="messages[1].content")
    ]


async def test_redact_rewrites_only_the_text_parts_that_hold_pii() -> None:
    request, ctx = parsed(user([text("Who is this?"), image(), text(f"Call {PHONE}")]))
    screened = await screen("redact")(ctx, request)
    assert screened.messages[0].content == (
        Text("Who is this?"),
        Image(url=URL),
        Text("Call [PHONE]"),
    )
    assert ctx.texts == ("Who is this?", "Call [PHONE]")
    assert ctx.findings == [
        AuditFinding(
            check="pii", name="phone", action="redact", param="messages[0].content[2].text"
        )
    ]
    # The request the client sent is left as it was.
    assert request.messages[0].content == (
        Text("Who is this?"),
        Image(url=URL),
        Text(f"Call {PHONE}"),
    )


async def test_a_clean_request_is_passed_on_as_it_is() -> None:
    request, ctx = parsed(user([text("Who is this?"), image()]), user("Thanks"))
    assert await screen("redact")(ctx, request) is request
    assert ctx.texts == ("Who is this?", "Thanks")
    assert ctx.findings == []


async def test_log_sends_the_request_unchanged_but_audits_the_redacted_text() -> None:
    request, ctx = parsed(user([text(f"Mail {EMAIL}"), image()]))
    assert await screen("log")(ctx, request) is request
    assert ctx.texts == ("Mail [EMAIL]",)
    assert ctx.findings == [
        AuditFinding(check="pii", name="email", action="log", param="messages[0].content[0].text")
    ]


async def test_block_refuses_with_the_field_and_never_the_value() -> None:
    request, ctx = parsed(user("hello"), user(f"My SSN is {SSN} and mail is {EMAIL}"))
    with pytest.raises(PiiDetectedError) as caught:
        await screen("block")(ctx, request)
    error = caught.value
    assert error.param == "messages[1].content"
    assert SSN not in error.message
    assert EMAIL not in error.message
    assert "email, national_id" in error.message
    assert sorted((f.name, f.action) for f in ctx.findings) == [
        ("email", "block"),
        ("national_id", "block"),
    ]


async def test_block_names_the_text_part() -> None:
    request, ctx = parsed(user([image(), text(f"Call {PHONE}")]))
    with pytest.raises(PiiDetectedError) as caught:
        await screen("block")(ctx, request)
    assert caught.value.param == "messages[0].content[1].text"


# --- PII in the text of images ---------------------------------------------------------------


@pytest.mark.parametrize("action", ["redact", "block"])
async def test_pii_read_from_an_image_refuses_the_request(action: PiiAction) -> None:
    request, ctx = parsed(user([text("Read this form"), image()]))
    ctx.image_texts[0, 1] = f"Name: J. Smith\nSSN: {SSN}"
    with pytest.raises(PiiDetectedError) as caught:
        await screen(action)(ctx, request)
    assert caught.value.param == IMAGE_PATH
    assert "an image" in caught.value.message
    assert SSN not in caught.value.message
    assert ctx.findings == [
        AuditFinding(check="pii", name="national_id", action=action, param=IMAGE_PATH)
    ]


async def test_pii_read_from_an_image_is_logged_under_log() -> None:
    request, ctx = parsed(user([text("Read this form"), image()]))
    ctx.image_texts[0, 1] = f"SSN: {SSN}"
    assert await screen("log")(ctx, request) is request
    assert ctx.findings == [
        AuditFinding(check="pii", name="national_id", action="log", param=IMAGE_PATH)
    ]


async def test_clean_image_text_passes() -> None:
    request, ctx = parsed(user([text("Read this form"), image()]))
    ctx.image_texts[0, 1] = "Invoice total: 42 EUR"
    assert await screen("block")(ctx, request) is request
    assert ctx.findings == []


# --- policy, before and after intake ---------------------------------------------------------


def engine(*rules: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(tuple(msgspec.convert(r, PolicyRule) for r in rules))


async def test_the_second_pass_reports_only_what_intake_revealed() -> None:
    policy = engine(
        {"name": "words", "deny_patterns": ["hunter2"], "action": "log"},
        {"name": "size", "max_image_bytes": 1000, "action": "log"},
    )
    request, ctx = parsed(user([text("my password is hunter2"), image()]))
    await EnforcePolicy(policy, after_intake=False)(ctx, request)
    assert [(f.name, f.param) for f in ctx.findings] == [("words", "messages[0].content[0].text")]
    # Intake fetched the URL and now knows its size.
    ctx.images[0, 1] = InlineImage("image/png", 800, 600, 5000, 1, 22, source="images.example.com")
    await EnforcePolicy(policy, after_intake=True)(ctx, request)
    assert [(f.check, f.name, f.action, f.param) for f in ctx.findings] == [
        ("policy", "words", "log", "messages[0].content[0].text"),
        ("policy", "size", "log", IMAGE_PATH),
    ]


async def test_the_second_pass_blocks_on_text_read_from_an_image() -> None:
    policy = engine({"name": "codes", "deny_patterns": ["(?i)launch code"]})
    request, ctx = parsed(user([text("What does this say?"), image()]))
    assert await EnforcePolicy(policy, after_intake=False)(ctx, request) is request
    ctx.image_texts[0, 1] = "THE LAUNCH CODE IS 0000"
    with pytest.raises(PolicyViolationError) as caught:
        await EnforcePolicy(policy, after_intake=True)(ctx, request)
    assert caught.value.param == IMAGE_PATH
    assert "0000" not in caught.value.message
    assert [(f.name, f.action) for f in ctx.findings] == [("codes", "block")]
