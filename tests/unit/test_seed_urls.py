"""``--nats`` takes every seed of a cluster, comma-separated, as nats-py's list of servers."""

from __future__ import annotations

import pytest

from eventstore import NatsUnreachable, seed_urls


def test_a_single_url_is_one_seed() -> None:
    assert seed_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_comma_separated_seeds_keep_their_order_without_blanks() -> None:
    given = "nats://n1:4222, tls://n2:4222,,nats://n3:4222 "
    assert seed_urls(given) == ["nats://n1:4222", "tls://n2:4222", "nats://n3:4222"]


def test_no_seed_at_all_is_refused() -> None:
    with pytest.raises(NatsUnreachable, match="no NATS URL"):
        seed_urls(" , ")
