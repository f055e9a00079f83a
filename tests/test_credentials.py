"""The secrets file: made once with mode 0600, kept afterwards, refused when missing, open to
others or malformed, each time naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftnode.security.credentials import Credentials, CredentialsError, ensure_credentials, load_credentials, secrets_path


def test_ensure_makes_the_file_once_with_mode_0600_and_then_keeps_it(tmp_path: Path) -> None:
    path = secrets_path(tmp_path / "state")
    made, created = ensure_credentials(path)
    assert created and path.stat().st_mode & 0o777 == 0o600
    again, created_again = ensure_credentials(path)
    assert not created_again and again == made == load_credentials(path)
    assert made.client_fields() == {"cluster_id": made.cluster_id, "token": made.admin_token}
    assert made.client_fields(admin=False) == {"cluster_id": made.cluster_id, "token": made.client_token}
    assert made.client_token and made.client_token != made.admin_token
    for secret in (made.admin_token, made.client_token, made.peer_secret.hex()):
        assert secret not in repr(made)


def test_two_clusters_get_different_ids_and_secrets(tmp_path: Path) -> None:
    a, _ = ensure_credentials(secrets_path(tmp_path / "a"))
    b, _ = ensure_credentials(secrets_path(tmp_path / "b"))
    assert a.cluster_id != b.cluster_id and a.peer_secret != b.peer_secret and a.admin_token != b.admin_token
    assert a.client_token != b.client_token


def test_a_missing_file_is_named_with_the_command_that_makes_it(tmp_path: Path) -> None:
    path = secrets_path(tmp_path)
    with pytest.raises(CredentialsError, match="secrets file is missing.*raftctl init") as info:
        load_credentials(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_file_others_can_read_is_refused_with_the_chmod_that_fixes_it(tmp_path: Path, mode: int) -> None:
    path = secrets_path(tmp_path)
    ensure_credentials(path)
    path.chmod(mode)
    with pytest.raises(CredentialsError, match=f"mode {mode:o}.*chmod 600 {path}"):
        load_credentials(path)
    with pytest.raises(CredentialsError):
        ensure_credentials(path)  # an existing file is never replaced


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml [", "not a valid secrets file"),
        ('cluster_id = "abc"\npeer_secret = "00"\nadmin_token = "x"\n', "cluster_id must be a string of at least 16"),
        ('cluster_id = "0123456789abcdef"\npeer_secret = "zz' + "0" * 30 + '"\nadmin_token = "' + "t" * 20 + '"\n'
         'client_token = "' + "c" * 20 + '"\n',
         "peer_secret must be hexadecimal"),
        ('cluster_id = "0123456789abcdef"\npeer_secret = "' + "0" * 32 + '"\n', "admin_token must be a string"),
        ('cluster_id = "0123456789abcdef"\npeer_secret = "' + "0" * 32 + '"\nadmin_token = "' + "t" * 20 + '"\n',
         "client_token must be a string"),
    ],
)
def test_a_malformed_file_is_refused_naming_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    path = secrets_path(tmp_path)
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match=fragment):
        load_credentials(path)


def test_generated_credentials_round_trip_through_the_file(tmp_path: Path) -> None:
    made, _ = ensure_credentials(secrets_path(tmp_path))
    assert isinstance(made, Credentials) and len(made.peer_secret) == 32
