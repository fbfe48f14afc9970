"""All SQL lives here. The rest of the monitor calls these methods and gets monitor values back.

`Store.open(url)` creates the engine (SQLite in WAL mode with a busy timeout, or PostgreSQL),
applies the Alembic migrations, and is then shared by the whole process. A poll's writes go
through one `Store.transaction()`: the items, their matches, the outbox rows and the feed's new
HTTP validators commit together or not at all, so a crash never hides an item behind an ETag.
New items are found with insert-or-ignore on the (feed, key) unique key, identical on both
dialects.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.alerts.decide import (
    Failed,
    Fetched,
    Gone,
    HealthChange,
    PollPlan,
    QueuedAlert,
    QueuedHealth,
)
from monitor.alerts.digest import CAP_WINDOW, digest_alert_id, digest_key
from monitor.alerts.outbox import content_from_json, content_to_json, health_to_json
from monitor.alerts.story import Story, signature_from_text, similarity
from monitor.errors import DatabaseSetupError, StorageError
from monitor.store.models import (
    FeedRow,
    HeartbeatRow,
    ItemKeyRow,
    ItemRow,
    MatchRow,
    OutboxRow,
    RuleLinkRow,
    StoryBucketRow,
    UTCDateTime,
)
from monitor.store.owners import OwnerLock, new_owner
from monitor.types import (
    AlertContent,
    AlertRecord,
    AlertState,
    DigestContent,
    FeedConfig,
    FeedHealth,
    HealthAlert,
    Heartbeat,
    Item,
    Match,
    Message,
    Pruned,
)

# The domain types the store hands back live in monitor.types; re-exported from here.
from monitor.types import FeedState as FeedState
from monitor.types import PendingAlert as PendingAlert
from monitor.types import StoredItem as StoredItem
from monitor.types import StoredMatch as StoredMatch

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
READ_ONLY = "monitor_read_only"  # execution option of the engine used by Store._read
DAEMON_LOCK = 0x6E6D6F6E  # PostgreSQL advisory lock key of `monitor run` ("nmon")
# PostgreSQL transaction lock taken by every write transaction and by the migrations: one
# writer at a time, as on SQLite (BEGIN IMMEDIATE). Without it two monitors on one database
# (`monitor poll` beside `monitor run`) deadlocked claiming the same articles in different
# orders, and two first starts raced in CREATE TABLE and in sync_feeds.
WRITE_LOCK = 0x6E6D7772  # "nmwr"
# The second key of both: the schema the monitor's tables live in, so two monitors in two
# schemas of one database (a test run beside a production one) never block each other.
_SCHEMA_KEY = func.hashtext(func.current_schema())
# Cluster mode (monitor.cluster): the session lock the active `monitor run --role scheduler`
# holds (standbys wait for it), and one per channel held by that channel's sender. Two-key
# and schema-scoped like the others (a channel's second key hashes the schema and its name).
SCHEDULER_LOCK = 0x6E6D7363  # "nmsc"
CHANNEL_LOCK = 0x6E6D6368  # "nmch"
# The lock sessions of a cluster scheduler: a process that stops talking (hung, SIGSTOP, cut
# off by a partition) loses its session, and with it the lock, after this long; the server
# also probes the client's socket (TCP keepalives) so a vanished host is noticed.
LOCK_SESSION_IDLE = "20s"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record_poll` wrote: items really inserted, their matches, outbox rows."""

    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    rules: tuple[str, ...] = ()  # the rule of each match stored (metrics, match events)


def feed_state_of(row: FeedRow) -> FeedState:
    return FeedState(
        name=row.name,
        url=row.url,
        title=row.title,
        etag=row.etag,
        last_modified=row.last_modified,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        problem=row.problem,
        consecutive_failures=row.consecutive_failures,
        next_poll_at=row.next_poll_at,
        retry_until=row.retry_until,
        gone=row.gone,
        items_seen=row.items_seen,
        body_hash=row.body_hash,
        cache_max_age=_seconds(row.cache_max_age),
        feed_ttl=_seconds(row.feed_ttl),
        feed_update_interval=_seconds(row.feed_update_interval),
        failing_since=row.failing_since,
        last_new_item_at=row.last_new_item_at,
        health=FeedHealth(row.health) if row.health in _HEALTH else FeedHealth.OK,
        health_since=row.health_since,
    )


_HEALTH = frozenset(h.value for h in FeedHealth)


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _as_seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _alert_record(row: OutboxRow) -> AlertRecord:
    if row.delivered_at is not None:
        state = AlertState.DELIVERED
    elif row.failed_at is not None:
        state = AlertState.FAILED
    else:
        state = AlertState.RETRYING if row.attempts else AlertState.PENDING
    try:
        content = content_from_json(row.content)
        title = (
            f"feed {content.feed}: {content.state}"
            if isinstance(content, HealthAlert)
            else content.title
        )
    except (ValueError, KeyError, TypeError):
        title = ""
    waiting = state in (AlertState.PENDING, AlertState.RETRYING)
    return AlertRecord(
        alert_id=row.alert_id,
        channel=row.channel,
        state=state,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if waiting else None,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        title=title,
    )


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling is lazy).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # only in a new, empty database (an existing one: _incremental_vacuum); setting it on
    # every connection would make each reader wait for the write lock
    if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers wait (busy_timeout) instead of
    # failing with "database is locked" when a read transaction tries to become a write one.
    # Read-only sessions (Store._read) begin DEFERRED and never wait for a writer (WAL).
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _on_sqlite_connect_read_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for memory and URI forms)."""
    db = make_url(url).database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def check_sqlite_writable(path: Path) -> None:
    """Raise a UserError naming the folder or file and the permission SQLite lacks.

    SQLite needs to write the file, and (WAL mode) to create `-wal`/`-shm` files beside it.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        parent = next((p for p in folder.parents if p.exists()), folder)
        raise DatabaseSetupError(
            f"cannot create the database folder {folder}: {parent} is not writable "
            f"(write permission missing for {_user()})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseSetupError(
            f"the database folder {folder} is not writable (write permission missing for "
            f"{_user()}): SQLite creates {path.name} and its -wal/-shm files there"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise DatabaseSetupError(
            f"the database file {path} is read-only (write permission missing for {_user()})"
        )


def _read_only_url(path: Path) -> str:
    """A URL that opens `path` without ever writing it. Without a `-wal` file no writer is
    active, and in a folder we cannot write SQLite could not create its `-shm`: `immutable`."""
    query = "mode=ro&uri=true"
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() and not os.access(path.parent, os.W_OK):
        query += "&immutable=1"
    return f"sqlite:///file:{quote(str(path))}?{query}"


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created
    (or, `read_only`, a connection that never writes)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if read_only and path is not None:
            engine = create_engine(
                _read_only_url(path), connect_args={"timeout": 30}, hide_parameters=True
            )
            event.listen(engine, "connect", _on_sqlite_connect_read_only)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
            return engine
        if path is not None:
            check_sqlite_writable(path)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2; psycopg 3 is the driver we depend on.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # hide_parameters: an SQL error must never print bound values (feed URLs hold tokens)
    connect_args = {}
    if "application_name" not in parsed.query:  # pg_stat_activity shows who we are
        connect_args["application_name"] = "news-monitor"
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


def head_revision(folder: Path = MIGRATIONS / "versions") -> str:
    """The newest revision id, read from the migration files' text (no Alembic import)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in folder.glob("*.py"):
        for kind, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise StorageError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None: a new database, or one Alembic never touched)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic), on every start. A database at the
    newest revision already (every start but the first after an upgrade) costs one query:
    Alembic itself (~0.15 s of imports) is loaded only when there is something to do."""
    if current_revision(engine) == head_revision():
        return
    from alembic import command  # deferred on purpose, see above
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # another process may be migrating right now
            connection.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK, _SCHEMA_KEY)))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def schema_revisions(url: str) -> tuple[str | None, str]:
    """(the database's Alembic revision or None, the newest one), migrating nothing."""
    head = head_revision()
    try:
        engine = make_engine(url, read_only=_may_not_write(url))
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise StorageError(f"database {shown}: {_reason(exc)}") from exc
    return current, head


def _incremental_vacuum(engine: Engine) -> None:
    """SQLite: make the file give back the pages retention frees (auto_vacuum=INCREMENTAL).
    A new database gets it from the connect hook; an existing one is converted by one VACUUM
    (needs to rewrite the file once, so it runs once, on the first start after upgrading)."""
    if engine.dialect.name != "sqlite" or _sqlite_file(str(engine.url)) is None:
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if cursor.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            log.info("converting the SQLite database to incremental vacuum (once)")
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cursor.execute("VACUUM")
        cursor.close()
    finally:
        raw.close()


class DaemonLock:
    """The one-daemon lock as held by `Store.only_instance`; `check()` (each tick) says
    whether this daemon still holds it. A file lock (SQLite) cannot be lost."""

    def check(self) -> bool:
        return True


class PostgresLock(DaemonLock):
    """A session advisory lock, held on one connection for the daemon's life.

    The lock dies with its session: a server restart or `pg_terminate_backend` drops it
    silently, and another daemon could then start beside this one. `check` notices (one
    cheap query on that connection), takes it again on a new connection, and answers False
    if another daemon was quicker: then this one must stop."""

    def __init__(
        self,
        engine: Engine,
        key: int = DAEMON_LOCK,
        name: str | None = None,
        watched: bool = False,
    ) -> None:
        self.engine = engine
        self.key = key
        # the second key: the schema, or the schema and a name (a channel's lock)
        self.name = name
        self.second: Any = (
            _SCHEMA_KEY
            if name is None
            else func.hashtext(func.concat(func.current_schema(), ":", name))
        )
        # `watched`: the session ends if this process stays silent (see LOCK_SESSION_IDLE)
        self.watched = watched
        self.conn: Connection | None = None
        # `check` runs in a worker thread (a daemon's tick) and may still be running when the
        # daemon stops and releases the lock: one at a time, and none after the release
        self._mutex = threading.Lock()
        self._released = False

    def take(self) -> bool:
        conn = self.engine.connect()
        try:
            if self.watched:
                for setting in (
                    f"SET idle_session_timeout = '{LOCK_SESSION_IDLE}'",
                    "SET tcp_keepalives_idle = 5",
                    "SET tcp_keepalives_interval = 2",
                    "SET tcp_keepalives_count = 3",
                ):
                    conn.execute(text(setting))
            held = bool(
                conn.execute(select(func.pg_try_advisory_lock(self.key, self.second))).scalar()
            )
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not held:
            conn.close()
            return False
        self.conn = conn
        self._released = False
        return True

    def check(self) -> bool:
        with self._mutex:
            if self._released:  # stopping: nothing to take again
                return True
            return self._check()

    def _check(self) -> bool:
        if self.conn is not None:
            try:
                held = self.conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND granted AND objsubid = 2 "
                        "AND classid::bigint = :key "
                        "AND objid::bigint = (hashtext(CASE WHEN CAST(:name AS text) IS NULL "
                        "THEN current_schema() ELSE concat(current_schema(), ':', "
                        "CAST(:name AS text)) END)::bigint & 4294967295)"
                    ),
                    {"key": self.key, "name": self.name},
                ).scalar()
                self.conn.commit()
                if held:
                    return True
            except SQLAlchemyError as exc:
                log.warning("the daemon lock's database session is gone: %s", _reason(exc))
            self._drop()
        try:
            taken = self.take()
        except SQLAlchemyError as exc:
            raise StorageError(f"database: {_reason(exc)}") from exc
        if taken:
            log.warning("daemon lock taken again after its database session was lost")
        return taken

    def _drop(self) -> None:
        if self.conn is not None:
            with suppress(SQLAlchemyError):
                self.conn.close()
            self.conn = None

    def release(self) -> None:
        with self._mutex:
            self._released = True
            if self.conn is None:
                return
            try:
                self.conn.execute(select(func.pg_advisory_unlock(self.key, self.second)))
                self.conn.commit()
            except SQLAlchemyError as exc:  # the session, and with it the lock, is gone
                log.warning("daemon lock already released: %s", _reason(exc))
            self._drop()


class Store:
    """The database of one monitor: open it once per process with `Store.open(url)`."""

    def __init__(self, engine: Engine, read_only: bool = False) -> None:
        self.engine = engine
        self.read_engine = engine.execution_options(**{READ_ONLY: True})
        self.dialect = engine.dialect.name
        self.read_only = read_only  # opened for reading only: nothing may be written
        # this process as a lease owner: its name goes into every lease it takes
        self.owner = new_owner()
        database = engine.url.database
        sqlite_file = (
            Path(database)
            if self.dialect == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
            else None
        )
        self._owner_lock = OwnerLock(engine, self.owner, sqlite_file)

    @classmethod
    def open(cls, url: str, *, for_reading: bool = False) -> Store:
        """Open (and migrate) the database. `for_reading`: commands that only read (`matches`,
        `feeds`, `test-rule --history`) also work on a SQLite file they may not write; then
        nothing is migrated and `store.read_only` is True."""
        read_only = for_reading and _may_not_write(url)
        try:
            engine = make_engine(url, read_only=read_only)
            if not read_only:
                migrate(engine)
                _incremental_vacuum(engine)
        except (SQLAlchemyError, OSError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise StorageError(f"database {shown}: {_reason(exc)}") from exc
        return cls(engine, read_only=read_only)

    def close(self) -> None:
        self._owner_lock.release()
        self.engine.dispose()

    @contextmanager
    def only_instance(self) -> Iterator[DaemonLock]:
        """Hold the database's daemon lock, or raise StorageError if another daemon has it.

        Two daemons on one database would poll every feed twice (the outbox leases keep them
        from alerting twice). SQLite: an flock on `<database>.lock` beside the file;
        PostgreSQL: a session advisory lock, held on one connection for the daemon's life
        (the daemon calls the lock's `check()` each tick: a lost session is noticed).
        `monitor poll` takes no lock: it is safe beside a running daemon.
        """
        url = self.engine.url
        if self.dialect == "postgresql":
            lock = PostgresLock(self.engine)
            if not lock.take():
                raise StorageError(
                    "another `monitor run` is already using this database "
                    f"(PostgreSQL advisory lock {DAEMON_LOCK} on {url.database})"
                )
            try:
                yield lock
            finally:
                lock.release()
            return
        if not url.database or url.database == ":memory:":
            yield DaemonLock()
            return
        path = Path(url.database + ".lock")
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(
                    f"another `monitor run` is already using this database (lock file {path})"
                ) from None
            try:
                yield DaemonLock()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One unit of work: everything written inside commits together or not at all.

        This and `_read` are the store's boundary: a database error leaves it as a
        StorageError (one line, no SQL parameters), never as a raw SQLAlchemy error.
        On PostgreSQL it first waits for WRITE_LOCK (held until commit or rollback), so write
        transactions of several processes never interleave, and never deadlock.
        """
        try:
            with Session(self.engine) as session, session.begin():
                if self.dialect == "postgresql":
                    session.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK, _SCHEMA_KEY)))
                tx = Tx(session, self.dialect)
                yield tx
                tx.write_matches()  # what insert_match collected, before the commit
        except SQLAlchemyError as exc:
            raise StorageError(f"database: {_reason(exc)}") from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self.read_engine) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"database: {_reason(exc)}") from exc

    # --- feeds ---------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig]) -> None:
        """Create rows for new feeds; a changed config URL resets the feed's HTTP state."""
        with self.transaction() as tx:
            rows = {r.name: r for r in tx.session.scalars(select(FeedRow))}
            for feed in feeds:
                row = rows.get(feed.name)
                if row is None:
                    tx.session.add(
                        FeedRow(
                            name=feed.name,
                            config_url=feed.url,
                            url=feed.url,
                            consecutive_failures=0,
                            gone=False,
                            items_seen=0,
                        )
                    )
                elif row.config_url != feed.url:
                    row.config_url = row.url = feed.url
                    row.etag = row.last_modified = None
                    row.gone = False
                    row.consecutive_failures = 0
                    row.next_poll_at = row.retry_until = row.problem = None
                    row.body_hash = row.failing_since = None
                    row.cache_max_age = row.feed_ttl = row.feed_update_interval = None

    def feed_states(self) -> dict[str, FeedState]:
        with self._read() as session:
            return {r.name: feed_state_of(r) for r in session.scalars(select(FeedRow))}

    def new_items_since(self, since: datetime) -> dict[str, int]:
        """Per feed name: the items first seen at or after `since`."""
        stmt = (
            select(FeedRow.name, func.count(ItemRow.id))
            .join(ItemRow, ItemRow.feed_id == FeedRow.id)
            .where(ItemRow.first_seen_at >= since)
            .group_by(FeedRow.name)
        )
        with self._read() as session:
            return {name: int(count) for name, count in session.execute(stmt)}

    def feed_state(self, name: str) -> FeedState:
        with self._read() as session:
            row = session.scalars(select(FeedRow).where(FeedRow.name == name)).one()
            return feed_state_of(row)

    def seen_keys(self, feed: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` this feed has stored already."""
        seen: set[str] = set()
        with self._read() as session:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                stmt = (
                    select(ItemRow.key)
                    .join(FeedRow, FeedRow.id == ItemRow.feed_id)
                    .where(FeedRow.name == feed, ItemRow.key.in_(chunk))
                )
                seen.update(session.scalars(stmt))
                seen.update(session.scalars(_pruned_keys(feed, chunk)))
        return seen

    def due_feeds(self, now: datetime, names: Collection[str]) -> list[FeedState]:
        """The states of those of the feeds `names` that are due, most overdue first: not
        gone, and next_poll_at unset or passed (the caller still asks `schedule.may_poll`,
        which also weighs Retry-After)."""
        wanted = set(names)
        stmt = (
            select(FeedRow)
            .where(
                FeedRow.gone.is_(False),
                or_(FeedRow.next_poll_at.is_(None), FeedRow.next_poll_at <= now),
            )
            .order_by(FeedRow.next_poll_at.is_not(None), FeedRow.next_poll_at, FeedRow.id)
        )
        with self._read() as session:
            return [feed_state_of(r) for r in session.scalars(stmt) if r.name in wanted]

    def set_next_polls(self, times: Mapping[str, datetime]) -> None:
        """Move feeds' next poll times (the daemon's start-up spread, a reload's changes)."""
        if not times:
            return
        with self.transaction() as tx:
            for name, when in times.items():
                tx.session.execute(
                    update(FeedRow).where(FeedRow.name == name).values(next_poll_at=when)
                )

    def record_poll(self, plan: PollPlan) -> Recorded:
        """Write one poll's plan in one transaction: the feed row, the new items, their
        matches and the outbox rows of the alerts, or nothing at all.

        The one decision made here is the database's: whether this item is the first to
        alert a rule for its article (`claim_link`); `ItemPlan.settle` does the rest.
        """
        return self.record_polls([plan])[0]

    def record_polls(self, plans: Sequence[PollPlan]) -> list[Recorded]:
        """Write several polls' plans in ONE transaction (a group commit: the pipeline hands
        over the plans of polls that finished while another was writing). Each plan stays
        whole: all of them commit, or none."""
        try:
            with self.transaction() as tx:
                # the feed rows of polls with nothing else to write (304s, unchanged bodies,
                # failures) in a few executemany statements; the others one by one
                simple = [p for p in plans if _only_the_feed_row(p)]
                tx.apply_many([(p.feed, p.update) for p in simple])  # type: ignore[misc]
                return [Recorded() if _only_the_feed_row(p) else self._record(tx, p) for p in plans]
        except (SQLAlchemyError, StorageError) as exc:
            feeds = ", ".join(p.feed for p in plans[:3]) + (", ..." if len(plans) > 3 else "")
            raise StorageError(f"cannot record the poll of feed {feeds}: {_reason(exc)}") from exc

    @staticmethod
    def _record(tx: Tx, plan: PollPlan) -> Recorded:
        feed_id = tx.apply(plan.feed, plan.update)
        health = tx.change_health(plan.feed, plan.health)
        if not plan.items:
            return Recorded(alerts=health)
        now = plan.update.at
        # insert-or-ignore: an item another poller stored meanwhile gets no id here
        ids = tx.insert_items(feed_id, [p.item for p in plan.items], now)
        matches = alerts = 0
        rules: list[str] = []
        for item_plan in plan.items:
            item_id = ids.get(item_plan.item.key)
            if item_id is None:
                continue
            story = tx.story(feed_id, item_id, item_plan.story, now)
            won = {
                p.match.rule
                for p in item_plan.matches
                if p.wants_alert
                and tx.claim_link(p.match.rule, item_plan.link_key, item_id)
                and (story is None or tx.claim_link(p.match.rule, story, item_id))
            }
            stored, queued = item_plan.settle(won)
            for match, alerted in stored:
                tx.insert_match(item_id, match, now, alerted=alerted)
            for alert in queued:
                tx.enqueue(item_id, alert, now, tx.due(alert, now))
            matches += len(stored)
            alerts += len(queued)
            rules.extend(match.rule for match, _ in stored)
        tx.write_matches()
        tx.add_items_seen(plan.feed, len(ids))
        return Recorded(
            new_items=len(ids), matches=matches, alerts=alerts + health, rules=tuple(rules)
        )

    # --- outbox --------------------------------------------------------------------------

    def claim_next_alert(
        self,
        channel: str,
        now: datetime,
        lease: timedelta,
        *,
        all_pending: bool = False,
        skip: Collection[int] = (),
    ) -> PendingAlert | None:
        """The oldest undelivered alert of `channel` that is due, leased to the caller.

        The lease (`leased_until`) keeps other senders (a daemon and `monitor poll` on the same
        database) off the row while it is sent; it doubles as the caller's token for
        `mark_delivered` / `mark_failed`. `all_pending` ignores the retry backoff (the `poll`
        command retries everything) but never takes a row another sender holds. Rows whose
        ids are in `skip` (already tried in this pass) are passed over.
        """
        free = or_(OutboxRow.leased_until.is_(None), OutboxRow.leased_until <= now)
        conditions = [
            OutboxRow.channel == channel,
            OutboxRow.delivered_at.is_(None),
            OutboxRow.failed_at.is_(None),
            free,
            # held for a digest or quiet hours: never before its time, `monitor poll` too
            or_(OutboxRow.due_at.is_(None), OutboxRow.due_at <= now),
        ]
        if skip:
            conditions.append(OutboxRow.id.not_in(list(skip)))
        if not all_pending:
            conditions.append(OutboxRow.next_attempt_at <= now)
        until = now + lease
        self._hold_owner_lock()
        for _ in range(5):  # another sender may take the row between select and update
            with self.transaction() as tx:
                row = tx.session.scalars(
                    select(OutboxRow)
                    .where(*conditions)
                    # fewest attempts first: one message a channel keeps refusing cannot
                    # block the others behind it
                    .order_by(OutboxRow.attempts, OutboxRow.id)
                    .limit(1)
                ).first()
                if row is None:
                    return None
                same = (
                    [OutboxRow.id == row.id]
                    if row.digest_key is None
                    # a digest: every due row of its key, leased in one statement
                    else [OutboxRow.digest_key == row.digest_key]
                )
                taken = tx.session.execute(
                    update(OutboxRow)
                    .where(*same, *conditions)
                    .values(leased_until=until, lease_owner=self.owner)
                    .execution_options(synchronize_session=False)
                )
                if not getattr(taken, "rowcount", 0):
                    continue
                if row.digest_key is None:
                    return PendingAlert(
                        id=row.id,
                        channel=row.channel,
                        alert_id=row.alert_id,
                        content=self._with_copies(tx, [row])[0],
                        attempts=row.attempts,
                        lease=until,
                        since=row.requeued_at or row.created_at,
                    )
                return self._digest(tx, row.digest_key, channel, until)
        return None

    def _digest(self, tx: Tx, key: str, channel: str, until: datetime) -> PendingAlert:
        """The rows of digest `key` we just leased, as one pending alert."""
        rows = list(
            tx.session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.channel == channel,
                    OutboxRow.digest_key == key,
                    OutboxRow.leased_until == until,
                    OutboxRow.lease_owner == self.owner,
                )
                .order_by(OutboxRow.created_at, OutboxRow.id)
            )
        )
        contents = self._with_copies(tx, rows)
        items = tuple(c for c in contents if isinstance(c, AlertContent))
        due = min((r.due_at for r in rows if r.due_at is not None), default=until)
        since = min(r.requeued_at or r.created_at for r in rows)
        return PendingAlert(
            id=rows[0].id,
            channel=channel,
            alert_id=digest_alert_id(key),
            content=DigestContent(items=items, alert_id=digest_alert_id(key), due=due),
            attempts=max(r.attempts for r in rows),
            lease=until,
            since=since,
            members=tuple(r.id for r in rows),
        )

    @staticmethod
    def _with_copies(
        tx: Tx, rows: Sequence[OutboxRow]
    ) -> list[AlertContent | HealthAlert | Message]:
        """The rows' contents, each item alert with the feeds that reported its story too
        (near-copies stored since it was queued: "also reported by")."""
        ids = [r.item_id for r in rows if r.item_id is not None]
        also: dict[int, list[str]] = {}
        if ids:
            stmt = (
                select(ItemRow.story_of, FeedRow.name)
                .join(FeedRow, FeedRow.id == ItemRow.feed_id)
                .where(ItemRow.story_of.in_(ids))
                .order_by(ItemRow.id)
            )
            for first, feed in tx.session.execute(stmt):
                if first is not None and feed not in also.setdefault(first, []):
                    also[first].append(feed)
        out: list[AlertContent | HealthAlert | Message] = []
        for row in rows:
            content = content_from_json(row.content)
            if isinstance(content, AlertContent) and row.item_id in also:
                feeds = tuple(f for f in also[row.item_id] if f != content.feed)
                content = replace(content, also=feeds)
            out.append(content)
        return out

    def owner_alive(self, owner: str) -> bool:
        """Whether the process that took a lease (or a cluster claim) as `owner` still runs."""
        try:
            return self._owner_lock.is_alive(owner)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database: cannot check lease owners: {_reason(exc)}") from exc

    def hold_owner_lock(self) -> None:
        """Take this process's owner lock now (a cluster worker, before its first claim)."""
        self._hold_owner_lock()

    def _hold_owner_lock(self) -> None:
        try:
            self._owner_lock.acquire()
        except (SQLAlchemyError, OSError) as exc:
            reason = _reason(exc)
            raise StorageError(f"database: cannot take the lease owner's lock: {reason}") from exc

    def take_over_leases(self, now: datetime) -> dict[str, int]:
        """Free the leases held by processes that are gone (killed, crashed): their alerts
        are due again at once instead of when the lease runs out. Returns {owner: rows}.

        Only for the holder of the daemon lock (`only_instance`), at start and now and then:
        a lease of ours or of a live process (a `monitor poll` beside the daemon) is kept.
        A lease without an owner (taken before revision 0005) runs out as before."""
        held = (
            select(OutboxRow.lease_owner)
            .where(
                OutboxRow.delivered_at.is_(None),
                OutboxRow.leased_until > now,
                OutboxRow.lease_owner.is_not(None),
                OutboxRow.lease_owner != self.owner,
            )
            .distinct()
        )
        with self._read() as session:
            owners = [o for o in session.scalars(held) if o]
        try:
            dead = [o for o in owners if not self._owner_lock.is_alive(o)]
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database: cannot check lease owners: {_reason(exc)}") from exc
        freed: dict[str, int] = {}
        for owner in dead:
            with self.transaction() as tx:
                result = tx.session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.lease_owner == owner, OutboxRow.delivered_at.is_(None))
                    .values(leased_until=None, lease_owner=None)
                )
                count = int(getattr(result, "rowcount", 0) or 0)
            if count:
                freed[owner] = count
        return freed

    def mark_delivered(self, alert: PendingAlert, now: datetime) -> bool:
        """Record the channel's acceptance; False if the lease had been lost meanwhile."""
        return self._finish(
            alert,
            delivered_at=now,
            leased_until=None,
            lease_owner=None,
            last_error=None,
            attempts=OutboxRow.attempts + 1,
        )

    def mark_failed(
        self,
        alert: PendingAlert,
        error: str,
        retry_at: datetime,
        *,
        given_up_at: datetime | None = None,
    ) -> bool:
        """Record a failed attempt and when to retry, or (`given_up_at`) that the alert is
        failed for good until requeued; False if the lease had been lost."""
        return self._finish(
            alert,
            failed_at=given_up_at,
            next_attempt_at=retry_at,
            leased_until=None,
            lease_owner=None,
            last_error=error,
            attempts=OutboxRow.attempts + 1,
        )

    def _finish(self, alert: PendingAlert, **values: Any) -> bool:
        try:
            with self.transaction() as tx:
                ids = list(alert.members) or [alert.id]
                result = tx.session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(ids), OutboxRow.leased_until == alert.lease)
                    .values(**values)
                )
                return bool(getattr(result, "rowcount", 0))
        except (SQLAlchemyError, StorageError) as exc:
            raise StorageError(f"cannot record alert {alert.alert_id}: {_reason(exc)}") from exc

    def pending_count(self, channel: str, skip: Collection[int] = ()) -> int:
        """Undelivered alerts of `channel`, but for those with ids in `skip`."""
        stmt = select(func.count()).where(
            OutboxRow.channel == channel,
            OutboxRow.delivered_at.is_(None),
            OutboxRow.failed_at.is_(None),
        )
        if skip:
            stmt = stmt.where(OutboxRow.id.not_in(list(skip)))
        with self._read() as session:
            return int(session.scalar(stmt) or 0)

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        """Per channel: (pending, delivered); failed alerts are neither."""
        with self._read() as session:
            stmt = select(
                OutboxRow.channel,
                func.count().filter(
                    OutboxRow.delivered_at.is_(None), OutboxRow.failed_at.is_(None)
                ),
                func.count().filter(OutboxRow.delivered_at.is_not(None)),
            ).group_by(OutboxRow.channel)
            return {ch: (int(p), int(d)) for ch, p, d in session.execute(stmt)}

    def alerts(
        self, states: Collection[AlertState] | None = None, limit: int = 1000
    ) -> list[AlertRecord]:
        """Outbox rows in the given states (default: every one not delivered), newest first."""
        wanted = set(states) if states is not None else set(AlertState) - {AlertState.DELIVERED}
        delivered = OutboxRow.delivered_at.is_not(None)
        failed = OutboxRow.failed_at.is_not(None)
        pending = [OutboxRow.delivered_at.is_(None), OutboxRow.failed_at.is_(None)]
        clauses = {
            AlertState.DELIVERED: delivered,
            AlertState.FAILED: and_(OutboxRow.delivered_at.is_(None), failed),
            AlertState.PENDING: and_(*pending, OutboxRow.attempts == 0),
            AlertState.RETRYING: and_(*pending, OutboxRow.attempts > 0),
        }
        stmt = (
            select(OutboxRow)
            .where(or_(*(clauses[s] for s in wanted)))
            .order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
            .limit(limit)
        )
        with self._read() as session:
            return [_alert_record(row) for row in session.scalars(stmt)]

    def alert_states(self, alert_ids: Collection[str]) -> dict[str, AlertState]:
        """The state of each of `alert_ids` the outbox holds."""
        stmt = select(OutboxRow).where(OutboxRow.alert_id.in_(list(alert_ids)))
        with self._read() as session:
            return {row.alert_id: _alert_record(row).state for row in session.scalars(stmt)}

    def requeue(self, now: datetime, alert_ids: Collection[str] | None = None) -> int:
        """Make failed alerts (those in `alert_ids`, or all) pending again, due now, with a
        fresh backoff and `give_up_after` counted from now. Returns how many."""
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.failed_at.is_not(None), OutboxRow.delivered_at.is_(None))
            .values(
                failed_at=None,
                requeued_at=now,
                next_attempt_at=now,
                attempts=0,
                leased_until=None,
                lease_owner=None,
            )
        )
        if alert_ids is not None:
            stmt = stmt.where(OutboxRow.alert_id.in_(list(alert_ids)))
        with self.transaction() as tx:
            result = tx.session.execute(stmt.execution_options(synchronize_session=False))
            return int(getattr(result, "rowcount", 0) or 0)

    # --- reading matches and items -------------------------------------------------------

    def matches(
        self, rule: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[StoredMatch]:
        """Stored matches, newest first."""
        stmt = (
            select(MatchRow, ItemRow, FeedRow.name)
            .join(ItemRow, ItemRow.id == MatchRow.item_id)
            .join(FeedRow, FeedRow.id == ItemRow.feed_id)
            .order_by(MatchRow.matched_at.desc(), MatchRow.id.desc())
            .limit(limit)
        )
        if rule is not None:
            stmt = stmt.where(MatchRow.rule == rule)
        if since is not None:
            stmt = stmt.where(MatchRow.matched_at >= since)
        with self._read() as session:
            found = list(session.execute(stmt))
            also, first = self._story_feeds(session, [i for _, i, _ in found])
            return [
                StoredMatch(
                    rule=m.rule,
                    title=i.title,
                    link=i.link,
                    feed=feed,
                    published=i.published_at,
                    first_seen=i.first_seen_at,
                    matched_at=m.matched_at,
                    terms=tuple(json.loads(m.terms)),
                    snippet=m.snippet,
                    alerted=m.alerted,
                    also_reported_by=tuple(f for f in also.get(i.id, ()) if f != feed),
                    copy_of=first.get(i.story_of) if i.story_of is not None else None,
                    source=m.source or "feed",
                )
                for m, i, feed in found
            ]

    @staticmethod
    def _story_feeds(
        session: Session, items: Sequence[ItemRow]
    ) -> tuple[dict[int, list[str]], dict[int, str]]:
        """For these items: the feeds of each one's later copies, and the feed of each
        copy's first item."""
        ids = list({i.id for i in items})
        roots = list({i.story_of for i in items if i.story_of is not None})
        also: dict[int, list[str]] = {}
        first: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            stmt = (
                select(ItemRow.story_of, FeedRow.name)
                .join(FeedRow, FeedRow.id == ItemRow.feed_id)
                .where(ItemRow.story_of.in_(ids[start : start + 500]))
                .order_by(ItemRow.id)
            )
            for root, feed in session.execute(stmt):
                if root is not None and feed not in also.setdefault(root, []):
                    also[root].append(feed)
        for start in range(0, len(roots), 500):
            stmt = (
                select(ItemRow.id, FeedRow.name)
                .join(FeedRow, FeedRow.id == ItemRow.feed_id)
                .where(ItemRow.id.in_(roots[start : start + 500]))
            )
            first.update({id_: feed for id_, feed in session.execute(stmt)})
        return also, first

    def items(self, limit: int = 10_000, since: datetime | None = None) -> list[StoredItem]:
        """The newest stored items (first seen at or after `since`), for backtesting a rule."""
        stmt = (
            select(ItemRow, FeedRow.name)
            .join(FeedRow, FeedRow.id == ItemRow.feed_id)
            .order_by(ItemRow.first_seen_at.desc(), ItemRow.id.desc())
            .limit(limit)
        )
        stmt = stmt.where(ItemRow.pruned_at.is_(None))  # retention kept only their identity
        if since is not None:
            stmt = stmt.where(ItemRow.first_seen_at >= since)
        with self._read() as session:
            return [
                StoredItem(
                    feed=feed,
                    title=i.title,
                    text=i.text,
                    link=i.link,
                    published=i.published_at,
                    first_seen=i.first_seen_at,
                    article=unpack_article(i.article),
                )
                for i, feed in session.execute(stmt)
            ]

    # --- heartbeat (monitor health) ------------------------------------------------------

    def beat(self, beat: Heartbeat) -> None:
        """Write the running daemon's heartbeat (one row)."""
        with self.transaction() as tx:
            row = tx.session.get(HeartbeatRow, 1)
            if row is None:
                row = HeartbeatRow(id=1)
                tx.session.add(row)
            row.host, row.pid, row.started_at = beat.host, beat.pid, beat.started_at
            row.ticked_at, row.pass_at, row.pruned_at = beat.ticked_at, beat.pass_at, beat.pruned_at

    def heartbeat(self) -> Heartbeat | None:
        """The last heartbeat a daemon wrote, if any ever did."""
        with self._read() as session:
            row = session.get(HeartbeatRow, 1)
            if row is None:
                return None
            return Heartbeat(
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                ticked_at=row.ticked_at,
                pass_at=row.pass_at,
                pruned_at=row.pruned_at,
            )

    # --- retention -----------------------------------------------------------------------

    def prune(self, before: datetime, now: datetime, batch: int = 500) -> Pruned:
        """One small batch of retention, in one short transaction: delivered alerts and
        matches from before `before` are deleted; items first seen before it, with no match
        left, are deleted and their identity (feed, key) kept in item_keys, so they are never
        stored or alerted again (one a rule alerted, or whose alert is still pending, keeps
        its row without title, text and links instead). Call until it returns nothing."""
        with self.transaction() as tx:
            s = tx.session
            alerts = s.scalars(
                select(OutboxRow.id)
                .where(OutboxRow.delivered_at.is_not(None), OutboxRow.delivered_at < before)
                .limit(batch)
            ).all()
            if alerts:
                s.execute(delete(OutboxRow).where(OutboxRow.id.in_(alerts)))
            matches = s.scalars(
                select(MatchRow.id).where(MatchRow.matched_at < before).limit(batch)
            ).all()
            if matches:
                s.execute(delete(MatchRow).where(MatchRow.id.in_(matches)))
            has_match = select(MatchRow.id).where(MatchRow.item_id == ItemRow.id).exists()
            rows = s.execute(
                select(ItemRow.id, ItemRow.feed_id, ItemRow.key)
                .where(ItemRow.first_seen_at < before, ItemRow.pruned_at.is_(None), ~has_match)
                .limit(batch)
            ).all()
            items = [r.id for r in rows]
            if items:
                # an item some rule alerted stays (rule_links points at it: one alert per
                # article), as does one whose alert waits in the outbox; both lose their text
                kept = set(
                    s.scalars(select(RuleLinkRow.item_id).where(RuleLinkRow.item_id.in_(items)))
                )
                kept.update(
                    s.scalars(select(OutboxRow.item_id).where(OutboxRow.item_id.in_(items)))
                )
                gone = [r for r in rows if r.id not in kept]
                if gone:
                    s.execute(
                        tx._insert(ItemKeyRow)
                        .values([{"feed_id": r.feed_id, "key": r.key} for r in gone])
                        .on_conflict_do_nothing()
                    )
                    doomed = [r.id for r in gone]
                    # their story fingerprints go first (a foreign key holds them)
                    s.execute(delete(StoryBucketRow).where(StoryBucketRow.item_id.in_(doomed)))
                    s.execute(delete(ItemRow).where(ItemRow.id.in_(doomed)))
                if kept:
                    s.execute(
                        update(ItemRow)
                        .where(ItemRow.id.in_(kept))
                        .values(
                            title="",
                            text="",
                            guid=None,
                            link=None,
                            canonical_link=None,
                            article=None,  # the full text goes with the rest of the item
                            story_sig=None,
                            pruned_at=now,
                        )
                    )
        return Pruned(items=len(items), matches=len(matches), alerts=len(alerts))

    def reclaim_space(self) -> None:
        """SQLite: give the pages freed by pruning back to the file system."""
        if self.dialect != "sqlite":
            return
        try:
            raw = self.engine.raw_connection()
            try:
                # executescript steps the pragma to its end: execute() frees one page only
                raw.driver_connection.executescript("PRAGMA incremental_vacuum;")  # type: ignore[union-attr]
            finally:
                raw.close()
        except SQLAlchemyError as exc:
            raise StorageError(f"database: {_reason(exc)}") from exc


class Tx:
    """The writes of one poll, inside one transaction (see Store.transaction)."""

    def __init__(self, session: Session, dialect: str) -> None:
        self.session = session
        self.dialect = dialect
        self._recent: dict[tuple[str, str], int] = {}  # (rule, channel): immediate, last hour
        self._matches: list[dict[str, Any]] = []  # match rows not yet written (insert_match)

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            # imported here: a SQLite user's start-up never loads the PostgreSQL dialect
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def feed_id(self, name: str) -> int:
        return self.session.scalars(select(FeedRow.id).where(FeedRow.name == name)).one()

    def insert_items(self, feed_id: int, items: Sequence[Item], now: datetime) -> dict[str, int]:
        """Store the items the feed does not have yet (insert-or-ignore on (feed, key)).

        Returns the ids of the rows really inserted, by key: an item another poller stored
        meanwhile is not among them. Multi-row statements, a few hundred rows each.
        """
        items = self._not_pruned(feed_id, items)
        if not items:
            return {}
        rows = [
            {
                "feed_id": feed_id,
                "key": item.key,
                "guid": item.guid,
                "link": item.link,
                "canonical_link": item.canonical_link,
                "title": item.title,
                "text": item.text,
                "published_at": item.published,
                "first_seen_at": now,
                "article": pack_article(item.article),
                "article_error": item.article_error,
            }
            for item in items
        ]
        # executemany with RETURNING: SQLAlchemy batches the rows into multi-row statements
        # ("insertmanyvalues") from one compiled statement, instead of compiling a new
        # statement for every batch
        found = self.session.execute(self._insert_items(), rows)
        return {key: id_ for key, id_ in found}

    def _insert_items(self) -> Any:
        """INSERT ... ON CONFLICT (feed_id, key) DO NOTHING RETURNING key, id (built once)."""
        stmt = _INSERT_ITEMS.get(self.dialect)
        if stmt is None:
            table = cast(Table, ItemRow.__table__)
            stmt = (
                self._insert(table)
                .on_conflict_do_nothing(index_elements=["feed_id", "key"])
                .returning(table.c.key, table.c.id)
            )
            _INSERT_ITEMS[self.dialect] = stmt
        return stmt

    def _not_pruned(self, feed_id: int, items: Sequence[Item]) -> Sequence[Item]:
        """`items` but those whose identity retention keeps in item_keys (seen long ago)."""
        gone: set[str] = set()
        keys = [i.key for i in items]
        for start in range(0, len(keys), 500):
            stmt = select(ItemKeyRow.key).where(
                ItemKeyRow.feed_id == feed_id, ItemKeyRow.key.in_(keys[start : start + 500])
            )
            gone.update(self.session.scalars(stmt))
        return [i for i in items if i.key not in gone] if gone else items

    def story(self, feed_id: int, item_id: int, story: Story | None, now: datetime) -> str | None:
        """The story key this item alerts under (`story:<first item id>`), after linking it
        to the first item of its story when a close one from another feed was stored within
        the window; None when it has no fingerprint. Candidates come from the indexed LSH
        buckets; their signatures decide."""
        if story is None:
            return None
        stmt = (
            select(ItemRow.id, ItemRow.story_sig, ItemRow.story_of)
            .join(StoryBucketRow, StoryBucketRow.item_id == ItemRow.id)
            .where(
                StoryBucketRow.bucket.in_(list(story.buckets)),
                StoryBucketRow.seen_at >= now - story.window,
                ItemRow.feed_id != feed_id,
            )
            .distinct()
            .order_by(ItemRow.id)
        )
        best: tuple[float, int] | None = None
        for other, sig, first in self.session.execute(stmt):
            score = similarity(story.signature, signature_from_text(sig))
            if score >= story.threshold and (best is None or score > best[0]):
                best = (score, first or other)
        root = item_id if best is None else best[1]
        self.session.execute(
            update(ItemRow)
            .where(ItemRow.id == item_id)
            .values(story_sig=story.text, story_of=None if best is None else root)
        )
        self.session.execute(
            self._insert(StoryBucketRow)
            .values([{"bucket": b, "item_id": item_id, "seen_at": now} for b in set(story.buckets)])
            .on_conflict_do_nothing()
        )
        return f"story:{root}"

    def claim_link(self, rule: str, link_key: str, item_id: int) -> bool:
        """True when no item has alerted `rule` for this article yet (and records that one has)."""
        stmt = (
            self._insert(RuleLinkRow)
            .values(rule=rule, link_key=link_key[:700], item_id=item_id)
            .on_conflict_do_nothing(index_elements=["rule", "link_key"])
            .returning(RuleLinkRow.item_id)
        )
        return self.session.execute(stmt).scalar_one_or_none() is not None

    def insert_match(self, item_id: int, match: Match, now: datetime, alerted: bool) -> None:
        """A match row, written with the others of the poll by `write_matches` (one
        executemany: a first pass stores ~8 matches per item, and ORM objects for them cost
        more than everything else the store does)."""
        self._matches.append(
            {
                "item_id": item_id,
                "rule": match.rule,
                "terms": json.dumps(list(match.terms), ensure_ascii=False),
                "snippet": match.snippet,
                "matched_at": now,
                "alerted": alerted,
                "source": match.source,
            }
        )

    def write_matches(self) -> None:
        """Write the match rows `insert_match` collected (before anything reads them)."""
        if self._matches:
            rows, self._matches = self._matches, []
            self.session.execute(insert(cast(Table, MatchRow.__table__)), rows)

    def due(self, alert: QueuedAlert, now: datetime) -> datetime | None:
        """When this alert goes out (`QueuedAlert.due`, pure), given the immediate alerts of
        its capped rules on its channel in the last hour; an immediate one is counted."""
        capped = [t.rule for t in alert.timing if t.cap is not None]
        recent = {rule: self._immediate(rule, alert.channel, now) for rule in capped}
        due = alert.due(recent)
        if due is None:
            for rule in capped:
                self._recent[(rule, alert.channel)] += 1
        return due

    def _immediate(self, rule: str, channel: str, now: datetime) -> int:
        """Immediate alerts (no digest) of `rule` on `channel` queued in the last hour
        (cached for the transaction, which adds its own)."""
        key = (rule, channel)
        if key not in self._recent:
            self.write_matches()
            stmt = (
                select(func.count())
                .select_from(OutboxRow)
                .join(MatchRow, MatchRow.item_id == OutboxRow.item_id)
                .where(
                    OutboxRow.channel == channel,
                    OutboxRow.created_at > now - CAP_WINDOW,
                    OutboxRow.digest_key.is_(None),
                    MatchRow.rule == rule,
                    MatchRow.alerted.is_(True),
                )
            )
            self._recent[key] = int(self.session.scalar(stmt) or 0)
        return self._recent[key]

    def enqueue(
        self, item_id: int, alert: QueuedAlert, now: datetime, due: datetime | None = None
    ) -> None:
        """One outbox row; `due` holds it for the channel's digest due then."""
        self.session.add(
            OutboxRow(
                item_id=item_id,
                channel=alert.channel,
                alert_id=alert.content.alert_id,
                content=content_to_json(alert.content),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
                due_at=due,
                digest_key=None if due is None else digest_key(alert.channel, due),
            )
        )

    def change_health(self, feed: str, change: HealthChange | None) -> int:
        """The feed's new health state and its alerts (outbox rows without an item); returns
        how many alerts were queued."""
        if change is None:
            return 0
        self.session.execute(
            update(FeedRow)
            .where(FeedRow.name == feed)
            .values(health=change.state.value, health_since=change.at)
        )
        for alert in change.alerts:
            self.enqueue_health(alert, change.at)
        return len(change.alerts)

    def enqueue_health(self, alert: QueuedHealth, now: datetime) -> None:
        self.session.add(
            OutboxRow(
                item_id=None,
                channel=alert.channel,
                alert_id=alert.content.alert_id,
                content=health_to_json(alert.content),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )

    def apply(self, feed: str, update_: Fetched | Failed | Gone) -> int:
        """The feed row after a poll, in one UPDATE; returns the feed's id."""
        values = feed_row_values(update_)
        if isinstance(update_, Gone):  # rare: keeps the first failure's time (an expression)
            stmt: Any = update(FeedRow).where(FeedRow.name == feed).values(values)
            found = self.session.execute(stmt.returning(FeedRow.id)).scalar_one_or_none()
        else:
            stmt = _feed_update(tuple(values), returning=True)
            found = self.session.execute(stmt, {**values, "_feed": feed}).scalar_one_or_none()
        if found is None:
            raise StorageError(f"feed {feed!r} has no row in the database")
        return int(found)

    def apply_many(self, updates: Sequence[tuple[str, Fetched | Failed]]) -> None:
        """`apply` for many feeds at once: one executemany per set of columns (a pass of
        304s writes its feed rows in a few statements, not one per feed)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for feed, update_ in updates:
            values = feed_row_values(update_)
            groups.setdefault(tuple(values), []).append({**values, "_feed": feed})
        for columns, params in groups.items():
            done = self.session.execute(_feed_update(columns, returning=False), params)
            if getattr(done, "rowcount", len(params)) not in (-1, len(params)):
                raise StorageError("a polled feed has no row in the database")

    def add_items_seen(self, name: str, count: int) -> None:
        if count:
            self.session.execute(
                update(FeedRow)
                .where(FeedRow.name == name)
                .values(items_seen=FeedRow.items_seen + count)
            )


@lru_cache(maxsize=64)
def _feed_update(columns: tuple[str, ...], *, returning: bool) -> Any:
    """UPDATE feeds SET <columns> WHERE name = :_feed, built once per set of columns (building
    a statement costs more than running it)."""
    table = cast(Table, FeedRow.__table__)
    values = {c: bindparam(c, type_=table.c[c].type) for c in columns}
    stmt = update(table).where(table.c.name == bindparam("_feed")).values(values)
    return stmt.returning(table.c.id) if returning else stmt


def feed_row_values(update_: Fetched | Failed | Gone) -> dict[str, Any]:
    """The columns of the feed row a poll's outcome sets (pure: `Tx.apply` writes them)."""
    if isinstance(update_, Fetched):
        values: dict[str, Any] = {
            "last_success_at": update_.at,
            "consecutive_failures": 0,
            "last_error": None,
            "retry_until": None,
            "next_poll_at": update_.next_poll_at,
            "etag": update_.etag,
            "last_modified": update_.last_modified,
            "failing_since": None,
            "last_new_item_at": update_.last_new_item_at,
        }
        if update_.body_hash is not None:
            values["body_hash"] = update_.body_hash or None
        if update_.hints is not None:  # a 304 keeps the hints of the last 200
            values["cache_max_age"] = _as_seconds(update_.hints.cache_max_age)
            values["feed_ttl"] = _as_seconds(update_.hints.ttl)
            values["feed_update_interval"] = _as_seconds(update_.hints.update_interval)
        if update_.moved_to:
            values["url"] = update_.moved_to
        if update_.document is not None:  # a 304 keeps what the document said
            values["title"] = update_.document.title
            values["problem"] = update_.document.problem
        return values
    if isinstance(update_, Failed):
        return {
            "consecutive_failures": update_.consecutive_failures,
            "last_error": update_.error,
            "last_error_at": update_.at,
            "next_poll_at": update_.next_poll_at,
            "retry_until": update_.retry_until,
            "failing_since": update_.failing_since or update_.at,
        }
    return {
        "gone": True,
        # the first failure's time, if the feed was failing before it went
        "failing_since": func.coalesce(
            FeedRow.failing_since, literal(update_.at, type_=UTCDateTime())
        ),
        "last_error": update_.error,
        "last_error_at": update_.at,
        "next_poll_at": None,
    }


_INSERT_ITEMS: dict[str, Any] = {}  # Tx._insert_items, by dialect


def _only_the_feed_row(plan: PollPlan) -> bool:
    """A poll whose only write is its feed row (no item, no health change, not gone)."""
    return not plan.items and plan.health is None and not isinstance(plan.update, Gone)


def _pruned_keys(feed: str, keys: Sequence[str]) -> Any:
    return (
        select(ItemKeyRow.key)
        .join(FeedRow, FeedRow.id == ItemKeyRow.feed_id)
        .where(FeedRow.name == feed, ItemKeyRow.key.in_(keys))
    )


def pack_article(text: str | None) -> bytes | None:
    """An article's text as stored: UTF-8, zlib-compressed (news text shrinks ~3x)."""
    return None if text is None else zlib.compress(text.encode("utf-8"), 6)


def unpack_article(data: bytes | None) -> str | None:
    """The stored article text (None when there is none or it cannot be read back)."""
    if data is None:
        return None
    try:
        return zlib.decompress(bytes(data)).decode("utf-8", errors="replace")
    except zlib.error:
        log.warning("a stored article text is damaged; read as missing")
        return None


def _may_not_write(url: str) -> bool:
    """A SQLite database that exists but that this user may not write (file or folder)."""
    if make_url(url).get_backend_name() != "sqlite":
        return False
    path = _sqlite_file(url)
    if path is None or not path.exists():
        return False
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK))


def _reason(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background links."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = [
    "DaemonLock",
    "FeedState",
    "PendingAlert",
    "PostgresLock",
    "Recorded",
    "Store",
    "StoredItem",
    "StoredMatch",
    "Tx",
    "feed_state_of",
]
