"""The key store on a real nats-server: data keys wrapped in INMAIL_KEYS, the KEK in a folder,
rotated on every erasure, shared by several processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import client_for, new_id
from vault import KeyStore, KeyStoreRefused, MemberKeyErased, Revealer, Sealer
from vault.cipher import open_token
from vault.keystore import SHARDS, entry_key, kek_entry, shard_of


def kek_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("kek-*"))


async def test_erasure_destroys_the_kek_that_wrapped_the_members_key_and_keeps_the_others_readable(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    folder = tmp_path / "keys"
    async with client_for(own_nats_server, "service") as client:
        keys = KeyStore(client.nc, folder)
        await keys.open()
        try:
            sealer = Sealer(keys)
            zelda, bob = new_id("zelda"), new_id("bob")
            secret = await sealer.seal_text(zelda, "subject", "Zelda's secret")
            kept = await sealer.seal_text(bob, "subject", "Bob's note")
            # A neighbour in Zelda's shard: its key is wrapped again under the shard's new KEK.
            candidates = (new_id("n") for _ in range(10_000))
            neighbour = next(m for m in candidates if shard_of(m) == shard_of(zelda))
            near = await sealer.seal_text(neighbour, "body", "Next door")
            kv = await client.nc.jetstream().key_value(subjects.KEYS_BUCKET)
            old_kid = msgspec.json.decode((await kv.get(kek_entry(shard_of(zelda)))).value or b"")["kid"]
            old_kek = folder / f"kek-{old_kid}"
            old_bytes = old_kek.read_bytes()
            before = kek_files(folder)
            assert len(before) == SHARDS
            wrapped_before = (await kv.get(entry_key(zelda))).value

            await keys.erase(zelda)

            new_kid = msgspec.json.decode((await kv.get(kek_entry(shard_of(zelda)))).value or b"")["kid"]
            new_kek = folder / f"kek-{new_kid}"
            after = kek_files(folder)
            assert set(before) - set(after) == {old_kek} and set(after) - set(before) == {new_kek}
            assert not old_kek.exists() and new_kek.read_bytes() != old_bytes
            assert new_kek.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
            assert (await kv.get(entry_key(zelda))).value != wrapped_before
            assert msgspec.json.decode((await kv.get(entry_key(neighbour))).value or b"")["kid"] == new_kid
            revealer = Revealer(keys)
            assert await revealer.text(secret) == "[erased]"
            assert await revealer.text(kept) == "Bob's note"
            assert await revealer.text(near) == "Next door"
            with pytest.raises(MemberKeyErased):
                await sealer.seal_text(zelda, "subject", "again")
        finally:
            await keys.close()

        # A process starting afresh on the same folder reads Bob's key under the new KEK, and
        # the erased member's old wrapped key (as a backup would hold it) opens under no KEK left.
        again = KeyStore(client.nc, folder)
        await again.open()
        try:
            bob_key = await again.data_key(bob)
            assert bob_key is not None and open_token(bob_key, kept) == "Bob's note"
            neighbour_key = await again.data_key(neighbour)
            assert neighbour_key is not None and open_token(neighbour_key, near) == "Next door"
            gone = await again.data_key(zelda)
            assert gone is None
        finally:
            await again.close()


async def test_another_process_forgets_an_erased_members_key_it_held_in_memory(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    folder = tmp_path / "keys"
    async with client_for(own_nats_server, "service") as one, client_for(own_nats_server, "service") as two:
        first, second = KeyStore(one.nc, folder), KeyStore(two.nc, folder)
        await first.open()
        await second.open()
        try:
            zelda = new_id("zelda")
            secret = await Sealer(first).seal_text(zelda, "body", "Seen by both")
            assert await Revealer(second).text(secret) == "Seen by both"  # now cached in the second
            await first.erase(zelda)
            for _ in range(100):
                if await Revealer(second).text(secret) == "[erased]":
                    break
                await asyncio.sleep(0.05)
            assert await Revealer(second).text(secret) == "[erased]"
        finally:
            await first.close()
            await second.close()


async def test_a_process_whose_folder_lacks_the_current_kek_refuses_to_start(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    async with client_for(own_nats_server, "service") as client:
        keys = KeyStore(client.nc, tmp_path / "keys")
        await keys.open()
        await keys.close()
        elsewhere = KeyStore(client.nc, tmp_path / "other")
        with pytest.raises(KeyStoreRefused, match="point --key-dir"):
            await elsewhere.open()
