"""Personal data sealed per member, and the keys that erasure destroys (contract section 11).

The one place that encrypts: ``cipher`` (AES-256-GCM on tokens and wrapped keys),
``keystore`` (per-member data keys in KV bucket ``INMAIL_KEYS``, wrapped by
key-encryption keys, one per shard of members, kept in files outside every stream; an
erasure rotates its shard's),
``sealing`` (which fields of which events to seal on the way in, and opening
tokens on the way out, ``"[erased]"`` when the key is gone). ``docs/security.md``
argues the design.
"""

from vault.keystore import KeyStore, KeyStoreRefused, MemberKeyErased
from vault.sealing import Revealer, Sealer

__all__ = ["KeyStore", "KeyStoreRefused", "MemberKeyErased", "Revealer", "Sealer"]
