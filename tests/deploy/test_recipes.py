"""The deployment recipes lint: compose.yaml, the Helm chart, the systemd unit, the Dockerfile.

No Docker engine or helm binary runs here, so the compose file is checked for the topology it
promises, and the chart is rendered by a small renderer of the template subset it uses (the
test fails on anything else) and each object checked against the fields Kubernetes requires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aperture.settings.load import parse_settings

_ROOT = Path(__file__).resolve().parents[2]
_CHART = _ROOT / "deploy" / "helm" / "aperture"
_ENV = {
    "APERTURE_MASTER_KEY": "m" * 32,
    "APERTURE_KEY_PEPPER": "p" * 32,
    "APERTURE_DATABASE_URL": "postgresql://aperture:pw@postgres:5432/aperture",
    "APERTURE_REDIS_URL": "redis://redis:6379/0",
    "OPENAI_API_KEY": "sk-test",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_mounted_config_is_a_valid_aperture_config() -> None:
    settings = parse_settings((_ROOT / "deploy" / "aperture.yaml").read_text(), _ENV)
    assert settings.storage.redis == _ENV["APERTURE_REDIS_URL"]
    assert settings.server.host == "0.0.0.0"


def test_compose_runs_three_instances_behind_nginx_with_postgres_and_redis() -> None:
    compose = _load(_ROOT / "compose.yaml")
    services: dict[str, Any] = compose["services"]
    instances = [s for s in services if s.startswith("aperture-")]
    assert len(instances) == 3
    assert {"nginx", "postgres", "redis"} <= set(services)
    drain = parse_settings((_ROOT / "deploy" / "aperture.yaml").read_text(), _ENV)
    for name in instances:
        service = services[name]
        assert service["build"] == "."
        mounts = service["volumes"]
        assert any(m.endswith(":/etc/aperture/aperture.yaml:ro") for m in mounts)
        for source in (m.split(":")[0] for m in mounts):
            assert (_ROOT / source).exists(), source
        # Secrets are references to the environment, never values in the file.
        for key in ("APERTURE_MASTER_KEY", "APERTURE_KEY_PEPPER"):
            assert service["environment"][key].startswith("${"), key
        assert set(service["depends_on"]) == {"postgres", "redis"}
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > drain.server.drain_timeout_s
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    nginx_conf = (_ROOT / "deploy" / "nginx" / "aperture.conf").read_text()
    for name in instances:
        assert f"server {name}:8080" in nginx_conf
    assert "proxy_next_upstream" in nginx_conf
    assert compose["services"]["nginx"]["depends_on"] == instances


def test_the_dockerfile_is_slim_non_root_with_a_health_check_and_extras() -> None:
    text = (_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim$", text, re.M)
    assert re.search(r"^USER aperture$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "ARG EXTRAS" in text and "tesseract-ocr" in text
    assert 'CMD ["serve"' in text


def test_the_systemd_unit_verifies() -> None:
    unit = _ROOT / "deploy" / "systemd" / "aperture.service"
    text = unit.read_text()
    assert "ExecStart=/opt/aperture/bin/aperture serve" in text
    assert "TimeoutStopSec=20" in text
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: only the unit's text was checked")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # The binary is where an install puts it, not on this machine; anything else is a fault.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "is not executable" not in line and "No such file" not in line
    ]
    assert problems == []


# -- the chart ------------------------------------------------------------------------------

_ACTION = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_RELEASE = "demo"


def _lookup(path: str, values: dict[str, Any]) -> Any:
    node: Any = {"Values": values, "Release": {"Name": _RELEASE}, "Chart": {"Name": "aperture"}}
    for part in path.lstrip(".").split("."):
        node = node[part]
    return node


def _evaluate(expr: str, values: dict[str, Any]) -> Any:
    stages = [s.strip() for s in expr.split("|")]
    value = _term(stages[0], values)
    for stage in stages[1:]:
        name, *args = stage.split()
        if name == "nindent":
            pad = " " * int(args[0])
            text = value if isinstance(value, str) else str(value)
            value = "\n" + "\n".join(pad + line for line in text.splitlines())
        elif name == "sha256sum":
            value = "0" * 64
        else:
            raise AssertionError(f"the chart uses {name!r}, which this renderer does not know")
    return value


def _term(term: str, values: dict[str, Any]) -> Any:
    name, *args = term.split()
    if name.startswith("."):
        return _lookup(name, values)
    if name == "toYaml":
        return yaml.safe_dump(_lookup(args[0], values), sort_keys=False).rstrip("\n")
    if name == "add":
        return sum(int(_lookup(a, values)) for a in args)
    if name == "include":
        template = args[0].strip('"')
        fullname = f"{_RELEASE}-aperture"
        return {
            "aperture.fullname": fullname,
            "aperture.labels": (
                f"app.kubernetes.io/name: aperture\napp.kubernetes.io/instance: {_RELEASE}"
            ),
            "aperture.secretName": values["existingSecret"] or fullname,
        }[template]
    raise AssertionError(f"the chart uses {name!r}, which this renderer does not know")


def _render(text: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    emitting = [True]
    pos = 0
    for match in _ACTION.finditer(text):
        lead, trim_left, expr, _trim_right = match.groups()
        literal = text[pos : match.start()]
        pos = match.end()
        if emitting[-1]:
            out.append(literal)
            if not trim_left:
                out.append(lead)
        if trim_left and out:
            out[-1] = out[-1].rstrip() if out[-1].strip() else ""
            if not out[-1]:
                out.pop()
                while out and not out[-1].strip():
                    out.pop()
                if out:
                    out[-1] = out[-1].rstrip()
        if expr.startswith("if "):
            condition = expr[3:]
            negate = condition.startswith("not ")
            value = bool(_lookup(condition[4:] if negate else condition, values))
            emitting.append(emitting[-1] and (value != negate))
        elif expr == "end":
            emitting.pop()
        elif emitting[-1]:
            out.append(str(_evaluate(expr, values)))
    if emitting[-1]:
        out.append(text[pos:])
    return "".join(out)


def _chart_objects(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for template in sorted((_CHART / "templates").glob("*.yaml")):
        rendered = _render(template.read_text(), values)
        for doc in yaml.safe_load_all(rendered):
            if doc:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), template.name
                assert doc["metadata"]["name"] == f"{_RELEASE}-aperture"
                objects[doc["kind"]] = doc
    return objects


def test_the_chart_renders_the_objects_a_fleet_needs() -> None:
    chart = _load(_CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "aperture"
    values = _load(_CHART / "values.yaml")
    objects = _chart_objects(values)
    assert set(objects) == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    }
    # The mounted config is a valid Aperture config once the Secret's variables are set.
    config = parse_settings(objects["ConfigMap"]["data"]["aperture.yaml"], _ENV)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert values["drainTimeoutSeconds"] == config.server.drain_timeout_s
    assert pod["terminationGracePeriodSeconds"] > config.server.drain_timeout_s + sleep
    assert container["envFrom"][0]["secretRef"]["name"] == objects["Secret"]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    labels = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["Deployment"]["spec"]["template"]["metadata"]["labels"] == labels
    assert objects["Service"]["spec"]["selector"] == labels
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["name"] == "demo-aperture"
    assert "replicas" not in objects["Deployment"]["spec"]  # the HPA owns it


def test_the_chart_uses_an_existing_secret_and_fixed_replicas_when_asked() -> None:
    values = _load(_CHART / "values.yaml")
    values["existingSecret"] = "mine"
    values["autoscaling"]["enabled"] = False
    objects = _chart_objects(values)
    assert "Secret" not in objects and "HorizontalPodAutoscaler" not in objects
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"][0]["secretRef"]["name"] == "mine"
