"""Running the Node scripts of this folder: the packages of package-lock.json installed with
``npm ci`` when node_modules was not installed from this very lockfile, and a script run with
its JSON output returned."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


# Written after ``npm ci``: the lockfile's digest, so a changed lockfile installs again.
STAMP = HERE / "node_modules" / ".aperture-lockfile-sha256"


def _lockfile_digest() -> str:
    return hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()


def installed() -> bool:
    return STAMP.is_file() and STAMP.read_text() == _lockfile_digest()


def install(npm: str) -> None:
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=HERE,
        check=True,
        capture_output=True,
        timeout=300,
    )
    STAMP.write_text(_lockfile_digest())


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
