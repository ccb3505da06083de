"""Revoking a user on a running server: a new account JWT, pushed to its full account resolver.

The push is a claims update on ``$SYS.REQ.CLAIMS.UPDATE``, sent by a user of the
system account made for this one request (it expires within minutes). The
resolver refuses the revoked user's new connections and closes its open ones at
once, without a restart; the account JWT in ``DIR/keys`` is already the new one,
so a restarted embedded server preloads it too.
"""

from __future__ import annotations

import time

import msgspec
import nats
from nats.aio.client import RawCredentials

from eventstore import seed_urls
from inmail.security import claims
from inmail.security.installation import Installation, SecurityError, revoke_locally

CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"


class _Outcome(msgspec.Struct):
    code: int = 0
    message: str = ""
    description: str = ""


class _UpdateReply(msgspec.Struct):
    data: _Outcome | None = None
    error: _Outcome | None = None


REQUEST_TIMEOUT = 5.0


async def revoke(installation: Installation, name: str, nats_url: str) -> Installation:
    """Revoke user ``name`` and tell the server at ``nats_url``; the installation with the new account JWT."""
    revoked = revoke_locally(installation, name)
    await push_account(revoked, nats_url)
    return revoked


async def push_account(installation: Installation, nats_url: str) -> None:
    """Send the current account JWT to the server's resolver; a ``SecurityError`` if it does not take it."""
    try:
        nc = await nats.connect(
            seed_urls(nats_url),
            user_credentials=_system_user(installation),
            connect_timeout=REQUEST_TIMEOUT,
            max_reconnect_attempts=1,
            allow_reconnect=False,
            error_cb=_quiet,
        )
    except Exception as exc:
        raise SecurityError(
            f"revoked in {installation.keys_dir}, but the server at {nats_url} could not be told "
            f"({exc or type(exc).__name__}): run the revocation again once it is reachable"
        ) from exc
    try:
        reply = await nc.request(CLAIMS_UPDATE, installation.account_jwt.encode(), timeout=REQUEST_TIMEOUT)
    except Exception as exc:
        raise SecurityError(f"the server at {nats_url} did not answer the account update: {exc!r}") from exc
    finally:
        await nc.close()
    answer = msgspec.json.decode(reply.data, type=_UpdateReply)
    if answer.error is not None or answer.data is None or answer.data.code != 200:
        problem = answer.error or answer.data or _Outcome(message="no answer")
        raise SecurityError(
            f"the server at {nats_url} refused the account update: {problem.description or problem.message}"
        )


def _system_user(installation: Installation) -> RawCredentials:
    # Made for this request and never written down: no standing system credentials to leak.
    seed = claims.new_seed("user")
    token = claims.sign(
        installation.seed("system"),
        claims.public_key(seed),
        "inmail-revocation",
        claims.user_claims((CLAIMS_UPDATE,), ("_INBOX.>",), responses=None),
        expires_at=int(time.time()) + 300,
    )
    return RawCredentials(claims.creds_file(token, seed))


async def _quiet(exc: Exception) -> None:
    return None
