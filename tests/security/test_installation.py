"""A data folder's keys and credentials: made once, private, reused, and refused when they do not match."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inmail.security import claims
from inmail.security.installation import SecurityError, issue, load, revoke_locally, secure
from inmail.security.roles import DEFAULT_ROLES, ROLES
from tests.security.support import free_port


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_first_start_makes_private_keys_and_a_creds_file_per_role(tmp_path: Path) -> None:
    installation = secure(tmp_path)

    assert mode(installation.keys_dir) == 0o700 and mode(installation.creds_dir) == 0o700
    assert all(mode(path) == 0o600 for path in installation.keys_dir.iterdir())
    assert sorted(p.name for p in installation.creds_dir.iterdir()) == sorted(
        f"{r}.creds" for r in DEFAULT_ROLES
    )
    for role in DEFAULT_ROLES:
        path = installation.creds(role)
        user = claims.read(claims.jwt_of_creds(path.read_text()))
        assert mode(path) == 0o600
        assert user["iss"] == installation.account and user["name"] == role
        assert user["nats"]["pub"]["allow"] == list(ROLES[role].publish)
        assert user["nats"]["sub"]["allow"] == list(ROLES[role].subscribe)
        assert ("resp" in user["nats"]) == ROLES[role].answers_requests
    # The seeds that can sign stay in keys/, never among the credentials handed out.
    handed_out = "".join(p.read_text() for p in installation.creds_dir.iterdir())
    assert not any(installation.seed(which) in handed_out for which in ("operator", "system", "account"))


def test_later_starts_reuse_the_keys_and_credentials(tmp_path: Path) -> None:
    first = secure(tmp_path)
    files = {p.name: p.read_text() for p in first.creds_dir.iterdir()}

    second = secure(tmp_path)

    assert second == first
    assert {p.name: p.read_text() for p in second.creds_dir.iterdir()} == files


def test_each_data_folder_gets_keys_of_its_own(tmp_path: Path) -> None:
    assert secure(tmp_path / "one").operator != secure(tmp_path / "two").operator


def test_a_deleted_default_creds_file_comes_back_with_a_new_key_and_the_old_one_revoked(
    tmp_path: Path,
) -> None:
    first = secure(tmp_path)
    old_key = first.users()["client"]["public_key"]
    first.creds("client").unlink()

    again = secure(tmp_path)

    assert again.users()["client"]["public_key"] != old_key
    assert old_key in claims.read(again.account_jwt)["nats"]["revocations"]


def test_another_installations_creds_in_the_folder_are_refused_in_one_line(tmp_path: Path) -> None:
    secure(tmp_path / "ours")
    stranger = secure(tmp_path / "theirs")
    shutil.copy(stranger.creds("client"), tmp_path / "ours" / "creds" / "client.creds")

    with pytest.raises(SecurityError, match="belongs to another installation") as raised:
        secure(tmp_path / "ours")
    assert "\n" not in str(raised.value)

    result = subprocess.run(
        [sys.executable, "-m", "inmail.cli", "serve", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "ours")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "another installation" in lines[0], lines


def test_an_account_store_signed_by_another_operator_is_refused(tmp_path: Path) -> None:
    ours = secure(tmp_path / "ours")
    stranger = secure(tmp_path / "theirs")
    ours.resolver_dir.mkdir(parents=True)
    (ours.resolver_dir / f"{stranger.account}.jwt").write_text(stranger.account_jwt)

    with pytest.raises(SecurityError, match="not by this folder's operator"):
        load(tmp_path / "ours")


def test_new_keys_are_not_made_next_to_credentials_or_streams_they_could_not_serve(tmp_path: Path) -> None:
    made = secure(tmp_path / "made")
    shutil.rmtree(made.keys_dir)
    with pytest.raises(SecurityError, match="restore the keys"):
        secure(tmp_path / "made")

    unauthenticated = tmp_path / "open" / "nats" / "jetstream" / "jetstream" / "$G" / "streams"
    unauthenticated.mkdir(parents=True)
    (unauthenticated / "INMAIL_EVENTS").mkdir()
    with pytest.raises(SecurityError, match="without authentication"):
        secure(tmp_path / "open")


def test_issuing_refuses_unknown_roles_bad_names_and_names_in_use(tmp_path: Path) -> None:
    installation = secure(tmp_path)
    with pytest.raises(SecurityError, match="no role"):
        issue(installation, "root", "x")
    with pytest.raises(SecurityError, match="not a user name"):
        issue(installation, "client", "a b")
    issue(installation, "subscriber", "billing")
    with pytest.raises(SecurityError, match="revoke it first"):
        issue(installation, "subscriber", "billing")
    # Revoked, the name may be issued again, with a new key.
    installation = revoke_locally(installation, "billing")
    assert issue(installation, "subscriber", "billing").exists()


def test_a_default_creds_file_of_an_older_version_is_issued_again_with_the_roles_permissions(
    tmp_path: Path,
) -> None:
    first = secure(tmp_path)
    old_key = first.users()["service"]["public_key"]
    # As an older version issued it: one subject fewer than the role may publish to now.
    older = claims.sign(
        first.seed("account"),
        old_key,
        "service",
        claims.user_claims(ROLES["service"].publish[:-1], ROLES["service"].subscribe, responses=(1, 60.0)),
    )
    seed = first.creds("service").read_text().split("-----BEGIN USER NKEY SEED-----\n")[1].split("\n")[0]
    first.creds("service").write_text(claims.creds_file(older, seed))
    untouched = first.creds("client").read_text()

    again = secure(tmp_path)

    user = claims.read(claims.jwt_of_creds(again.creds("service").read_text()))
    assert user["nats"]["pub"]["allow"] == list(ROLES["service"].publish)
    assert again.users()["service"]["public_key"] != old_key
    assert old_key in claims.read(again.account_jwt)["nats"]["revocations"]
    assert again.creds("client").read_text() == untouched
