"""Policy rules: what a caller may send, checked before routing.

Each ``PolicyRule`` from ``governance.policy`` applies to the requests its ``match`` selects
(every given field must match: the public model name, the key id, the tenant, as globs) and
checks the model, the images, ``max_tokens`` and the text. Regular expressions and globs are
compiled once, when the engine is built; a request with no applicable rule costs a few glob
matches.

A rule reports each check it fails once, at its first offending field, so a long
conversation cannot flood the audit log. Messages name the rule, the check and the field,
never the text that matched: they reach the client and the logs.

The engine runs before or after image intake. After intake every image's decoded size is
known (from ``image_bytes`` or ``Image.inline``) and images the gateway fetched still count
as URL images (``InlineImage.source`` names the host); before intake an inline image's size
is worked out from its base64 length and a URL image's size is unknown, so only a stage
placed after intake sees every oversized image.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec

from aperture.errors import PolicyViolationError
from aperture.governance.keys import Principal
from aperture.model import ChatRequest, Image, Text
from aperture.model.locator import FieldLocator
from aperture.settings.governance import PolicyRule

__all__ = ["GlobSet", "PolicyCheck", "PolicyEngine", "Violation", "text_path"]

PolicyCheck = Literal[
    "allow_models",
    "deny_models",
    "max_tokens",
    "max_images",
    "max_image_bytes",
    "allow_image_urls",
    "deny_patterns",
]


class GlobSet:
    """Names matched by fnmatch-style globs (``*``, ``?``, ``[...]``), case-sensitively,
    compiled into one regular expression."""

    def __init__(self, globs: Iterable[str]) -> None:
        translated = [f"(?:{fnmatch.translate(g)})" for g in globs]
        self._pattern = re.compile("|".join(translated)) if translated else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def matches(self, name: str) -> bool:
        return self._pattern is not None and self._pattern.match(name) is not None


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One failed check of one rule; ``message`` is safe to show (no request text)."""

    rule: str
    """The rule's ``name``, or its config path ``governance.policy[i]``."""
    check: PolicyCheck
    param: str
    """The path of the offending field in the client's request."""
    action: Literal["block", "log"]
    message: str
    pattern: int | None = None
    """For ``deny_patterns``: the index of the pattern that matched (for the audit log)."""


class PolicyEngine:
    """The compiled ``governance.policy`` rules; built once, shared by every request."""

    def __init__(self, rules: tuple[PolicyRule, ...]) -> None:
        self._rules = tuple(_CompiledRule.of(rule, i) for i, rule in enumerate(rules))

    def evaluate(
        self,
        request: ChatRequest,
        *,
        model: str,
        principal: Principal,
        locator: FieldLocator,
        image_bytes: Mapping[tuple[int, int], int] | None = None,
        image_texts: Mapping[tuple[int, int], str] | None = None,
        document_texts: Mapping[tuple[int, int], str] | None = None,
    ) -> list[Violation]:
        """Every violation of the rules that apply, in rule order.

        Args:
            request: its ``max_tokens`` is checked only when the client sent one; a
                request without it is neither rejected nor clamped by a rule's cap (the
                provider's own default applies).
            model: the public model name (``ctx.resolution.name``), not the alias sent.
            image_bytes: decoded sizes by (message, part), when intake measured them.
            image_texts: text read from images (OCR) by (message, part), searched like the
                text portions and reported at the image's path.
            document_texts: the text layer of documents by (message, part), likewise,
                reported at the document part's path.
        """
        if not self._rules:
            return []
        subject = _Subject(
            request, model, locator, image_bytes or {}, image_texts or {}, document_texts or {}
        )
        violations: list[Violation] = []
        for rule in self._rules:
            if rule.applies(model, principal):
                violations.extend(rule.check(subject))
        return violations

    def enforce(
        self,
        request: ChatRequest,
        *,
        model: str,
        principal: Principal,
        locator: FieldLocator,
        image_bytes: Mapping[tuple[int, int], int] | None = None,
        image_texts: Mapping[tuple[int, int], str] | None = None,
    ) -> list[Violation]:
        """``evaluate``, then reject on the first ``block`` violation (in rule order).

        Returns:
            The ``log`` violations, for the audit trail.

        Raises:
            PolicyViolationError: naming the rule, with ``param`` the offending field.
        """
        violations = self.evaluate(
            request,
            model=model,
            principal=principal,
            locator=locator,
            image_bytes=image_bytes,
            image_texts=image_texts,
        )
        for violation in violations:
            if violation.action == "block":
                raise PolicyViolationError(violation.message, param=violation.param)
        return violations


@dataclass(frozen=True, slots=True)
class _Subject:
    """What one evaluation looks at; shared by every rule."""

    request: ChatRequest
    model: str
    locator: FieldLocator
    image_bytes: Mapping[tuple[int, int], int]
    image_texts: Mapping[tuple[int, int], str]
    document_texts: Mapping[tuple[int, int], str]


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    label: str
    rule: PolicyRule
    match_model: GlobSet
    match_key: GlobSet
    match_tenant: GlobSet
    allow: GlobSet | None
    deny: GlobSet
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, rule: PolicyRule, index: int) -> _CompiledRule:
        match = rule.match
        return cls(
            label=rule.name or f"governance.policy[{index}]",
            rule=rule,
            match_model=GlobSet(() if match.model is None else (match.model,)),
            match_key=GlobSet(() if match.key is None else (match.key,)),
            match_tenant=GlobSet(() if match.tenant is None else (match.tenant,)),
            allow=None if rule.allow_models is None else GlobSet(rule.allow_models),
            deny=GlobSet(rule.deny_models),
            patterns=tuple(re.compile(p) for p in rule.deny_patterns),
        )

    def applies(self, model: str, principal: Principal) -> bool:
        return (
            _given_matches(self.match_model, model)
            and _given_matches(self.match_key, principal.key_id)
            and _given_matches(self.match_tenant, principal.tenant)
        )

    def check(self, subject: _Subject) -> Iterator[Violation]:
        rule, name = self.rule, f"The policy rule {self.label!r}"
        model = subject.model
        if self.allow is not None and not self.allow.matches(model):
            yield self._violation("allow_models", "model", f"{name} does not allow {model!r}.")
        if self.deny.matches(model):
            yield self._violation("deny_models", "model", f"{name} denies {model!r}.")
        asked = subject.request.max_tokens
        if rule.max_tokens is not None and asked is not None and asked > rule.max_tokens:
            field = subject.locator.max_tokens
            yield self._violation(
                "max_tokens",
                field,
                f"{name} allows {field} up to {rule.max_tokens}; the request asked for {asked}.",
            )
        yield from self._check_images(subject, name)
        if self.patterns:
            found = _search(self.patterns, subject)
            if found is not None:
                param, index = found
                yield self._violation(
                    "deny_patterns",
                    param,
                    f"{name} denies the content at {param} (it matches a denied pattern).",
                    pattern=index,
                )

    def _check_images(self, subject: _Subject, name: str) -> Iterator[Violation]:
        rule = self.rule
        if (
            rule.max_images is None
            and rule.max_image_bytes is None
            and rule.allow_image_urls is not False
        ):
            return
        images = subject.request.images()
        locator = subject.locator
        if rule.max_images is not None and len(images) > rule.max_images:
            m, p, _ = images[rule.max_images]
            yield self._violation(
                "max_images",
                locator.part(m, p),
                f"{name} allows at most {rule.max_images} images; the request has {len(images)}.",
            )
        if rule.max_image_bytes is not None:
            for m, p, image in images:
                size = _decoded_size(image, subject.image_bytes.get((m, p)))
                if size is not None and size > rule.max_image_bytes:
                    yield self._violation(
                        "max_image_bytes",
                        locator.image(m, p),
                        f"{name} allows images up to {rule.max_image_bytes} bytes; this one "
                        f"is {size} bytes.",
                    )
                    break
        if rule.allow_image_urls is False:
            for m, p, image in images:
                if _is_url_image(image):
                    yield self._violation(
                        "allow_image_urls",
                        locator.image(m, p),
                        f"{name} does not allow image URLs; send the image inline as a "
                        "base64 data URI.",
                    )
                    break

    def _violation(
        self, check: PolicyCheck, param: str, message: str, *, pattern: int | None = None
    ) -> Violation:
        return Violation(
            rule=self.label,
            check=check,
            param=param,
            action=self.rule.action,
            message=message,
            pattern=pattern,
        )


def _given_matches(globs: GlobSet, value: str | None) -> bool:
    """An absent match field matches everything; a given one needs a value that matches
    (so a ``key`` or ``tenant`` rule never applies to the master key)."""
    if not globs:
        return True
    return value is not None and globs.matches(value)


def _decoded_size(image: Image, measured: int | None) -> int | None:
    if measured is not None:
        return measured
    if image.inline is not None:
        return image.inline.size_bytes
    if not image.is_data_uri:
        return None  # a URL: unknown until the gateway fetches it
    # Work the size out from the base64 length instead of decoding (or copying) the payload.
    comma = image.url.find(",")
    if comma < 0:
        return None
    length = len(image.url) - comma - 1
    padding = 2 if image.url.endswith("==") else 1 if image.url.endswith("=") else 0
    return max(0, length * 3 // 4 - padding)


def _is_url_image(image: Image) -> bool:
    if image.inline is not None:
        # After intake a fetched image is a data URI; ``source`` still names its host.
        return image.inline.source != "inline"
    return image.url[:8].lower().startswith(("http://", "https://"))


def _search(patterns: tuple[re.Pattern[str], ...], subject: _Subject) -> tuple[str, int] | None:
    """The path of the first text matching a pattern, and that pattern's index."""
    for m, p, whole, text in _texts(subject.request):
        index = _first_match(patterns, text)
        if index is not None:
            return text_path(subject.locator, m, p, whole=whole), index
    for (m, p), text in subject.image_texts.items():
        index = _first_match(patterns, text)
        if index is not None:
            return subject.locator.image(m, p), index
    for (m, p), text in subject.document_texts.items():
        index = _first_match(patterns, text)
        if index is not None:
            return subject.locator.part(m, p), index
    return None


def _first_match(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for i, pattern in enumerate(patterns):
        if pattern.search(text) is not None:
            return i
    return None


def _texts(request: ChatRequest) -> Iterator[tuple[int, int, bool, str]]:
    """(message, part, whether the content is a plain string, text) of every text portion."""
    for m, message in enumerate(request.messages):
        content = message.content
        if isinstance(content, str):
            yield m, 0, True, content
        elif content is not None:
            for p, part in enumerate(content):
                if isinstance(part, Text):
                    yield m, p, False, part.text


def text_path(locator: FieldLocator, m: int, p: int, *, whole: bool) -> str:
    # The locator names parts; a text part's text is its ``.text`` when the part is an
    # element of a content array, and a plain string content is the content field itself.
    path = locator.part(m, p)
    if whole:
        return path.removesuffix("[0]")
    return f"{path}.text" if path.endswith("]") else path
