"""The command line as a newcomer types it: options anywhere, and every config mistake at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def _aperture(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APERTURE_")}
    return subprocess.run(
        [sys.executable, "-m", "aperture", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "aperture.yaml"
    path.write_text(
        "auth: {master_key: sk-master}\n"
        f"storage: {{database: 'sqlite:///{tmp_path}/keys.db', spool_dir: '{tmp_path}/spool'}}\n"
    )
    return path


def test_the_common_options_work_before_and_after_a_subcommand(
    tmp_path: Path, config: Path
) -> None:
    # As the README writes it: the options after the subcommand's own arguments.
    created = _aperture(
        tmp_path, "keys", "create", "ci", "--tenant", "acme", "--config", "aperture.yaml"
    )
    assert created.returncode == 0, created.stderr
    assert "key: ap_" in created.stdout
    key_id = created.stdout.split()[1]
    before = _aperture(tmp_path, "--config", str(config), "keys", "list", "--debug")
    middle = _aperture(tmp_path, "keys", "--config", str(config), "list")
    after = _aperture(tmp_path, "keys", "list", "--config", str(config))
    assert before.returncode == middle.returncode == after.returncode == 0, after.stderr
    assert before.stdout == middle.stdout == after.stdout
    header, row = after.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "TENANT", "MODELS", "NAME"]
    assert row.split() == [key_id, "active", "acme", "*", "ci"]
    # The columns line up under their headings.
    assert row.index("acme") == header.index("TENANT")
    revoked = _aperture(tmp_path, "keys", "revoke", key_id, "--config", str(config))
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {key_id}"
    migrated = _aperture(tmp_path, "migrate", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    checked = _aperture(tmp_path, "check-config", "--config", str(config))
    assert checked.returncode == 0 and checked.stdout.startswith(f"{config}: ok")


def test_an_unknown_option_is_still_refused(tmp_path: Path, config: Path) -> None:
    refused = _aperture(tmp_path, "keys", "list", "--config", str(config), "--bogus")
    assert refused.returncode == 2
    assert "unrecognized arguments: --bogus" in refused.stderr


def test_check_config_reports_schema_and_reference_mistakes_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "aperture.yaml").write_text(
        """
server: {port: eighty}
providers:
  - {name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1"}
  - {name: openai, kind: openai, timeout_s: soon}
  - {name: broken, kind: opnai}
models:
  - {name: qwen, provider: local, capabilities: [vision, smell]}
  - {name: gpt, provider: locl}
  - {name: ok, provider: broken}
  - {name: qwen, provider: openai}
  - 5
  - {name: last, provider: nowhere}
routes:
  - {id: r, model_pattern: "x*", providers: [{provider: local, weight: heavy}, {provider: gone}]}
"""
    )
    checked = _aperture(tmp_path, "check-config", "aperture.yaml")
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [
        "config error: server.port: Expected `int`, got `str`",
        "config error: providers[1].timeout_s: Expected `float`, got `str`",
        "config error: models[0].capabilities[1]: Invalid enum value 'smell' (one of: vision, "
        "audio, video, image_output, tools, json_mode, documents, reasoning)",
        "config error: models[4]: expected a mapping, got 5",
        "config error: routes[0].providers[0].weight: Expected `float`, got `str`",
        # A kind is checked against the provider registry, with what decoded, so it follows
        # the schema's mistakes; it still lists the kinds there are.
        "config error: providers[2].kind: unknown provider kind 'opnai' (openai, azure, "
        "anthropic, gemini, bedrock, mistral, cohere, ollama, xai, groq, deepseek, qwen, "
        "moonshot, glm, vllm)",
        # References are checked on what decoded, with the paths the file has: `broken` is
        # not called unknown (its own mistake is reported above), and the item left out
        # at models[4] does not shift models[5].
        "config error: models[1].provider: unknown provider 'locl' (broken, local, openai)",
        "config error: models[3].name: model name 'qwen' is already taken",
        "config error: models[5].provider: unknown provider 'nowhere' (broken, local, openai)",
        "config error: routes[0].providers[1].provider: unknown provider 'gone'",
    ]


def test_the_readmes_check_config_sample_is_what_check_config_prints(tmp_path: Path) -> None:
    text = README.read_text()
    start = text.index("`aperture check-config aperture.yaml` names every mistake")
    sample = text[
        text.index("```\n", start) + 4 : text.index("```", text.index("```\n", start) + 4)
    ]
    (tmp_path / "aperture.yaml").write_text(
        """
server: {port: "8080x"}
providers:
  - {name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1"}
  - {name: openai, kind: openai}
models:
  - {name: a, provider: local, capabilities: [vision, smell]}
  - {name: b, provider: locl}
"""
    )
    checked = _aperture(tmp_path, "check-config", "aperture.yaml")
    assert checked.returncode == 2
    assert checked.stderr == sample
