"""The configuration reference and JSON Schema cover every setting and are current."""

from __future__ import annotations

import json
from typing import Any

from aperture.settings import reference


def test_every_setting_has_a_sentence_in_its_source() -> None:
    assert reference.undocumented() == []


def test_the_generated_files_are_current() -> None:
    # Stale: run `python -m aperture.settings.reference` and commit docs/.
    assert reference.MARKDOWN_PATH.read_text() == reference.render_markdown()
    assert reference.SCHEMA_PATH.read_text() == reference.render_schema()
    assert reference.main(["--check"]) == 0


def test_the_page_names_every_field_with_its_default_and_allowed_values() -> None:
    page = reference.MARKDOWN_PATH.read_text()
    fields = reference.fields()
    assert len(fields) > 100
    for f in fields:
        assert f"| `{f.path}` |" in page, f.path
    row = next(line for line in page.splitlines() if line.startswith("| `routes[].strategy`"))
    assert "`priority`" in row and "`canary`" in row
    kind = next(line for line in page.splitlines() if line.startswith("| `providers[].kind`"))
    assert "`openai`" in kind and "required" in kind


def test_the_schema_describes_every_property_and_lists_the_kinds() -> None:
    schema: dict[str, Any] = json.loads(reference.SCHEMA_PATH.read_text())
    defs: dict[str, Any] = schema["$defs"]
    for name, definition in defs.items():
        for prop, body in definition.get("properties", {}).items():
            assert body.get("description"), f"{name}.{prop}"
    assert "openai" in defs["ProviderSettings"]["properties"]["kind"]["enum"]
    assert defs["Settings"]["additionalProperties"] is False
