"""The users file: refused when group/world accessible, not a regular file or malformed, with
a message naming the file, the user and the problem but never a secret; named and inline
policies; a reload swaps users in only when the new file is valid, and otherwise logs why and
keeps the old ones. The server itself refuses to start on a bad file (exit 2, one line)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealstore.s3.policy.users import UsersFileError, UsersReloader, load_users_file, parse_users

SECRET = "alice-secret-key-0123"
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}],
}


def users_doc(**alice: object) -> dict:
    user = {"name": "alice", "access_key": "AKALICE", "secret_key": SECRET, "policies": ["ro"]}
    user.update(alice)
    return {
        "policies": {"ro": READ_ONLY},
        "users": [{k: v for k, v in user.items() if v is not None}],
    }


def write(path: Path, doc: object, mode: int = 0o600) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.chmod(path, mode)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    doc = users_doc(
        policies=["ro", {"Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}}]
    )
    doc["users"].append({"name": "bob", "access_key": "AKBOB", "secret_key": "bob-secret-0123"})
    users = load_users_file(write(tmp_path / "users.json", doc), "root")
    alice = users.get("AKALICE")
    assert alice is not None and alice.secret_key == SECRET and len(alice.policies) == 2
    assert SECRET not in repr(alice)
    assert users.get("AKBOB").policies == () and users.get("nobody") is None
    assert users.known("root").access_keys == {"AKALICE", "AKBOB", "root"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620])
def test_group_or_world_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "users.json", users_doc(), mode)
    with pytest.raises(
        UsersFileError, match=f"accessible by group or others \\(mode {mode:04o}\\)"
    ):
        load_users_file(path, "root")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot be read"):
        load_users_file(tmp_path / "none.json", "root")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(UsersFileError, match="not a regular file"):
        load_users_file(tmp_path / "dir", "root")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name"),
        ([], "must be a JSON object"),
        ({"users": {}}, "'users' must be a list"),
        (users_doc(name="a b"), "name must be"),
        (users_doc(access_key="AK/1"), "user 'alice': access_key must be"),
        (users_doc(access_key="root"), "access_key is the root user's"),
        (users_doc(secret_key="short"), "user 'alice': secret_key must be 8-128"),
        (users_doc(policies=["missing"]), "policy 'missing' is not defined"),
        (users_doc(colour="red"), "unknown field 'colour'"),
        (
            users_doc(
                policies=[{"Statement": {"Effect": "Allow", "Action": "s3:Nope", "Resource": "*"}}]
            ),
            "user 'alice': policies[0]: Policy has invalid action",
        ),
        (
            users_doc(
                policies=[
                    {
                        "Statement": {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": "*",
                        }
                    }
                ]
            ),
            "should not specify a principal",
        ),
    ],
)
def test_malformed_files_name_the_problem_never_the_secret(
    tmp_path: Path, doc: object, message: str
) -> None:
    path = write(tmp_path / "users.json", doc)
    with pytest.raises(UsersFileError) as info:
        load_users_file(path, "root")
    text = str(info.value)
    assert message in text and str(path) in text
    assert SECRET not in text and "short" not in text.replace("secret_key must be", "")


def test_duplicates_are_refused() -> None:
    doc = users_doc()
    doc["users"].append(dict(doc["users"][0], name="alice2"))
    with pytest.raises(UsersFileError, match="access_key is used by another user"):
        parse_users(json.dumps(doc), "root")
    doc["users"][1]["access_key"] = "AKOTHER"
    doc["users"][1]["name"] = "alice"
    with pytest.raises(UsersFileError, match="name is used twice"):
        parse_users(json.dumps(doc), "root")


def test_reload_keeps_old_users_when_the_file_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "users.json", users_doc())
    reloader = UsersReloader(path, "root", logging.getLogger("test.users"))
    assert reloader.current.get("AKALICE") is not None and not reloader.changed_since_load()

    async def main() -> None:
        write(path, users_doc(access_key="AKNEW"))
        assert reloader.changed_since_load()
        assert await reloader.reload()
        assert reloader.current.get("AKNEW") is not None and reloader.current.get("AKALICE") is None
        write(path, users_doc(), 0o644)
        with caplog.at_level(logging.ERROR, logger="test.users"):
            assert not await reloader.reload()
        assert reloader.current.get("AKNEW") is not None
        write(path, "{broken")
        assert not await reloader.reload()
        assert reloader.current.get("AKNEW") is not None

    asyncio.run(main())
    failures = [r for r in caplog.records if "keeping the previous users" in r.getMessage()]
    assert failures and "mode 0644" in failures[0].error
    assert all(SECRET not in r.getMessage() + str(getattr(r, "error", "")) for r in caplog.records)


def test_server_refuses_to_start_with_an_exposed_file(tmp_path: Path) -> None:
    path = write(tmp_path / "users.json", users_doc(), 0o644)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "root-password-0123",
        "SEALSTORE_USERS_FILE": str(path),
    }
    argv = [
        sys.executable,
        "-m",
        "sealstore",
        "server",
        "--address",
        "127.0.0.1:0",
        str(tmp_path / "d"),
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "configuration error: SEALSTORE_USERS_FILE" in proc.stderr and "mode 0644" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
