"""The in-memory store's duplicate window (its likeness to JetStream otherwise is checked in
``tests/integration/test_memory_store_matches_jetstream.py``, against a real server)."""

from eventstore import InMemoryEventStore, NewMessage


async def test_a_message_id_is_stored_once_within_the_duplicate_window_and_again_after_it():
    now = [0.0]
    store = InMemoryEventStore(duplicate_window=120.0, clock=lambda: now[0])
    message = NewMessage("id-1", b"{}")
    await store.append("a", [message], 0)

    now[0] = 119.9
    assert (await store.append("a", [message], 1)).seqs == (1,)
    now[0] = 120.0
    assert (await store.append("a", [message], 1)).seqs == (2,)
    assert [m.seq for m in await store.read_subject("a")] == [1, 2]
