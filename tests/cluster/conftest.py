"""Fixtures of the cluster tests: a 3-node nats-server cluster of the test's own, PostgreSQL read models.

Every test here is marked ``cluster`` (part of the default run; alone with ``-m cluster``;
``-s`` prints the measured figures).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from inmail.devcluster import LoopbackCluster
from tests.cluster.support import loopback_cluster
from tests.serve_process import Serve

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LoopbackCluster]:
    """Three nodes on free loopback ports, each with a store folder of its own, quorum reached."""
    nodes = loopback_cluster(tmp_path / "cluster")
    try:
        asyncio.run(nodes.start())
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of the test's own in the shared database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}?schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def processes() -> Iterator[list[Serve]]:
    """Every ``inmail serve`` a test starts, stopped at its end whatever happened."""
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()
