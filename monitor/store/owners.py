"""Who holds an outbox lease, and whether that process is still alive.

Every `Store` that sends alerts has an `owner` name (host, pid and a random token, new for
every process) and writes it into each lease it takes (`outbox.lease_owner`). While it lives
it holds a lock that only its death releases:

- PostgreSQL: a session advisory lock on the two-key form `(OWNER_LOCK_CLASS, hash(owner))`,
  held on one connection of the store for its life (the daemon's own lock uses the one-key
  form, a separate key space). The server drops it when the session ends, also when the
  process is killed (the socket closes).
- SQLite: an `flock` on `<database>.owners/<hash>.lock`, held on an open file; the kernel
  releases it when the process dies, however it dies.

`is_alive(owner)` tries to take the owner's lock without waiting: when it can, nobody holds
it, so the owner is gone (the lock is released again at once). A hash collision can only make
a dead owner look alive, never the reverse: its leases then simply run out (`DELIVERY_LEASE`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, func, select

OWNER_LOCK_CLASS = 0x6E6D6F77  # first key of the two-key advisory locks ("nmow")


def new_owner() -> str:
    """A name for this process as a lease owner: readable, and never reused."""
    host = socket.gethostname()[:40] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(6)}"


def _key(owner: str) -> int:
    """A signed 32-bit key for `owner` (PostgreSQL's int4 advisory key)."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big", signed=True)


class OwnerLock:
    """This process's proof of life for the leases it holds (see the module docstring)."""

    def __init__(self, engine: Engine, owner: str, sqlite_file: Path | None) -> None:
        self.engine = engine
        self.owner = owner
        self._postgres = engine.dialect.name == "postgresql"
        self._folder = (
            None if sqlite_file is None else sqlite_file.with_name(sqlite_file.name + ".owners")
        )
        self._conn: Connection | None = None
        self._file: IO[Any] | None = None
        self._mutex = threading.Lock()  # senders of several channels claim in threads

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def acquire(self) -> None:
        """Take this owner's lock (idempotent). Call before taking the first lease."""
        with self._mutex:
            if not self.held:
                self._acquire()

    def _acquire(self) -> None:
        if self._postgres:
            conn = self.engine.connect()
            try:
                conn.execute(select(func.pg_advisory_lock(OWNER_LOCK_CLASS, _key(self.owner))))
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        elif self._folder is not None:
            self._folder.mkdir(exist_ok=True)
            handle = (self._folder / f"{_key(self.owner) & 0xFFFFFFFF:08x}.lock").open("a")
            fcntl.flock(handle, fcntl.LOCK_EX)  # a new name: nobody else holds it
            self._file = handle

    def release(self) -> None:
        with self._mutex:
            self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # the session (and the lock) may be gone
                conn.execute(select(func.pg_advisory_unlock(OWNER_LOCK_CLASS, _key(self.owner))))
                conn.commit()
            with contextlib.suppress(Exception):
                conn.close()
        handle, self._file = self._file, None
        if handle is not None:
            path = Path(handle.name)
            with contextlib.suppress(OSError):
                path.unlink()
            handle.close()

    def is_alive(self, owner: str) -> bool:
        """Whether the process named `owner` still holds its lock."""
        if owner == self.owner:
            return True
        key = _key(owner)
        if key == _key(self.owner):  # a collision with ourselves: cannot tell, assume alive
            return True
        if self._postgres:
            with self.engine.connect() as conn:
                taken = conn.execute(
                    select(func.pg_try_advisory_lock(OWNER_LOCK_CLASS, key))
                ).scalar()
                if taken:
                    conn.execute(select(func.pg_advisory_unlock(OWNER_LOCK_CLASS, key)))
                conn.commit()
                return not taken
        if self._folder is None:  # an in-memory database lives in one process only
            return True
        path = self._folder / f"{key & 0xFFFFFFFF:08x}.lock"
        try:
            handle = path.open("r+")
        except FileNotFoundError:
            return False  # its owner released it (or never took a lease)
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(OSError):
                path.unlink()  # a dead owner's file: tidy up while we hold it
            return False
