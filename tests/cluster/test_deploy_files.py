"""deploy/ as a team uses it, checked here without Docker or Kubernetes.

Every nats-server configuration passes ``nats-server -t`` (the single node and the cluster
node in ``tests/security/test_deploy.py``; the Kubernetes ConfigMap's here); the compose file
and every Kubernetes manifest validate against the schemas vendored in ``deploy/schemas/``
(from PyPI packages: ``deploy/schemas/vendor.py``); the Containerfile goes through the
official Dockerfile parser; the probes are section 12's; every ``INMAIL_*`` variable is one
``inmail serve`` reads; and the compose file's processes, run natively with their own
commands and variables on a loopback cluster, become ready.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found,unused-ignore]
import httpx
import pytest
import yaml

from inmail.cli.serve import serve_command
from inmail.devcluster import LoopbackCluster
from inmail.natsserver import find_binary
from tests.serve_process import INMAIL, Serve, free_port

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
KIND_SCHEMAS = {
    ("v1", "ConfigMap"): "configmap-v1",
    ("v1", "Service"): "service-v1",
    ("apps/v1", "StatefulSet"): "statefulset-apps-v1",
    ("apps/v1", "Deployment"): "deployment-apps-v1",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaim-v1",
}
INMAIL_SERVICES = ("commands-1", "commands-2", "read")


def manifests() -> dict[str, dict[str, Any]]:
    """File name -> the one Kubernetes object it holds."""
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def check_jsonschema(schema: Path, *documents: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), *map(str, documents)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    checked = check_jsonschema(SCHEMAS / "compose-spec.json", DEPLOY / "compose.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_kubernetes_manifest_validates_against_the_strict_schema_of_its_kind() -> None:
    found = manifests()
    assert {(m["apiVersion"], m["kind"]) for m in found.values()} == set(KIND_SCHEMAS)
    for name, manifest in found.items():
        schema = SCHEMAS / "kubernetes" / f"{KIND_SCHEMAS[(manifest['apiVersion'], manifest['kind'])]}.json"
        checked = check_jsonschema(schema, DEPLOY / "k8s" / name)
        assert checked.returncode == 0, (name, checked.stdout + checked.stderr)


def test_the_schemas_refuse_what_kubernetes_and_compose_would_refuse(tmp_path: Path) -> None:
    deployment = (DEPLOY / "k8s" / "inmail-commands.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(deployment.replace("  replicas: 2", "  replica: 2"))
    assert check_jsonschema(SCHEMAS / "kubernetes" / "deployment-apps-v1.json", typo).returncode == 1
    services = tmp_path / "compose.yaml"
    original = (DEPLOY / "compose.yaml").read_text()
    services.write_text(original.replace("    hostname: nats-1", "    hostnam: nats-1"))
    assert check_jsonschema(SCHEMAS / "compose-spec.json", services).returncode == 1


def test_the_service_deployments_have_the_section_12_probes_and_a_disruption_budget() -> None:
    found = manifests()
    budgets = [m for m in found.values() if m["kind"] == "PodDisruptionBudget"]
    for workload in (m for m in found.values() if m["kind"] in ("Deployment", "StatefulSet")):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covered = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covered) == 1, workload["metadata"]["name"]
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"] and container["livenessProbe"], workload["metadata"]["name"]
        if workload["kind"] == "Deployment":
            assert container["args"][:3] in (["serve", "--role", "commands"], ["serve", "--role", "read"])
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    services = compose()["services"]
    for name in INMAIL_SERVICES:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
    assert [services[f"nats-{n}"]["healthcheck"] for n in (1, 2, 3)]


def test_every_inmail_variable_in_the_deploy_files_is_one_serve_reads() -> None:
    known = {name for param in serve_command.params for name in _envvars(param.envvar)}
    texts = [(DEPLOY / "compose.yaml").read_text(), *(p.read_text() for p in (DEPLOY / "k8s").glob("*.yaml"))]
    used = {name for text in texts for name in re.findall(r"\b(INMAIL_[A-Z_]+)\b", text)}
    assert used and used <= known, used - known


def _envvars(envvar: str | Sequence[str] | None) -> list[str]:
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def test_the_containerfile_is_multi_stage_non_root_with_the_inmail_entry_point() -> None:
    commands = dockerfile.parse_file(str(DEPLOY / "Containerfile"))
    stages = [c for c in commands if c.cmd == "FROM"]
    assert len(stages) >= 2
    final = commands[commands.index(stages[-1]) :]
    [user] = [c.value[0] for c in final if c.cmd == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    [entry] = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entry.json and entry.value == ("inmail",)
    assert not [c for c in final if c.cmd == "COPY" and not any(f.startswith("--from=") for f in c.flags)]
    for copy in (c for c in commands if c.cmd == "COPY" and not c.flags):
        for source in copy.value[:-1]:
            assert (ROOT / source).exists(), source
    [health] = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert "/healthz" in " ".join(health.value)


@pytest.fixture
def keys_and_certificates(tmp_path: Path) -> Path:
    """What deploy/README.md has a team make first: the auth include and development certificates."""
    folder = tmp_path / "deploy"
    subprocess.run([str(DEPLOY / "make-dev-tls.sh"), str(folder / "tls")], check=True, capture_output=True)
    config = subprocess.run(
        [*INMAIL, "creds", "server-config", "--data-dir", str(tmp_path / "keys"),
         "--resolver-dir", str(tmp_path / "accounts")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (folder / "inmail-auth.conf").write_text(config.stdout)
    return folder


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl for the TLS certificates")
def test_the_kubernetes_nats_configuration_passes_nats_server_t(keys_and_certificates: Path) -> None:
    [config_map] = [m for m in manifests().values() if m["kind"] == "ConfigMap"]
    # The pod's mounts, here: the ConfigMap in config/, the auth Secret in auth/, the TLS Secret.
    text = config_map["data"]["nats.conf"].replace("/etc/nats/tls/", f"{keys_and_certificates}/tls/")
    text = text.replace('"/data/jetstream"', f'"{keys_and_certificates}/jetstream"')
    text = text.replace('"/var/run/nats/nats.pid"', f'"{keys_and_certificates}/nats.pid"')
    (keys_and_certificates / "config").mkdir()
    (keys_and_certificates / "config" / "nats.conf").write_text(text)
    (keys_and_certificates / "auth").mkdir()
    shutil.copy(keys_and_certificates / "inmail-auth.conf", keys_and_certificates / "auth")
    checked = subprocess.run(
        [find_binary(), "-t", "-c", "config/nats.conf"], cwd=keys_and_certificates,
        env={**os.environ, "POD_NAME": "nats-0"}, capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


async def test_the_compose_processes_run_natively_on_a_cluster_and_become_ready(
    cluster: LoopbackCluster, postgres_url: str, tmp_path: Path, processes: list[Serve]
) -> None:
    """Each InMail service of the compose file, with its own command and variables; only where
    things are differs (the loopback cluster without TLS, a free HTTP port, a fresh schema)."""
    services = compose()["services"]
    here = {
        "INMAIL_NATS": cluster.urls,
        "INMAIL_NATS_CREDS": str(cluster.creds("service")),
        "INMAIL_HTTP_HOST": "127.0.0.1",
        "INMAIL_KEY_DIR": str(tmp_path / "inmail-keys"),  # the shared volume
    }
    ports = {}
    for name in INMAIL_SERVICES:
        service = services[name]
        env = {k: str(v) for k, v in service["environment"].items() if k != "SSL_CERT_FILE"} | here
        if "INMAIL_STORE" in env:
            env["INMAIL_STORE"] = postgres_url
        ports[name] = free_port()
        env["INMAIL_HTTP_PORT"] = str(ports[name])
        command = service["command"]
        assert command[0] == "serve"
        serve = Serve(tmp_path / name, *command[1:], env=env)
        processes.append(serve)
        await asyncio.to_thread(serve.ready)
    async with httpx.AsyncClient() as http:
        for name, port in ports.items():
            answer = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            for _ in range(40):
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.25)
                answer = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert answer.status_code == 200, (name, answer.text)
    info = await cluster.stream_info("INMAIL_EVENTS")
    assert info.config.num_replicas == 3
