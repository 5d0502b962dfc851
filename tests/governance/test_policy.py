"""Policy rules over real parsed requests: each check, match scoping, the client's field
paths, log versus block, and messages that never repeat the text that matched."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from aperture.dialects.anthropic.inbound import parse_messages_request
from aperture.dialects.c1.inbound import parse_c1_request
from aperture.dialects.openai.inbound import parse_chat_request
from aperture.errors import PolicyViolationError
from aperture.governance.keys import Principal
from aperture.governance.policy import GlobSet, PolicyEngine, Violation
from aperture.images import ImageLimits, inspect_data_uri
from aperture.images.limits import CONVERTIBLE_MIME_TYPES
from aperture.model import ChatRequest, Image, InlineImage
from aperture.model.locator import FieldLocator
from aperture.pipeline.images import replace_images
from aperture.settings.governance import PolicyRule
from aperture.storage import ApiKey
from tests.sample_images import png

SECRET = "hunter2-launch-codes"
PNG = png()
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
ACME = Principal(
    ApiKey(
        id="k-acme-1",
        name="ci",
        key_hash=b"h",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        tenant="acme",
    )
)
OTHER = Principal(
    ApiKey(id="k-other", name="x", key_hash=b"h", created_at=datetime(2026, 1, 1, tzinfo=UTC))
)
MASTER = Principal()


def engine(*rules: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(tuple(msgspec.convert(r, PolicyRule) for r in rules))


def chat(*content: Any, **fields: Any) -> tuple[ChatRequest, FieldLocator]:
    """An OpenAI body with one user message per ``content`` item."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": c} for c in content],
        **fields,
    }
    return parse_chat_request(json.dumps(body).encode())


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def check(
    policy: PolicyEngine,
    parsed: tuple[ChatRequest, FieldLocator],
    *,
    model: str = "gpt-4o",
    who: Principal = ACME,
    **kw: Any,
) -> list[Violation]:
    request, locator = parsed
    return policy.evaluate(request, model=model, principal=who, locator=locator, **kw)


def found(violations: list[Violation]) -> list[tuple[str, str, str]]:
    return [(v.rule, v.check, v.param) for v in violations]


def test_globs_match_whole_names_case_sensitively() -> None:
    globs = GlobSet(["gpt-4o*", "claude-?-haiku", "llama[34]"])
    assert [globs.matches(n) for n in ("gpt-4o-mini", "gpt-4", "claude-3-haiku")] == [
        True,
        False,
        True,
    ]
    assert [globs.matches(n) for n in ("llama3", "llama5", "GPT-4o", "my-gpt-4o")] == [
        True,
        False,
        False,
        False,
    ]
    assert not GlobSet([]) and not GlobSet([]).matches("anything")


def test_allow_models_and_deny_models_check_the_public_name() -> None:
    policy = engine(
        {"name": "vendors", "allow_models": ["gpt-*", "claude-*"]},
        {"deny_models": ["*-preview"]},
    )
    assert check(policy, chat("hi"), model="gpt-4o") == []
    assert found(check(policy, chat("hi"), model="llama3")) == [
        ("vendors", "allow_models", "model")
    ]
    assert found(check(policy, chat("hi"), model="gpt-5-preview")) == [
        ("governance.policy[1]", "deny_models", "model")
    ]
    (violation,) = check(policy, chat("hi"), model="llama3")
    assert violation.message == "The policy rule 'vendors' does not allow 'llama3'."


def test_an_empty_allow_list_allows_nothing_and_a_missing_one_everything() -> None:
    assert found(check(engine({"allow_models": []}), chat("hi"))) == [
        ("governance.policy[0]", "allow_models", "model")
    ]
    assert check(engine({"deny_models": []}), chat("hi")) == []


def test_a_rule_applies_only_when_every_given_match_field_matches() -> None:
    policy = engine(
        {"name": "acme", "match": {"tenant": "acme"}, "deny_models": ["*"]},
        {"name": "ci-keys", "match": {"key": "k-acme-*"}, "deny_models": ["*"]},
        {"name": "both", "match": {"key": "k-*", "tenant": "globex"}, "deny_models": ["*"]},
        {"name": "mini", "match": {"model": "*-mini"}, "deny_models": ["*"]},
    )
    assert [v.rule for v in check(policy, chat("hi"), who=ACME)] == ["acme", "ci-keys"]
    assert check(policy, chat("hi"), who=OTHER) == []
    # The master key has no key id and no tenant: key and tenant rules never apply to it.
    assert check(policy, chat("hi"), who=MASTER) == []
    assert [v.rule for v in check(policy, chat("hi"), model="gpt-4o-mini", who=MASTER)] == ["mini"]


def test_max_tokens_rejects_only_explicit_values_over_the_cap() -> None:
    policy = engine({"max_tokens": 1000})
    assert check(policy, chat("hi", max_tokens=1000)) == []
    assert check(policy, chat("hi")) == []  # no value: not rejected, not clamped
    (over,) = check(policy, chat("hi", max_tokens=1001))
    assert (over.check, over.param) == ("max_tokens", "max_tokens")
    assert "up to 1000" in over.message and "1001" in over.message
    # The param is the field the client used.
    (newer,) = check(policy, chat("hi", max_completion_tokens=4096))
    assert newer.param == "max_completion_tokens"


def test_max_images_names_the_first_image_over_the_limit() -> None:
    policy = engine({"max_images": 2})
    two = chat([text("compare"), image(PNG_URI), image(PNG_URI)])
    assert check(policy, two) == []
    three = chat([text("compare"), image(PNG_URI)], [image(PNG_URI), image(PNG_URI)])
    (violation,) = check(policy, three)
    assert (violation.check, violation.param) == ("max_images", "messages[1].content[1]")
    assert "at most 2 images" in violation.message and "has 3" in violation.message


def test_max_image_bytes_works_out_inline_sizes_before_intake() -> None:
    # The size comes from the base64 length, exactly, without decoding.
    parsed = chat([text("look"), image(PNG_URI)])
    assert check(engine({"max_image_bytes": len(PNG)}), parsed) == []
    (violation,) = check(engine({"max_image_bytes": len(PNG) - 1}), parsed)
    assert (violation.check, violation.param) == (
        "max_image_bytes",
        "messages[0].content[1].image_url.url",
    )
    assert f"this one is {len(PNG)} bytes" in violation.message
    # A URL's size is unknown until it is fetched: nothing to say yet.
    assert check(engine({"max_image_bytes": 1}), chat([image("https://example.com/a.png")])) == []


def test_max_image_bytes_uses_what_intake_measured() -> None:
    request, locator = chat([text("look"), image("https://example.com/a.png"), image(PNG_URI)])
    limits = ImageLimits(
        max_bytes=10_000_000, max_pixels=10_000_000, accepted=CONVERTIBLE_MIME_TYPES
    )
    inspected = inspect_data_uri(PNG_URI, limits, param="x")
    after = replace_images(request, {(0, 2): Image(inspected.url, None, inspected.info)})
    policy = engine({"max_image_bytes": len(PNG) - 1})
    (violation,) = check(policy, (after, locator))
    assert violation.param == "messages[0].content[2].image_url.url"
    # Sizes passed by the stage (e.g. from ctx.images) cover images the request does not.
    (measured,) = check(policy, (request, locator), image_bytes={(0, 1): len(PNG)})
    assert measured.param == "messages[0].content[1].image_url.url"
    assert check(policy, (request, locator), image_bytes={(0, 1): 10, (0, 2): 10}) == []


def test_image_urls_are_refused_when_the_rule_says_so_even_after_a_fetch() -> None:
    policy = engine({"name": "inline-only", "allow_image_urls": False})
    (violation,) = check(policy, chat([image(PNG_URI), image("HTTPS://example.com/a.png")]))
    assert (violation.check, violation.param) == (
        "allow_image_urls",
        "messages[0].content[1].image_url.url",
    )
    assert "base64 data URI" in violation.message
    assert check(policy, chat([image(PNG_URI)])) == []
    # After intake a fetched image is a data URI, but it still came from a URL.
    request, locator = chat([image("https://example.com/a.png")])
    fetched = InlineImage("image/png", 64, 48, len(PNG), 1, 22, source="example.com")
    after = replace_images(request, {(0, 0): Image(PNG_URI, None, fetched)})
    assert [v.param for v in check(policy, (after, locator))] == [
        "messages[0].content[0].image_url.url"
    ]
    for allowed in (True, None):
        url = chat([image("https://example.com/a.png")])
        assert check(engine({"allow_image_urls": allowed}), url) == []


def test_deny_patterns_name_the_text_field_and_never_echo_it() -> None:
    policy = engine({"name": "no-secrets", "deny_patterns": [r"hunter\d", "(?i)launch codes"]})
    parsed = chat("hello", [image(PNG_URI), text(f"the password is {SECRET}")])
    (violation,) = check(policy, parsed)
    assert (violation.rule, violation.check, violation.param) == (
        "no-secrets",
        "deny_patterns",
        "messages[1].content[1].text",
    )
    assert violation.pattern == 0
    assert SECRET not in violation.message and "hunter" not in violation.message
    # A plain string content is the content field itself.
    (plain,) = check(policy, chat("hi", "LAUNCH CODES please"))
    assert (plain.param, plain.pattern) == ("messages[1].content", 1)
    assert check(policy, chat("hunter is a name", [text("Launch code")])) == []


def test_patterns_are_case_sensitive_unless_they_say_otherwise() -> None:
    assert check(engine({"deny_patterns": ["secret"]}), chat("SECRET")) == []
    assert len(check(engine({"deny_patterns": ["(?i)secret"]}), chat("SECRET"))) == 1


def test_text_read_from_images_is_searched_and_reported_at_the_image() -> None:
    policy = engine({"deny_patterns": ["launch codes"]})
    parsed = chat([text("what does it say?"), image(PNG_URI)])
    (violation,) = check(policy, parsed, image_texts={(0, 1): "the launch codes are 1234"})
    assert violation.param == "messages[0].content[1].image_url.url"
    assert check(policy, parsed, image_texts={(0, 1): "a cat"}) == []


def test_a_rule_reports_each_check_once_at_its_first_offending_field() -> None:
    policy = engine(
        {"allow_image_urls": False, "max_image_bytes": 1, "deny_patterns": ["x"], "max_tokens": 1}
    )
    url = "https://example.com/a.png"
    parts = [text("x"), image(url), image(url), image(PNG_URI), image(PNG_URI)]
    parsed = chat(parts, "x", max_tokens=9)
    assert found(check(policy, parsed)) == [
        ("governance.policy[0]", "max_tokens", "max_tokens"),
        ("governance.policy[0]", "max_image_bytes", "messages[0].content[3].image_url.url"),
        ("governance.policy[0]", "allow_image_urls", "messages[0].content[1].image_url.url"),
        ("governance.policy[0]", "deny_patterns", "messages[0].content[0].text"),
    ]


def test_enforce_raises_on_the_first_block_and_returns_the_logged_ones() -> None:
    policy = engine(
        {"name": "watch", "deny_patterns": ["hunter"], "action": "log"},
        {"name": "cap", "max_tokens": 10},
        {"name": "secrets", "deny_patterns": ["hunter"]},
    )
    request, locator = chat(f"tell me {SECRET}", max_tokens=50)
    with pytest.raises(PolicyViolationError) as caught:
        policy.enforce(request, model="gpt-4o", principal=ACME, locator=locator)
    error = caught.value
    assert (error.code, error.status, error.param) == ("policy_violation", 400, "max_tokens")
    assert "'cap'" in error.message
    request, locator = chat(f"tell me {SECRET}")
    with pytest.raises(PolicyViolationError) as caught:
        policy.enforce(request, model="gpt-4o", principal=ACME, locator=locator)
    assert caught.value.param == "messages[0].content"
    assert "'secrets'" in caught.value.message and SECRET not in caught.value.message
    logged = engine({"name": "watch", "deny_patterns": ["hunter"], "action": "log"}).enforce(
        request, model="gpt-4o", principal=ACME, locator=locator
    )
    assert [(v.rule, v.action, v.param) for v in logged] == [
        ("watch", "log", "messages[0].content")
    ]


def test_no_rules_and_no_applicable_rules_find_nothing() -> None:
    request, locator = chat(f"say {SECRET}", max_tokens=10**6)
    assert PolicyEngine(()).enforce(request, model="m", principal=ACME, locator=locator) == []
    scoped = engine({"match": {"tenant": "globex"}, "deny_patterns": ["."], "max_tokens": 1})
    assert scoped.enforce(request, model="m", principal=ACME, locator=locator) == []


def test_paths_follow_the_dialect_the_client_used() -> None:
    policy = engine({"deny_patterns": ["hunter"], "max_images": 0})
    body = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://e.com/a.png"}},
                    {"type": "text", "text": f"my password is {SECRET}"},
                ],
            },
        ],
    }
    anthropic = parse_messages_request(json.dumps(body).encode())
    assert [v.param for v in check(policy, anthropic)] == [
        "messages[2].content[0]",
        "messages[2].content[1].text",
    ]
    c1 = parse_c1_request(
        json.dumps(
            {"model": "m", "message": SECRET, "images": [{"url": "https://e.com/a.png"}]}
        ).encode()
    )
    assert [v.param for v in check(policy, c1)] == ["images[0]", "message"]
