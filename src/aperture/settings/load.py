"""Read a config file, substitute ``${ENV}``, and report every mistake by its field path."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from aperture.settings import extras
from aperture.settings._governance_checks import governance_problems
from aperture.settings.demo import include_demo
from aperture.settings.fetch_allow import parse_allow_entry
from aperture.settings.schema import AuthSettings, ProviderSettings, Settings, StorageSettings

__all__ = ["ConfigError", "Problem", "load_settings", "parse_settings"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"__aperture_env_(\d+)__")


class Problem(msgspec.Struct, frozen=True):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists every mistake found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_settings(path: Path, env: Mapping[str, str]) -> Settings:
    """Read, substitute and validate the config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_settings(text, env)


def parse_settings(text: str, env: Mapping[str, str]) -> Settings:
    """Validate YAML text into ``Settings``, raising ``ConfigError`` with every problem."""
    # References become plain placeholder words before parsing, so `{key: ${VAR}}` is valid
    # YAML and a variable's value can never inject YAML structure.
    refs: list[tuple[str, str | None]] = []

    def hold(match: re.Match[str]) -> str:
        refs.append((match.group(1), match.group(2)))
        return f"__aperture_env_{len(refs) - 1}__"

    try:
        tree = yaml.safe_load(_ENV_REF.sub(hold, text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([Problem("", f"not valid YAML: {where}{exc}")]) from exc
    if tree is None:
        tree = {}
    problems: list[Problem] = []
    tree = _substitute(tree, _Environment(refs, env), "", problems)
    # One pass reports everything: each section, and each item of a list, is decoded on its
    # own, so a mistake costs only the field (which keeps its default) or the list item it
    # is in, and the meaning checks still run on all that decoded. See ``_Decoded``.
    decoded = _Decoded()
    settings = decoded.value(tree, Settings, "", problems)
    if settings is _INVALID:  # the root itself is not a mapping
        raise ConfigError(problems)
    # Included before the checks, so a model may name a demo provider.
    problems.extend(_check_meaning(include_demo(settings), decoded))
    if problems:
        raise ConfigError(problems)
    assert isinstance(settings, Settings)
    return settings


class _Environment:
    def __init__(self, refs: list[tuple[str, str | None]], env: Mapping[str, str]) -> None:
        self.refs = refs
        self.env = env

    def value(self, index: int) -> str | None:
        name, default = self.refs[index]
        return self.env.get(name, default)


def _substitute(node: Any, env: _Environment, path: str, problems: list[Problem]) -> Any:
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node)

        def replace(match: re.Match[str]) -> str:
            value = env.value(int(match.group(1)))
            if value is None:
                name = env.refs[int(match.group(1))][0]
                problems.append(Problem(path, f"environment variable {name} is not set"))
                return ""
            return value

        text = _PLACEHOLDER.sub(replace, node)
        if whole is not None and text:
            # A value that is only a reference takes the scalar type of what it holds,
            # so `port: ${PORT}` is a number; structure is never taken from the value.
            scalar = yaml.safe_load(text) if "\n" not in text else text
            if isinstance(scalar, bool | int | float):
                return scalar
        return text
    if isinstance(node, dict):
        return {k: _substitute(v, env, _join(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    return None


_INVALID: Any = object()
"""What a value that did not decode becomes; its problems are already recorded."""


class _Decoded:
    """Decodes the config tree piece by piece, recording every problem instead of the first.

    msgspec stops at a document's first error, so it is given one leaf at a time: a struct is
    decoded field by field (a field in error keeps its default, a required one fails its
    struct), and a list of structs item by item (an item in error is left out). The meaning
    checks then run on what decoded; since left-out items would shift the indices of the
    rest, this remembers where each kept item was in the file (``at``), and the names of the
    items left out, so that a reference to one is not reported a second time as unknown.
    """

    def __init__(self) -> None:
        self._kept: dict[str, list[int]] = {}
        self.undecoded_names: dict[str, set[str]] = {}

    def at(self, path: str, index: int) -> str:
        """The path of the ``index``-th decoded item of the list at ``path``, as in the file."""
        kept = self._kept.get(path)
        return f"{path}[{kept[index] if kept is not None and index < len(kept) else index}]"

    def value(self, value: Any, annotation: Any, path: str, problems: list[Problem]) -> Any:
        struct = _struct_of(annotation)
        if struct is not None:
            return self._struct(value, struct, path, problems)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType) and value is not None:
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1 and _struct_of(inner[0]) is not None:
                return self._struct(value, inner[0], path, problems)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis and _struct_of(args[0]):
            return self._items(value, args[0], path, problems)
        try:
            return msgspec.convert(value, annotation)
        except msgspec.ValidationError as exc:
            detail = str(exc).split(" - at `", 1)
            where = detail[1].rstrip("`").removeprefix("$") if len(detail) == 2 else ""
            message = detail[0]
            choices = _choices(annotation)
            if message.startswith("Invalid enum value") and choices:
                message = f"{message} (one of: {', '.join(choices)})"
            problems.append(Problem(f"{path}{where}", message))
            return _INVALID

    def _items(self, value: Any, item: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected a list, got {_kind_of(value)}"))
            return _INVALID
        kept: list[int] = []
        items: list[Any] = []
        for i, raw in enumerate(value):
            decoded = self.value(raw, item, f"{path}[{i}]", problems)
            if decoded is _INVALID:
                name = raw.get("name", raw.get("id")) if isinstance(raw, dict) else None
                if isinstance(name, str):
                    self.undecoded_names.setdefault(path, set()).add(name)
            else:
                kept.append(i)
                items.append(decoded)
        self._kept[path] = kept
        return tuple(items)

    def _struct(
        self, value: Any, struct: type[msgspec.Struct], path: str, problems: list[Problem]
    ) -> Any:
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a mapping, got {_kind_of(value)}"))
            return _INVALID
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        hints = typing.get_type_hints(struct)
        for key in value:
            if key not in fields:
                known = ", ".join(sorted(fields))
                problems.append(Problem(_join(path, str(key)), f"unknown field (known: {known})"))
        given: dict[str, Any] = {}
        complete = True
        for key, field in fields.items():
            if key in value:
                decoded = self.value(value[key], hints[field.name], _join(path, key), problems)
                if decoded is not _INVALID:
                    given[field.name] = decoded
                elif field.required:
                    complete = False
            elif field.required:
                problems.append(Problem(_join(path, key), "missing required field"))
                complete = False
        return struct(**given) if complete else _INVALID


def _choices(annotation: Any) -> tuple[str, ...]:
    """The values a ``Literal`` inside ``annotation`` allows (also in an optional or a
    tuple), so an enum error can list them."""
    if typing.get_origin(annotation) is Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis and (found := _choices(arg)):
            return found
    return ()


def _kind_of(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), repr(value))


def _check_storage(storage: StorageSettings) -> list[Problem]:
    problems: list[Problem] = []
    if not storage.heartbeat_s > 0:
        problems.append(Problem("storage.heartbeat_s", "must be positive"))
    if not storage.instance_ttl_s > storage.heartbeat_s:
        problems.append(Problem("storage.instance_ttl_s", "must be longer than heartbeat_s"))
    if not storage.redis_prefix or any(c in storage.redis_prefix for c in "{} \t\r\n"):
        # Braces would break the keys' hash tags (which keep a script's keys on one slot).
        problems.append(
            Problem("storage.redis_prefix", "must be non-empty, without braces or whitespace")
        )
    problems.extend(
        Problem(f"storage.{field}", "must be positive")
        for field in ("redis_timeout_s", "redis_retry_s", "ledger_timeout_s", "database_timeout_s")
        if not getattr(storage, field) > 0
    )
    return problems


def _check_meaning(settings: Settings, decoded: _Decoded) -> list[Problem]:
    """Cross-field rules: references resolve, names are unique, values are usable."""
    problems: list[Problem] = []
    server = settings.server
    problems.extend(
        Problem(f"server.{field}", "must be between 0 and 65535")
        for field in ("port", "admin_port")
        if not 0 <= getattr(server, field) <= 65535
    )
    problems.extend(
        Problem(f"server.{field}", "must be positive")
        for field in (
            "max_body_bytes",
            "header_timeout_s",
            "body_timeout_s",
            "write_idle_timeout_s",
            "drain_timeout_s",
        )
        if getattr(server, field) <= 0
    )
    if server.metrics_token is not None and not server.metrics_token.strip():
        problems.append(Problem("server.metrics_token", "must not be empty (omit it instead)"))
    problems.extend(_check_storage(settings.storage))
    if not settings.responses.retention_hours > 0:
        problems.append(Problem("responses.retention_hours", "must be positive"))
    if settings.auth is not None:
        problems.extend(_console_problems(settings.auth))
    images = settings.images
    problems.extend(
        Problem(f"images.{field}", "must be positive")
        for field in ("max_image_bytes", "max_image_pixels", "max_images_per_request", "max_frames")
        if getattr(images, field) <= 0
    )
    for i, entry in enumerate(images.fetch.allow_private_hosts):
        try:
            parse_allow_entry(entry)
        except ValueError as exc:
            problems.append(Problem(f"images.fetch.allow_private_hosts[{i}]", str(exc)))
    providers: dict[str, int] = {}
    for i, provider in enumerate(settings.providers):
        path = decoded.at("providers", i)
        if provider.name in providers:
            problems.append(Problem(f"{path}.name", f"duplicate provider name {provider.name!r}"))
        providers[provider.name] = i
        problems.extend(_check_kind(provider, path))
        if provider.timeout_s <= 0 or provider.connect_timeout_s <= 0:
            problems.append(Problem(f"{path}.timeout_s", "timeouts must be positive"))
        problems.extend(
            Problem(f"{path}.{field}", "must be positive")
            for field in ("max_event_bytes", "max_response_bytes")
            if getattr(provider, field) <= 0
        )
        if not 0 < provider.quota_cooldown_s <= 86_400:
            problems.append(
                Problem(f"{path}.quota_cooldown_s", "must be positive and at most a day (86400)")
            )
    # A provider in error is left out, but it is not unknown: its mistakes are reported.
    known = set(providers) | decoded.undecoded_names.get("providers", set())
    problems.extend(_check_models(settings, known, decoded))
    problems.extend(_check_routes(settings, known, decoded))
    problems.extend(
        Problem(path, msg) for path, msg in governance_problems(settings.governance, decoded.at)
    )
    return problems


def _console_problems(auth: AuthSettings) -> list[Problem]:
    problems = [
        Problem(f"auth.{field}", "must be positive")
        for field in ("console_idle_s", "console_max_s")
        if not getattr(auth, field) > 0
    ]
    if not auth.console_cache_s >= 0:
        problems.append(Problem("auth.console_cache_s", "must not be negative"))
    return problems


def _check_kind(provider: ProviderSettings, path: str) -> list[Problem]:
    """The kind is one the provider registry lists, and its base_url is usable for it."""
    # Imported here: providers import settings (a target carries its provider's settings),
    # and settings read the registry only to check a loaded file.
    from aperture.providers.registry import SPECS

    spec = SPECS.get(provider.kind)
    if spec is None:
        known = ", ".join(SPECS)
        return [Problem(f"{path}.kind", f"unknown provider kind {provider.kind!r} ({known})")]
    if provider.base_url is not None and not _is_http_url(provider.base_url):
        return [Problem(f"{path}.base_url", "must be an http:// or https:// URL")]
    if provider.base_url is None and spec.base_url_needed is not None:
        need = f"{provider.kind} needs {spec.base_url_needed} as base_url"
        return [Problem(f"{path}.base_url", need)]
    if provider.kind == "bedrock" and not extras.installed("bedrock"):
        return [Problem(f"{path}.kind", extras.needs("bedrock"))]
    return []


def _check_routes(settings: Settings, known: set[str], decoded: _Decoded) -> list[Problem]:
    problems: list[Problem] = []
    ids: set[str] = set()
    for i, route in enumerate(settings.routes):
        path = decoded.at("routes", i)
        if route.id in ids:
            problems.append(Problem(f"{path}.id", f"duplicate route id {route.id!r}"))
        ids.add(route.id)
        if not route.providers:
            problems.append(Problem(f"{path}.providers", "a route needs at least one provider"))
        for j, target in enumerate(route.providers):
            where = decoded.at(f"{path}.providers", j)
            if target.provider not in known:
                problems.append(
                    Problem(f"{where}.provider", f"unknown provider {target.provider!r}")
                )
            if target.weight < 0:
                problems.append(Problem(f"{where}.weight", "must not be negative"))
        if route.strategy == "canary" and not any(t.canary for t in route.providers):
            problems.append(Problem(f"{path}.providers", "a canary route marks one canary"))
    return problems


def _check_models(settings: Settings, known: set[str], decoded: _Decoded) -> list[Problem]:
    problems: list[Problem] = []
    names: set[str] = set()
    for i, model in enumerate(settings.models):
        path = decoded.at("models", i)
        if model.provider not in known:
            listed = ", ".join(sorted(known)) or "none are configured"
            problems.append(
                Problem(f"{path}.provider", f"unknown provider {model.provider!r} ({listed})")
            )
        for j, name in enumerate((model.name, *model.aliases)):
            where = f"{path}.name" if j == 0 else f"{path}.aliases[{j - 1}]"
            if not name:
                problems.append(Problem(where, "must not be empty"))
            elif name in names:
                problems.append(Problem(where, f"model name {name!r} is already taken"))
            names.add(name)
        minimum = model.constraints.min_max_tokens
        if minimum is not None and minimum <= 0:
            problems.append(Problem(f"{path}.constraints.min_max_tokens", "must be positive"))
        if model.wire is not None:
            problems.extend(_check_wire(settings, model.provider, model.wire, f"{path}.wire"))
    return problems


def _check_wire(settings: Settings, provider: str, wire: str, path: str) -> list[Problem]:
    """The model's provider kind offers ``wire`` (its spec lists the wires it has)."""
    from aperture.providers.registry import SPECS  # as in _check_kind

    kind = next((p.kind for p in settings.providers if p.name == provider), None)
    spec = SPECS.get(kind) if kind is not None else None
    if spec is None:
        return []  # the provider or its kind is reported already
    try:
        spec.wire_named(wire)
    except LookupError as exc:
        return [Problem(path, str(exc))]
    return []


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
