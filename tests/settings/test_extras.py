"""A configuration that needs an optional extra which is not installed fails its check at the
field that needs it, with the command that installs it; the demo leaves Bedrock out."""

from __future__ import annotations

import sys

import pytest

from aperture.emulator import create_emulator_app
from aperture.settings import ConfigError, parse_settings
from aperture.settings.demo import include_demo

_BEDROCK = "providers:\n  - {name: aws, kind: bedrock, region: us-east-1}\n"
_PII = "governance:\n  pii: {detectors: [email, phone]}\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, {})
    return [str(p) for p in caught.value.problems]


# A module is "not installed" for a test through a None entry in sys.modules, for which
# importlib.util.find_spec answers None, as it does for a module that is not there.


def test_a_bedrock_provider_without_botocore_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parse_settings(_BEDROCK, {})  # installed here (the test extra has it)
    monkeypatch.setitem(sys.modules, "botocore", None)
    assert _problems(_BEDROCK) == [
        "providers[0].kind: a bedrock provider needs the bedrock extra (botocore): "
        "pip install 'aperture[bedrock]'"
    ]


def test_the_phone_detector_without_phonenumbers_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parse_settings(_PII, {})
    monkeypatch.setitem(sys.modules, "phonenumbers", None)
    assert _problems(_PII) == [
        "governance.pii.detectors: the PII phone detector needs the pii extra (phonenumbers): "
        "pip install 'aperture[pii]'"
    ]
    # Without the phone detector, PII needs no extra.
    parse_settings("governance:\n  pii: {detectors: [email, card]}\n", {})


def test_the_demo_leaves_bedrock_out_without_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = include_demo(parse_settings("demo: true\n", {}))
    assert "emulator-bedrock" in {p.name for p in settings.providers}
    monkeypatch.setitem(sys.modules, "botocore", None)
    settings = include_demo(parse_settings("demo: true\n", {}))
    assert "bedrock" not in {p.kind for p in settings.providers}
    assert "demo-bedrock" not in {m.name for m in settings.models}
    paths = {getattr(r, "path", None) for r in create_emulator_app().routes}
    assert "/bedrock" not in paths
    assert "/openai" in paths
