"""Running the Node scripts of this folder: the packages of package-lock.json installed with
``npm ci`` when any is missing, and a script run with its JSON output returned."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def installed() -> bool:
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    return all((HERE / "node_modules" / name / "package.json").is_file() for name in wanted)


def install(npm: str) -> None:
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=HERE,
        check=True,
        capture_output=True,
        timeout=300,
    )


def run_script(node: str, script: str, **env: str) -> Any:
    """Run ``script`` (in this folder) with ``env`` added; it prints one JSON value.

    Inputs go in environment variables, not arguments: command lines have a length limit."""
    run = subprocess.run(
        [node, script],
        cwd=HERE,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
