"""JSON Schema (what OpenAI clients send) to Gemini's ``Schema`` (an OpenAPI 3.0 subset).

Gemini takes a schema in two places, each with two fields: ``generationConfig.responseSchema``
or ``responseJsonSchema``, and a function declaration's ``parameters`` or
``parametersJsonSchema``. The ``Schema`` fields are the long-standing ones every Gemini model
honours; the ``*JsonSchema`` fields take JSON Schema as is but only on newer models. So a
schema is converted to ``Schema`` when that loses nothing that shapes the output, and passed
as JSON Schema otherwise (``to_gemini_schema`` returns None).

What the conversion does (googleapis/python-genai ``_transformers.process_schema`` does the
same for the SDK's own users):

- ``type`` upper-cased (``STRING``...); ``["T", "null"]``, ``anyOf [..., {"type": "null"}]``
  and ``{"type": "null"}`` become ``nullable``; ``oneOf`` becomes ``anyOf``.
- Local ``$ref`` (``#/$defs/X``, ``#/definitions/X``) are inlined; a recursive one cannot be.
- A string ``const`` becomes a one-value ``enum``; ``enum`` must be strings (Gemini's is).
- ``propertyOrdering`` keeps the client's property order, which Gemini otherwise sorts.
- Dropped: annotations (``$schema``, ``examples``...), ``additionalProperties: false``
  (Gemini never adds undeclared properties; the Developer API refuses the keyword) and
  validation-only keywords Gemini lacks (``exclusiveMinimum``, ``multipleOf``...).
- ``format`` is kept only where Gemini accepts it (``enum``/``date-time`` on strings,
  ``float``/``double``/``int32``/``int64`` on numbers): it refuses any other value.

Not convertible (JSON Schema is sent instead): open maps (``additionalProperties`` true or a
schema), objects without properties (Gemini refuses them), tuples, ``not``, ``if``, several
non-null types, non-string enums, ``allOf`` of more than one schema, remote or recursive refs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_gemini_schema"]

_KEPT = frozenset(
    {
        "title",
        "description",
        "default",
        "example",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "pattern",
    }
)
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
        "strict",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "contentMediaType",
        "contentEncoding",
        "propertyOrdering",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}


_ANNOTATIONS = frozenset({"title", "description", "default"})
_COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "nullable", "type"})


class _NotConvertible(Exception):
    pass


def to_gemini_schema(schema: dict[str, Any], *, allow_empty_object: bool = False) -> Any:
    """The Gemini ``Schema`` for ``schema``, or None when only JSON Schema can express it.

    ``allow_empty_object`` accepts a top-level object without properties (a function that
    takes no parameters): the caller then leaves ``parameters`` out altogether.
    """
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update(found)
    try:
        return _Converter(defs).convert(schema, allow_empty=allow_empty_object)
    except _NotConvertible:
        return None


class _Converter:
    def __init__(self, defs: dict[str, Any]) -> None:
        self._defs = defs
        self._resolving: list[str] = []

    def convert(self, schema: Any, *, allow_empty: bool = False) -> dict[str, Any]:
        if not isinstance(schema, dict):
            raise _NotConvertible
        schema = _flatten_all_of(schema)
        if "$ref" in schema:
            return self._ref(schema)
        nullable = schema.get("nullable") is True
        variants = schema.get("anyOf", schema.get("oneOf"))
        if variants is not None:
            return self._any_of(schema, variants, nullable)
        out: dict[str, Any] = {}
        kind, type_nullable = _type(schema)
        if kind is not None:
            out["type"] = kind
        if nullable or type_nullable:
            out["nullable"] = True
        for key, value in schema.items():
            if key in _KEPT:
                out[key] = value
            elif key not in _COMBINATORS and key not in _DROPPED:
                self._keyword(out, key, value)
        return _checked(out, allow_empty=allow_empty)

    def _keyword(self, out: dict[str, Any], key: str, value: Any) -> None:
        if key == "properties":
            if not isinstance(value, dict):
                raise _NotConvertible
            out["properties"] = {name: self.convert(sub) for name, sub in value.items()}
            if len(value) > 1:
                out["propertyOrdering"] = list(value)
        elif key == "items":
            out["items"] = self.convert(value)
        elif key == "additionalProperties":
            if value is not False:
                raise _NotConvertible  # an open map has no Schema equivalent
        else:
            out.update(_plain(key, value))

    def _ref(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema["$ref"]
        name = None
        for prefix in ("#/$defs/", "#/definitions/"):
            if isinstance(ref, str) and ref.startswith(prefix):
                name = ref[len(prefix) :]
        if name is None or name not in self._defs or name in self._resolving:
            raise _NotConvertible  # remote, missing or recursive
        self._resolving.append(name)
        try:
            resolved = self.convert(self._defs[name])
        finally:
            self._resolving.pop()
        return _annotate(resolved, schema, skip="$ref")

    def _any_of(self, schema: dict[str, Any], variants: Any, nullable: bool) -> dict[str, Any]:
        if not isinstance(variants, list):
            raise _NotConvertible
        kept = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        if not kept:
            raise _NotConvertible
        if len(kept) == 1:
            out = self.convert(kept[0])
        else:
            out = {"anyOf": [self.convert(v) for v in kept]}
        if nullable or len(kept) < len(variants):
            out["nullable"] = True
        return _annotate(out, schema, skip="anyOf" if "anyOf" in schema else "oneOf")


def _checked(out: dict[str, Any], *, allow_empty: bool) -> dict[str, Any]:
    if "type" not in out and "enum" in out:
        out["type"] = "STRING"
    if "type" not in out:
        raise _NotConvertible  # "any value" has no Schema equivalent
    if out["type"] == "OBJECT" and not out.get("properties") and not allow_empty:
        raise _NotConvertible  # Gemini: "properties: should be non-empty for OBJECT type"
    fmt = out.get("format")
    if fmt is not None and fmt not in _FORMATS.get(out["type"], ()):
        del out["format"]
    return out


def _plain(key: str, value: Any) -> dict[str, Any]:
    """A keyword whose value needs checking but no recursion."""
    if key == "required" and isinstance(value, list):
        return {"required": value}
    if key == "enum" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"enum": value}
    if key == "const" and isinstance(value, str):
        return {"enum": [value]}
    if key == "format":
        return {"format": value} if isinstance(value, str) else {}
    raise _NotConvertible  # a keyword Gemini lacks, or a value it cannot take


def _annotate(resolved: dict[str, Any], schema: dict[str, Any], *, skip: str) -> dict[str, Any]:
    """``resolved`` with the annotations written next to a ``$ref`` or an ``anyOf``."""
    out = dict(resolved)
    for key, value in schema.items():
        if key == skip or key in _DROPPED:
            continue
        if key in _ANNOTATIONS:
            out[key] = value
        elif key == "nullable":
            if value is True:
                out["nullable"] = True
        else:
            raise _NotConvertible  # a constraint beside the reference: not expressible
    return out


def _flatten_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    all_of = schema.get("allOf")
    if all_of is None:
        return schema
    if not isinstance(all_of, list) or len(all_of) != 1 or not isinstance(all_of[0], dict):
        raise _NotConvertible
    # pydantic writes a described reference as {"allOf": [{"$ref": ...}], "description": ...}.
    rest = {k: v for k, v in schema.items() if k != "allOf"}
    return {**all_of[0], **rest}


def _type(schema: dict[str, Any]) -> tuple[str | None, bool]:
    """The upper-cased type and whether ``null`` was one of the listed types."""
    kind = schema.get("type")
    if kind is None:
        return None, False
    if isinstance(kind, list):
        names = [k for k in kind if k != "null"]
        if len(names) != 1:
            raise _NotConvertible  # none, or a union of several: no single Schema type
        return _type({"type": names[0]})[0], len(names) < len(kind)
    if kind == "null":
        return None, True
    if not isinstance(kind, str) or kind not in _TYPES:
        raise _NotConvertible
    return kind.upper(), False
