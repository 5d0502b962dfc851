"""The configuration reference and the config file's JSON Schema, generated from the settings.

``python -m aperture.settings.reference`` writes docs/configuration.md and
docs/aperture.schema.json; ``--check`` fails when either is stale. Each field's sentence is
the comment above it, the comment at the end of its line, or the string after it in the
source of its Struct, so that the documentation lives beside the field it describes and a
field without one is caught (tests/settings/test_reference.py).
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import json
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

from aperture.settings.schema import Settings

__all__ = ["FieldDoc", "fields", "main", "render_markdown", "render_schema", "undocumented"]

_ROOT = Path(__file__).resolve().parents[3]
MARKDOWN_PATH = _ROOT / "docs" / "configuration.md"
SCHEMA_PATH = _ROOT / "docs" / "aperture.schema.json"


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One setting as the reference shows it."""

    path: str  # ``server.port``, ``providers[].name``
    owner: str  # the Struct that declares it
    name: str
    type: str
    default: str  # ``required`` when the field has none
    allowed: tuple[str, ...]  # a Literal's values (or the provider kinds)
    doc: str


@dataclass(frozen=True, slots=True)
class _Section:
    path: str
    struct: type[msgspec.Struct]
    doc: str


@functools.cache
def _source_docs(cls: type) -> tuple[str, dict[str, str]]:
    """The class docstring and each field's comment or docstring, read from its source."""
    source = inspect.getsource(inspect.getmodule(cls))  # type: ignore[arg-type]
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    docs: dict[str, str] = {}
    body = node.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        parts: list[str] = []
        above: list[str] = []
        line = stmt.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        parts.extend(above)
        end = stmt.end_lineno or stmt.lineno
        parts.extend(comments[n] for n in range(stmt.lineno, end + 1) if n in comments)
        following = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            parts.append(inspect.cleandoc(following.value.value))
        docs[stmt.target.id] = " ".join(p for p in parts if p)
    return inspect.cleandoc(cls.__doc__ or ""), docs


def _kinds() -> tuple[str, ...]:
    # The same list ``load`` checks a provider's kind against (plain data, read lazily).
    from aperture.providers.registry import SPECS

    return tuple(sorted(SPECS))


def _structs_in(t: mi.Type) -> Iterator[tuple[str, type[msgspec.Struct]]]:
    """The Structs a field's type holds, with the path suffix they are reached by."""
    if isinstance(t, mi.StructType):
        yield "", t.cls
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _structs_in(member)
    elif isinstance(t, mi.VarTupleType | mi.ListType):
        for suffix, cls in _structs_in(t.item_type):
            yield "[]" + suffix, cls


def _type_name(t: mi.Type) -> str:
    match t:
        case mi.StrType():
            return "string"
        case mi.IntType():
            return "integer"
        case mi.FloatType():
            return "number"
        case mi.BoolType():
            return "boolean"
        case mi.NoneType():
            return "null"
        case mi.LiteralType():
            return "string"
        case mi.StructType():
            return "section"
        case mi.VarTupleType() | mi.ListType():
            return f"list of {_type_name(t.item_type)}"
        case mi.DictType():
            return f"map of {_type_name(t.key_type)} to {_type_name(t.value_type)}"
        case mi.UnionType():
            return " or ".join(_type_name(m) for m in t.types)
        case _:
            return type(t).__name__


def _literals(t: mi.Type) -> tuple[str, ...]:
    match t:
        case mi.LiteralType():
            return tuple(str(v) for v in t.values)
        case mi.UnionType():
            return tuple(v for m in t.types for v in _literals(m))
        case mi.VarTupleType() | mi.ListType():
            return _literals(t.item_type)
        case _:
            return ()


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default_factory is not msgspec.NODEFAULT:
        value: Any = field.default_factory()
    else:
        value = field.default
    if isinstance(value, msgspec.Struct):
        return "(section)"
    return json.dumps(msgspec.to_builtins(value))


def _sections() -> list[_Section]:
    out: list[_Section] = []
    seen: set[str] = set()

    def walk(path: str, cls: type[msgspec.Struct]) -> None:
        if path in seen:
            return
        seen.add(path)
        out.append(_Section(path, cls, _source_docs(cls)[0]))
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            for suffix, sub in _structs_in(f.type):
                walk(f"{path}.{f.name}{suffix}" if path else f"{f.name}{suffix}", sub)

    walk("", Settings)
    return out


def fields() -> list[FieldDoc]:
    """Every setting the config file accepts, in the order of the file's sections."""
    out: list[FieldDoc] = []
    for section in _sections():
        info = mi.type_info(section.struct)
        assert isinstance(info, mi.StructType)
        docs = _source_docs(section.struct)[1]
        for f in info.fields:
            if any(True for _ in _structs_in(f.type)):
                continue  # a section: it has its own table
            path = f"{section.path}.{f.name}" if section.path else f.name
            allowed = _literals(f.type)
            if section.path == "providers[]" and f.name == "kind":
                allowed = _kinds()
            out.append(
                FieldDoc(
                    path=path,
                    owner=section.struct.__name__,
                    name=f.name,
                    type=_type_name(f.type),
                    default=_default(f),
                    allowed=allowed,
                    doc=docs.get(f.name, ""),
                )
            )
    return out


def undocumented() -> list[str]:
    """The paths of settings whose source carries no sentence for them."""
    return [f.path for f in fields() if not f.doc]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    all_fields = fields()
    by_section: dict[str, list[FieldDoc]] = {}
    for f in all_fields:
        by_section.setdefault(f.path.rpartition(".")[0], []).append(f)
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m aperture.settings.reference` from the settings types"
        " (src/aperture/settings/); edit the comments there, not this file. -->",
        "",
        f"Every setting of the config file ({len(all_fields)} of them), by section. A path"
        " like `providers[].name` is a field of each item of a list. Unknown fields are"
        " errors. Editors can validate a config file against"
        " [aperture.schema.json](aperture.schema.json) (YAML: add"
        " `# yaml-language-server: $schema=<path>/aperture.schema.json` at the top).",
        "",
    ]
    for section in _sections():
        rows = by_section.get(section.path, [])
        title = section.path or "top level"
        out += [f"## `{title}`", ""]
        if section.doc:
            out += [section.doc.replace("\n", " "), ""]
        if not rows:
            continue
        out += ["| Setting | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for f in rows:
            doc = f.doc
            if f.allowed:
                doc += (" " if doc else "") + "One of: " + ", ".join(f"`{v}`" for v in f.allowed)
                doc += "."
            out.append(f"| `{f.path}` | {f.type} | `{_cell(f.default)}` | {_cell(doc)} |")
        out.append("")
    return "\n".join(out)


def render_schema() -> str:
    """msgspec's JSON Schema of Settings, each property given its sentence."""
    schema: dict[str, Any] = msgspec.json.schema(Settings)
    defs: dict[str, Any] = schema.get("$defs", {})
    for section in _sections():
        definition = defs.get(section.struct.__name__)
        if definition is None:
            continue
        class_doc, docs = _source_docs(section.struct)
        if class_doc:
            definition["description"] = class_doc.replace("\n", " ")
        for name, prop in definition.get("properties", {}).items():
            # A section's own fields carry the sentences; the property names it.
            prop["description"] = docs.get(name) or f"The {name} section."
    provider = defs.get("ProviderSettings", {}).get("properties", {})
    if "kind" in provider:
        provider["kind"]["enum"] = list(_kinds())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Aperture config file"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aperture.settings.reference",
        description="Write (or --check) docs/configuration.md and docs/aperture.schema.json.",
    )
    parser.add_argument("--check", action="store_true", help="fail if either file is stale")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        sys.stderr.write(
            "settings without a sentence in their source:\n  " + "\n  ".join(missing) + "\n"
        )
        return 1
    wanted = {MARKDOWN_PATH: render_markdown(), SCHEMA_PATH: render_schema()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            sys.stderr.write(f"{p} is stale: run python -m aperture.settings.reference\n")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(wanted[p])
        sys.stderr.write(f"wrote {p}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
