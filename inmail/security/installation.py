"""A data folder's NATS identity: its keys, its account, the users issued from it.

Layout inside the data folder ``DIR``:

- ``DIR/keys/`` (0700): the seeds that can sign (operator, system account, InMail
  account; 0600), their JWTs, and ``users.json`` (every user issued: role, public
  key, revoked or not). Never handed out.
- ``DIR/creds/`` (0700): one standard ``.creds`` file (0600) per user, ``<role>.creds``
  for the roles every folder gets, ``<name>.creds`` for users issued later.
- ``DIR/nats/accounts/``: the embedded server's full account resolver (its JWT store).

The InMail account's JWT in ``DIR/keys`` is the current one, revocations included:
the embedded server preloads it on every start, and ``revocation`` pushes it to a
running server.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inmail.security import claims
from inmail.security.files import private_dir, read_json, write_json, write_private
from inmail.security.roles import DEFAULT_ROLES, REPLY_WINDOW, ROLES

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ACCOUNT_NAME = "INMAIL"


class SecurityError(Exception):
    """Keys or credentials that cannot be used; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Installation:
    """The keys of one data folder, checked to belong together."""

    data_dir: Path
    operator_jwt: str
    system_jwt: str
    account_jwt: str

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def creds_dir(self) -> Path:
        return self.data_dir / "creds"

    @property
    def resolver_dir(self) -> Path:
        """The embedded server's account resolver store."""
        return self.data_dir / "nats" / "accounts"

    @property
    def operator(self) -> str:
        return str(claims.read(self.operator_jwt)["sub"])

    @property
    def system_account(self) -> str:
        return str(claims.read(self.system_jwt)["sub"])

    @property
    def account(self) -> str:
        return str(claims.read(self.account_jwt)["sub"])

    def creds(self, name: str) -> Path:
        """The credentials file of a user (a role's name for the default ones)."""
        return self.creds_dir / f"{name}.creds"

    def seed(self, which: str) -> str:
        """The seed of ``operator``, ``system`` or ``account``."""
        return (self.keys_dir / f"{which}.nk").read_text().strip()

    def server_config(self, resolver_dir: Path | None = None) -> str:
        """The nats-server configuration that trusts this folder's operator (operator mode).

        A full resolver keeps account JWTs in ``resolver_dir`` and takes updates at run
        time (``$SYS.REQ.CLAIMS.UPDATE``): that is how a revocation reaches it.
        """
        # A given directory is kept as given (relative to the server's working directory).
        store = resolver_dir if resolver_dir is not None else self.resolver_dir.resolve()
        return (
            f"operator: {self.operator_jwt}\n"
            f"system_account: {self.system_account}\n"
            "resolver {\n"
            "  type: full\n"
            f'  dir: "{store}"\n'
            "  allow_delete: false\n"
            "}\n"
            "resolver_preload {\n"
            f"  {self.system_account}: {self.system_jwt}\n"
            f"  {self.account}: {self.account_jwt}\n"
            "}\n"
        )

    def users(self) -> dict[str, dict[str, Any]]:
        """Every user issued from this folder: ``{name: {role, public_key, revoked}}``."""
        found = read_json(self.keys_dir / "users.json")
        return dict(found) if isinstance(found, dict) else {}


def secure(data_dir: Path) -> Installation:
    """The folder's keys: created on first use with a user per default role, checked afterwards."""
    keys = data_dir / "keys"
    if not (keys / "operator.nk").exists():
        _refuse_half_made(data_dir)
        installation = _create(data_dir)
    else:
        installation = load(data_dir)
    stale = [r for r in DEFAULT_ROLES if not installation.creds(r).exists() or _outdated(installation, r)]
    for role in stale:
        # A default file deleted by hand, or issued by an older version with other permissions
        # than the role has now: its key may live on in a copy, so it goes.
        if installation.users().get(role, {}).get("revoked") is False:
            installation = revoke_locally(installation, role)
        issue(installation, role, role)
    return installation


def _outdated(installation: Installation, role: str) -> bool:
    """A default role's file whose user may publish or subscribe to other subjects than the role
    may now (issued by an older version: the service's permissions grow with its features)."""
    try:
        user = claims.read(claims.jwt_of_creds(installation.creds(role).read_text()))["nats"]
    except (OSError, claims.ClaimsError):
        return False  # ``load`` has checked every file: nothing to judge here
    spec = ROLES[role]
    wanted = claims.user_claims(spec.publish, spec.subscribe, responses=None)
    return any(
        sorted(user.get(side, {}).get(rule) or []) != sorted(wanted[side].get(rule) or [])
        for side in ("pub", "sub")
        for rule in ("allow", "deny")
    )


def load(data_dir: Path) -> Installation:
    """The keys of a folder that has them, checked against each other, its creds and its resolver."""
    keys = data_dir / "keys"
    try:
        installation = Installation(
            data_dir,
            (keys / "operator.jwt").read_text().strip(),
            (keys / "system.jwt").read_text().strip(),
            (keys / "account.jwt").read_text().strip(),
        )
        _check(installation)
    except FileNotFoundError as exc:
        raise SecurityError(f"{keys} is incomplete ({Path(str(exc.filename)).name} is missing)") from exc
    except claims.ClaimsError as exc:
        raise SecurityError(f"{keys} holds an unreadable key: {exc}") from exc
    return installation


def refuse_insecure(data_dir: Path) -> None:
    """An insecure server on a secured folder would not see its streams (they live in the account)."""
    if (data_dir / "keys" / "operator.nk").exists():
        raise SecurityError(
            f"{data_dir} is set up with authentication ({data_dir / 'keys'}): its streams belong to "
            "its account, which --insecure would not see; use another --data-dir for --insecure"
        )


def issue(installation: Installation, role: str, name: str) -> Path:
    """Write ``creds/<name>.creds`` for a new user of ``role``; the file's path."""
    if role not in ROLES:
        raise SecurityError(f"no role {role!r}: one of {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise SecurityError(f"{name!r} is not a user name (1-64 of A-Z a-z 0-9 _ -)")
    users = installation.users()
    if users.get(name, {}).get("revoked") is False:
        # Its key may be in use elsewhere: replacing it here would leave it valid and unrevokable.
        raise SecurityError(f"user {name} exists: revoke it first, or choose another name")
    spec = ROLES[role]
    seed = claims.new_seed("user")
    user_jwt = claims.sign(
        installation.seed("account"),
        claims.public_key(seed),
        name,
        claims.user_claims(
            spec.publish, spec.subscribe, responses=REPLY_WINDOW if spec.answers_requests else None
        ),
    )
    private_dir(installation.creds_dir)
    path = write_private(installation.creds(name), claims.creds_file(user_jwt, seed))
    users[name] = {"role": role, "public_key": claims.public_key(seed), "revoked": False}
    write_json(installation.keys_dir / "users.json", users)
    return path


def revoke_locally(installation: Installation, name: str) -> Installation:
    """Add the user's key to the account's revocations, sign the account again, delete the creds file."""
    users = installation.users()
    user = users.get(name)
    if user is None:
        raise SecurityError(f"no user {name!r} was issued from {installation.data_dir}")
    account = claims.read(installation.account_jwt)
    revocations: dict[str, int] = dict(account["nats"].get("revocations") or {})
    # A later iat than the JWT it replaces: resolvers keep the newer of two account JWTs.
    now = max(int(time.time()), int(account["iat"]) + 1)
    revocations[user["public_key"]] = now
    account_jwt = claims.sign(
        installation.seed("operator"),
        installation.account,
        ACCOUNT_NAME,
        claims.account_claims(jetstream=True, revocations=revocations),
        issued_at=now,
    )
    write_private(installation.keys_dir / "account.jwt", account_jwt + "\n")
    users[name] = {**user, "revoked": True}
    write_json(installation.keys_dir / "users.json", users)
    installation.creds(name).unlink(missing_ok=True)
    return Installation(
        installation.data_dir, installation.operator_jwt, installation.system_jwt, account_jwt
    )


def _create(data_dir: Path) -> Installation:
    keys = private_dir(data_dir / "keys")
    operator, system, account = (
        claims.new_seed("operator"),
        claims.new_seed("account"),
        claims.new_seed("account"),
    )
    system_key = claims.public_key(system)
    operator_jwt = claims.sign(
        operator, claims.public_key(operator), "InMail", claims.operator_claims(system_key)
    )
    system_jwt = claims.sign(operator, system_key, "SYS", claims.account_claims(jetstream=False))
    account_jwt = claims.sign(
        operator, claims.public_key(account), ACCOUNT_NAME, claims.account_claims(jetstream=True)
    )
    for name, seed in (("system", system), ("account", account), ("operator", operator)):
        write_private(keys / f"{name}.nk", seed + "\n")
    for name, token in (("operator", operator_jwt), ("system", system_jwt), ("account", account_jwt)):
        write_private(keys / f"{name}.jwt", token + "\n")
    private_dir(data_dir / "creds")
    return Installation(data_dir, operator_jwt, system_jwt, account_jwt)


def _refuse_half_made(data_dir: Path) -> None:
    """New keys next to credentials, accounts or streams made with other keys would strand them."""
    creds = sorted((data_dir / "creds").glob("*.creds"))
    if creds:
        raise SecurityError(
            f"{creds[0]} exists but {data_dir / 'keys'} does not: restore the keys it was issued from"
        )
    if any((data_dir / "nats" / "accounts").glob("**/*.jwt")):
        raise SecurityError(
            f"{data_dir / 'nats' / 'accounts'} holds accounts of keys missing from {data_dir / 'keys'}"
        )
    # nats-server keeps each account's streams in <store_dir>/jetstream/<account>; $G is the
    # account of a server without authentication.
    unauthenticated = data_dir / "nats" / "jetstream" / "jetstream" / "$G"
    if unauthenticated.exists() and any(unauthenticated.iterdir()):
        raise SecurityError(
            f"{data_dir} holds streams of a server without authentication: serve it with --insecure, "
            "or move them into an account (docs/security.md)"
        )


def _check(installation: Installation) -> None:
    keys = installation.keys_dir
    operator = installation.operator
    if claims.public_key(installation.seed("operator")) != operator:
        raise SecurityError(f"{keys}/operator.jwt does not match {keys}/operator.nk")
    for which, token in (("system", installation.system_jwt), ("account", installation.account_jwt)):
        account = claims.read(token)
        if account["iss"] != operator or account["sub"] != claims.public_key(installation.seed(which)):
            raise SecurityError(f"{keys}/{which}.jwt was not signed for {keys}/{which}.nk by this operator")
    for stored in installation.resolver_dir.glob("**/*.jwt"):
        issuer = claims.read(stored.read_text())["iss"]
        if issuer != operator:
            raise SecurityError(
                f"{stored} was signed by operator {issuer}, not by this folder's operator {operator}"
            )
    for creds in installation.creds_dir.glob("*.creds"):
        try:
            issuer = claims.read(claims.jwt_of_creds(creds.read_text()))["iss"]
        except claims.ClaimsError as exc:
            raise SecurityError(f"{creds} is not a NATS credentials file: {exc}") from exc
        if issuer != installation.account:
            raise SecurityError(f"{creds} belongs to another installation (account {issuer}), not to {keys}")
