"""deploy/: the server configurations pass ``nats-server -t``; the single node serves the roles over TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inmail.natsserver import find_binary
from tests.security.support import free_port

ROOT = Path(__file__).resolve().parents[2]
INMAIL = [sys.executable, "-m", "inmail.cli"]

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs openssl for the TLS certificates"
)


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    """A copy of deploy/ with development certificates and an inmail-auth.conf for fresh keys."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    subprocess.run([str(copy / "make-dev-tls.sh"), str(copy / "tls")], check=True, capture_output=True)
    config = subprocess.run(
        [*INMAIL, "creds", "server-config", "--data-dir", str(tmp_path / "keys"),
         "--resolver-dir", "./accounts"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (copy / "inmail-auth.conf").write_text(config.stdout)
    return copy


def test_every_server_configuration_is_valid(deploy: Path) -> None:
    env = {**os.environ, "NATS_NAME": "nats-1", "NATS_STORE": str(deploy / "store")}
    for config in ("nats-single.conf", "nats-cluster.conf"):
        checked = subprocess.run(
            [find_binary(), "-t", "-c", config], cwd=deploy, env=env, capture_output=True, text=True
        )
        assert checked.returncode == 0, (config, checked.stderr)


def test_the_single_node_serves_the_roles_over_tls(deploy: Path, tmp_path: Path) -> None:
    port = free_port()
    config = (deploy / "nats-single.conf").read_text().replace("0.0.0.0:4222", f"127.0.0.1:{port}")
    (deploy / "test.conf").write_text(config)
    keys = tmp_path / "keys"
    url = f"tls://127.0.0.1:{port}"
    # Python trusts the development CA through OpenSSL's SSL_CERT_FILE.
    env = {**os.environ, "SSL_CERT_FILE": str(deploy / "tls" / "ca.pem")}
    server = subprocess.Popen([find_binary(), "-c", "test.conf"], cwd=deploy, stderr=subprocess.DEVNULL)
    try:
        with (tmp_path / "serve.log").open("w") as log:
            service = subprocess.Popen(
                [*INMAIL, "serve", "--nats", url, "--creds", str(keys / "creds" / "service.creds"),
                 "--data-dir", str(tmp_path / "service")],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            )  # fmt: skip
        try:
            assert service.stdout is not None
            assert "InMail broker ready" in service.stdout.readline(), (tmp_path / "serve.log").read_text()
            status = subprocess.run(
                [*INMAIL, "status", "--nats", url, "--data-dir", str(keys)],
                capture_output=True, text=True, env=env, timeout=60,
            )  # fmt: skip
            assert status.returncode == 0 and "service: ok" in status.stdout, status.stderr
            anonymous = subprocess.run(
                [*INMAIL, "status", "--nats", url, "--data-dir", str(tmp_path / "nothing")],
                capture_output=True, text=True, env=env, timeout=60,
            )  # fmt: skip
            assert anonymous.returncode == 1 and "refused" in anonymous.stderr
        finally:
            service.terminate()
            service.wait(60)
    finally:
        server.terminate()
        server.wait(30)
