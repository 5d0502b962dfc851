from pathlib import Path

import pytest

from aperture.cli import main
from aperture.providers.registry import SPECS
from aperture.settings import ConfigError, load_settings, parse_settings

GOOD = """
server: {port: ${PORT}}
auth: {master_key: ${MASTER_KEY}}
images: {url_policy: passthrough, max_image_bytes: 5000000}
providers:
  - {name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1", api_key: "${LOCAL_KEY:-none}"}
models:
  - name: qwen3-vl-30b-instruct
    provider: local
    upstream_model: Qwen/Qwen3-VL-30B-A3B-Instruct
    aliases: [qwen-vl]
    capabilities: [vision]
    constraints: {min_max_tokens: 200}
"""


def test_a_good_config_decodes_into_frozen_typed_settings() -> None:
    settings = parse_settings(GOOD, {"PORT": "9000", "MASTER_KEY": "sk-master"})
    assert settings.server.port == 9000  # a whole-value reference takes the scalar's type
    assert settings.auth is not None and settings.auth.master_key == "sk-master"
    assert settings.providers[0].api_key == "none"
    model = settings.models[0]
    assert (model.upstream_model, model.aliases, model.capabilities) == (
        "Qwen/Qwen3-VL-30B-A3B-Instruct",
        ("qwen-vl",),
        ("vision",),
    )
    assert model.constraints.min_max_tokens == 200
    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]


def test_a_value_cannot_inject_yaml_structure() -> None:
    settings = parse_settings(GOOD, {"PORT": "1", "MASTER_KEY": "x}\nmodels: []"})
    assert settings.auth is not None and settings.auth.master_key == "x}\nmodels: []"
    assert len(settings.models) == 1


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, env or {})
    return [str(p) for p in caught.value.problems]


def test_every_structural_mistake_is_named_by_its_path() -> None:
    found = problems(
        """
server: {port: eighty, bogus: 1}
images: {url_policy: sometimes}
providers:
  - {name: a, kind: openai, api_key: "${MISSING}"}
  - {name: b}
models:
  - {name: m, provider: a, capabilities: [vision, smell]}
  - 5
"""
    )
    assert found == [
        "providers[0].api_key: environment variable MISSING is not set",
        "server.bogus: unknown field (known: admin_port, body_timeout_s, drain_timeout_s, "
        "emulator, header_timeout_s, host, max_body_bytes, metrics_port, metrics_token, port, "
        "write_idle_timeout_s)",
        "server.port: Expected `int`, got `str`",
        "images.url_policy: Invalid enum value 'sometimes' (one of: reject, fetch, passthrough, "
        "auto)",
        "providers[1].kind: missing required field",
        "models[0].capabilities[1]: Invalid enum value 'smell' (one of: vision, audio, video, "
        "image_output, tools, json_mode, documents, reasoning)",
        "models[1]: expected a mapping, got 5",
    ]


def test_every_meaning_mistake_is_named_by_its_path() -> None:
    found = problems(
        """
providers:
  - {name: a, kind: openai, base_url: "ftp://example.com"}
  - {name: a, kind: cohere}
  - {name: c, kind: azure}
models:
  - {name: m, provider: nowhere}
  - {name: n, provider: a, aliases: [m], constraints: {min_max_tokens: 0}}
"""
    )
    assert found == [
        "providers[0].base_url: must be an http:// or https:// URL",
        "providers[1].name: duplicate provider name 'a'",
        "providers[2].base_url: azure needs the resource endpoint as base_url",
        "models[0].provider: unknown provider 'nowhere' (a, c)",
        "models[1].aliases[0]: model name 'm' is already taken",
        "models[1].constraints.min_max_tokens: must be positive",
    ]


@pytest.mark.parametrize("prefix", ["", "a{b}:", "my prefix:"])
def test_a_redis_prefix_that_would_break_the_keys_is_refused(prefix: str) -> None:
    assert problems(f'storage: {{redis_prefix: "{prefix}"}}\n') == [
        "storage.redis_prefix: must be non-empty, without braces or whitespace"
    ]


def test_invalid_yaml_says_where() -> None:
    (found,) = problems("server: {port: 1\n")
    assert found.startswith("<root>: not valid YAML: line")


def test_check_config_prints_each_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "aperture.yaml"
    config.write_text("server: {port: x}\nmodels: [{name: m}]\n")
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "config error: server.port: Expected `int`, got `str`",
        "config error: models[0].provider: missing required field",
    ]


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("MASTER_KEY", "k")
    config = tmp_path / "aperture.yaml"
    config.write_text(GOOD)
    assert main(["check-config", str(config)]) == 0
    assert "ok (1 providers, 1 models)" in capsys.readouterr().out
    assert load_settings(config, {"PORT": "1", "MASTER_KEY": "k"}).server.port == 1


def test_a_missing_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_kind_must_be_one_the_provider_registry_lists() -> None:
    (found,) = problems("providers:\n  - {name: a, kind: opnai}\n")
    assert found == (
        "providers[0].kind: unknown provider kind 'opnai' (openai, azure, anthropic, gemini, "
        "bedrock, mistral, cohere, ollama, xai, groq, deepseek, qwen, moonshot, glm, vllm)"
    )


def test_every_listed_kind_loads() -> None:
    lines = [
        f"  - {{name: p{i}, kind: {kind}, base_url: 'https://example.com'}}"
        for i, kind in enumerate(SPECS)
    ]
    settings = parse_settings("providers:\n" + "\n".join(lines) + "\n", {})
    assert [p.kind for p in settings.providers] == list(SPECS)
