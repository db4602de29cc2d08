"""Static users besides root: the users file, its checks, and its reload on SIGHUP.

The file (``SEALSTORE_USERS_FILE``) is JSON and holds secret keys, so it must be a regular
file owned by the server's user (or root) and not accessible to group or others; otherwise,
or when anything in it is invalid, the server refuses to start with one line naming the file,
the user and the problem (never a secret). Shape::

    {"policies": {"read-only": {"Version": "2012-10-17", "Statement": [...]}},
     "users": [{"name": "alice", "access_key": "AKALICE...", "secret_key": "...",
                "policies": ["read-only", {"Statement": [...]}]}]}

``policies`` (optional) names documents users can refer to; a user's ``policies`` lists names
or inline documents (identity policies: no ``Principal``). A reload (SIGHUP) that finds the
file broken logs why and keeps the users it had, like the TLS certificate reload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealstore.s3.policy.document import KnownPrincipals, Policy, parse_document
from sealstore.s3.policy.errors import PolicyError
from sealstore.s3.policy.evaluate import Principal

MAX_FILE = 1024 * 1024
_NAME = re.compile(r"[\w+=,.@-]{1,64}")
# No "/" "," "=" or spaces: SigV4's Credential=<key>/<date>/... must split unambiguously.
_ACCESS_KEY = re.compile(r"[A-Za-z0-9._~+@-]{3,128}")
_USER_FIELDS = frozenset({"name", "access_key", "secret_key", "policies"})


class UsersFileError(ValueError):
    """The users file cannot be used; the message names the problem, never a secret."""


@dataclass(frozen=True)
class User:
    """One user: its keys and identity policies (``repr`` never shows the secret)."""

    name: str
    access_key: str
    secret_key: str = field(repr=False)
    policies: tuple[Policy, ...] = field(default=(), repr=False)

    def principal(self) -> Principal:
        """The evaluation view of this user."""
        return Principal("user", self.access_key, self.name, self.policies)


@dataclass(frozen=True)
class UserDirectory:
    """An immutable snapshot of the users, looked up by access key."""

    by_key: dict[str, User] = field(default_factory=dict)

    def get(self, access_key: str) -> User | None:
        """The user owning ``access_key``, or None."""
        return self.by_key.get(access_key)

    def known(self, root_access_key: str) -> KnownPrincipals:
        """The principal names a bucket policy may use now."""
        return KnownPrincipals(
            user_names={u.name for u in self.by_key.values()},
            access_keys={*self.by_key, root_access_key},
        )

    def secrets(self) -> list[str]:
        """Every secret key, for the log redaction filter."""
        return [u.secret_key for u in self.by_key.values()]


def _user(raw: Any, index: int, named: dict[str, Policy], root_key: str) -> User:
    if not isinstance(raw, dict):
        raise UsersFileError(f"users[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsersFileError(f"users[{index}]: name must be 1-64 of letters, digits, +=,.@_-")
    where = f"user {name!r}"
    unknown = sorted(set(raw) - _USER_FIELDS)
    if unknown:
        raise UsersFileError(f"{where}: unknown field {unknown[0]!r}")
    key = raw.get("access_key")
    if not isinstance(key, str) or not _ACCESS_KEY.fullmatch(key):
        raise UsersFileError(f"{where}: access_key must be 3-128 of letters, digits, ._~+@-")
    if key == root_key:
        raise UsersFileError(f"{where}: access_key is the root user's (MINIO_ROOT_USER)")
    secret = raw.get("secret_key")
    if not isinstance(secret, str) or not 8 <= len(secret) <= 128 or secret.strip() != secret:
        raise UsersFileError(
            f"{where}: secret_key must be 8-128 characters without surrounding spaces"
        )
    refs = raw.get("policies", [])
    if not isinstance(refs, list):
        raise UsersFileError(f"{where}: policies must be a list of names or documents")
    policies = []
    for n, ref in enumerate(refs):
        if isinstance(ref, str):
            if ref not in named:
                raise UsersFileError(f"{where}: policy {ref!r} is not defined under 'policies'")
            policies.append(named[ref])
            continue
        try:
            policies.append(parse_document(ref))
        except PolicyError as exc:
            raise UsersFileError(f"{where}: policies[{n}]: {exc}") from None
    return User(name, key, secret, tuple(policies))


def parse_users(text: str, root_key: str) -> UserDirectory:
    """Validate the users file's content (see module docstring)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # json's message names the position only, never the text around it.
        raise UsersFileError(
            f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(doc, dict) or not set(doc) <= {"users", "policies"}:
        raise UsersFileError("must be a JSON object with 'users' and optional 'policies'")
    named: dict[str, Policy] = {}
    raw_named = doc.get("policies", {})
    if not isinstance(raw_named, dict):
        raise UsersFileError("'policies' must map policy names to documents")
    for pname, pdoc in raw_named.items():
        try:
            named[pname] = parse_document(pdoc)
        except PolicyError as exc:
            raise UsersFileError(f"policy {pname!r}: {exc}") from None
    raw_users = doc.get("users", [])
    if not isinstance(raw_users, list):
        raise UsersFileError("'users' must be a list")
    by_key: dict[str, User] = {}
    names: set[str] = set()
    for i, raw in enumerate(raw_users):
        user = _user(raw, i, named, root_key)
        if user.access_key in by_key:
            raise UsersFileError(f"user {user.name!r}: access_key is used by another user")
        if user.name in names:
            raise UsersFileError(f"user {user.name!r}: name is used twice")
        by_key[user.access_key] = user
        names.add(user.name)
    return UserDirectory(by_key)


def check_file(path: Path) -> os.stat_result:
    """Refuse a users file that is not a private regular file of this user (or root)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise UsersFileError(f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsersFileError("is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise UsersFileError(
            f"is accessible by group or others (mode {mode:04o}); it holds secret keys: "
            "make it 0600 (or 0400)"
        )
    if st.st_uid not in (0, os.geteuid()):
        raise UsersFileError(f"is owned by uid {st.st_uid}, not by root or the server's user")
    if st.st_size > MAX_FILE:
        raise UsersFileError(f"is larger than {MAX_FILE} bytes")
    return st


def load_users_file(path: Path, root_key: str) -> UserDirectory:
    """Check and parse the file; UsersFileError's message starts with the path."""
    try:
        check_file(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsersFileError(
                f"cannot be read: {getattr(exc, 'strerror', None) or 'not UTF-8'}"
            ) from None
        return parse_users(text, root_key)
    except UsersFileError as exc:
        raise UsersFileError(f"SEALSTORE_USERS_FILE {str(path)!r} {_glue(str(exc))}") from None


def _glue(message: str) -> str:
    return message if message.startswith(("is ", "cannot ")) else f": {message}"


class UsersReloader:
    """The current users of one worker; ``reload()`` (SIGHUP) swaps in the file's content."""

    def __init__(
        self, path: Path | None, root_key: str, logger: logging.Logger | None = None
    ) -> None:
        self.path = path
        self._root_key = root_key
        self._log = logger or logging.getLogger("sealstore")
        self.current = UserDirectory()
        self._stamp: tuple[int, int, int] | None = None
        if path is not None:
            self.current = self._load()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat() if self.path is not None else None
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else None

    def _load(self) -> UserDirectory:
        assert self.path is not None
        stamp = self._file_stamp()
        users = load_users_file(self.path, self._root_key)
        self._stamp = stamp
        return users

    def changed_since_load(self) -> bool:
        """True when the file differs from what was loaded (a SIGHUP during start-up)."""
        return self.path is not None and self._file_stamp() != self._stamp

    async def reload(self) -> bool:
        """Load the file again, off the event loop; never raises."""
        if self.path is None:
            return False
        try:
            users = await asyncio.get_running_loop().run_in_executor(None, self._load)
        except UsersFileError as exc:
            self._log.error(
                "users file reload failed; keeping the previous users",
                extra={"error": str(exc)},
            )
            return False
        self.current = users
        self._log.info(
            "users file reloaded",
            extra={"users": len(users.by_key), "pid": os.getpid()},
        )
        return True
