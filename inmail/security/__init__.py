"""NATS security for InMail: decentralized auth (operator, account, users as JWTs) with least privilege.

- ``claims``: nkeys and the JWTs nats-server trusts, signed with nkeys (Ed25519).
- ``roles``: what each role may publish and subscribe to, as data.
- ``installation``: a data folder's keys and credentials: created on first start, checked later.
- ``revocation``: revoking a user on a running server through its account resolver.
"""
