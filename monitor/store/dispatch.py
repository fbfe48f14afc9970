"""Cluster mode's SQL (monitor.cluster): the dispatch record of each feed, config generations.

The database, not the broker, is the source of truth about polls in flight. A feed's row in
`dispatch` holds the token of the last poll task the scheduler sent. A worker *claims* that
token (a conditional update) before polling, and marks it done after; so:

- a task delivered twice, or an older task of the feed, finds its claim taken or its token
  stale, and does nothing;
- a task the broker lost (a Redis restart keeps nothing) is never claimed: once `sent_at` is
  older than `redispatch_after`, `dispatch()` sends the feed again, with a new token;
- a task whose worker died mid-poll (SIGKILL) holds a claim whose owner is gone (its owner
  lock is free, see monitor.store.owners): a redelivered copy may claim it again at once, and
  `dispatch()` sends the feed again without waiting for the claim's lease.

Whether a claimed poll runs is decided once more by the feed row itself: `poll_feed` with
`forced=False` does nothing for a feed whose `next_poll_at` is still ahead (a poll recorded
by a worker that died before marking its task done), so each feed is polled once per interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, true, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.errors import StorageError
from monitor.store.models import ConfigGenerationRow, DispatchRow, FeedRow
from monitor.store.repo import FeedState, Store, feed_state_of
from monitor.textutil import one_line


@dataclass(frozen=True, slots=True)
class Task:
    """One poll task to send: feed, token, config generation."""

    feed: str
    token: int
    generation: int


@contextmanager
def _rows(store: Store) -> Iterator[Session]:
    """A transaction on dispatch rows only. It takes row locks, not the store's write lock
    (`Store.transaction`, one writer per schema): a claim is one row and must not queue
    behind other workers' polls being recorded."""
    try:
        with Session(store.engine) as session, session.begin():
            yield session
    except SQLAlchemyError as exc:
        raise StorageError(f"database: {one_line(str(getattr(exc, 'orig', None) or exc))}") from exc


def _not_in_flight(now: datetime, redispatch_after: timedelta, dead: Collection[str]) -> Any:
    """The SQL condition of a record whose task nobody may still be doing."""
    return or_(
        DispatchRow.done_at.is_not(None),
        and_(DispatchRow.claimed_by.is_(None), DispatchRow.sent_at <= now - redispatch_after),
        and_(DispatchRow.claimed_by.is_not(None), DispatchRow.lease_until <= now),
        DispatchRow.claimed_by.in_(list(dead)),
    )


def dispatch(
    store: Store,
    feeds: Sequence[str],
    generation: int,
    now: datetime,
    redispatch_after: timedelta,
) -> list[Task]:
    """New tokens for the `feeds` (due now) whose last task is not in flight any more: no
    record yet, done, never claimed for `redispatch_after` (the broker lost it), claimed by
    a worker that is gone or whose lease ran out. One conditional UPDATE per 1,000 feeds:
    a worker's claim of the same row waits for it, or it for the claim."""
    if not feeds:
        return []
    with _rows(store) as session:
        claimers = session.scalars(
            select(DispatchRow.claimed_by)
            .where(DispatchRow.done_at.is_(None), DispatchRow.claimed_by.is_not(None))
            .distinct()
        ).all()
    dead = [owner for owner in claimers if owner and not store.owner_alive(owner)]
    tasks: list[Task] = []
    with _rows(store) as session:
        for start in range(0, len(feeds), 1000):
            chunk = list(feeds[start : start + 1000])
            known = set(
                session.scalars(select(DispatchRow.feed).where(DispatchRow.feed.in_(chunk)))
            )
            new = [name for name in chunk if name not in known]
            if new:
                session.execute(
                    insert(DispatchRow),
                    [
                        {"feed": n, "token": 1, "generation": generation, "sent_at": now}
                        for n in new
                    ],
                )
                tasks += [Task(n, 1, generation) for n in new]
            updated = session.execute(
                update(DispatchRow)
                .where(
                    DispatchRow.feed.in_(chunk),
                    DispatchRow.feed.not_in(new) if new else true(),
                    _not_in_flight(now, redispatch_after, dead),
                )
                .values(
                    token=DispatchRow.token + 1,
                    generation=generation,
                    sent_at=now,
                    claimed_by=None,
                    lease_until=None,
                    done_at=None,
                )
                .returning(DispatchRow.feed, DispatchRow.token)
                .execution_options(synchronize_session=False)
            ).all()
            tasks += [Task(feed, token, generation) for feed, token in updated]
    order = {name: i for i, name in enumerate(feeds)}  # most overdue first, as given
    return sorted(tasks, key=lambda t: order[t.feed])


def claim(store: Store, task: Task, now: datetime, lease: timedelta) -> FeedState | None:
    """Take the task for this process (its owner name) and read the feed's row in the same
    transaction (one round of the database less per poll); None: done, stale, claimed by
    a live worker whose lease runs, or a feed without a row."""
    if not _claim(store, task, now, lease):
        return None
    with _rows(store) as session:
        row = session.scalars(select(FeedRow).where(FeedRow.name == task.feed)).first()
        return None if row is None else feed_state_of(row)


def _claim(store: Store, task: Task, now: datetime, lease: timedelta) -> bool:
    store.hold_owner_lock()  # the claim names us: our death must free it
    mine = {"claimed_by": store.owner, "lease_until": now + lease}
    this = (DispatchRow.feed == task.feed, DispatchRow.token == task.token)
    with _rows(store) as session:
        taken = session.execute(
            update(DispatchRow)
            .where(
                *this,
                DispatchRow.done_at.is_(None),
                or_(DispatchRow.claimed_by.is_(None), DispatchRow.lease_until <= now),
            )
            .values(**mine)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(taken, "rowcount", 0) or 0):
            return True
        holder = session.scalar(
            select(DispatchRow.claimed_by).where(*this, DispatchRow.done_at.is_(None))
        )
    if holder is None or store.owner_alive(holder):
        return False
    with _rows(store) as session:  # its worker died mid-task: this is a redelivered copy
        taken = session.execute(
            update(DispatchRow)
            .where(*this, DispatchRow.done_at.is_(None), DispatchRow.claimed_by == holder)
            .values(**mine)
            .execution_options(synchronize_session=False)
        )
        return bool(int(getattr(taken, "rowcount", 0) or 0))


def finish(store: Store, tasks: Sequence[Task], now: datetime) -> None:
    """The tasks' polls ended (recorded, or failed and recorded as a failure)."""
    if not tasks:
        return
    with _rows(store) as session:
        session.execute(
            update(DispatchRow)
            .where(
                tuple_(DispatchRow.feed, DispatchRow.token).in_([(t.feed, t.token) for t in tasks])
            )
            .values(done_at=now, claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def last_done(store: Store) -> datetime | None:
    """When a task was last marked done (the scheduler wakes its senders when this moves)."""
    with _rows(store) as session:
        return session.scalar(select(func.max(DispatchRow.done_at)))


def publish_config(store: Store, content: str, now: datetime) -> int:
    """Make `content` (config.toml's text) the newest generation unless it already is;
    returns its id."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    with store.transaction() as tx:  # the write lock: two schedulers never number alike
        newest = tx.session.scalars(
            select(ConfigGenerationRow).order_by(ConfigGenerationRow.id.desc()).limit(1)
        ).first()
        if newest is not None and newest.digest == digest:
            return newest.id
        row = ConfigGenerationRow(
            id=(newest.id + 1) if newest else 1, digest=digest, content=content, created_at=now
        )
        tx.session.add(row)
        tx.session.flush()
        return row.id


def newest_config(store: Store) -> tuple[int, str] | None:
    """(generation, config.toml's text) of the newest published generation."""
    with store.transaction() as tx:
        row = tx.session.scalars(
            select(ConfigGenerationRow).order_by(ConfigGenerationRow.id.desc()).limit(1)
        ).first()
        return None if row is None else (row.id, row.content)
