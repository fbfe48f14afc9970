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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from monitor.store.models import ConfigGenerationRow, DispatchRow
from monitor.store.repo import Store


@dataclass(frozen=True, slots=True)
class Task:
    """One poll task to send: feed, token, config generation."""

    feed: str
    token: int
    generation: int


def _in_flight(
    row: DispatchRow, now: datetime, redispatch_after: timedelta, dead: set[str]
) -> bool:
    """Whether the feed's last task may still be done by someone (pure)."""
    if row.done_at is not None:
        return False
    if row.claimed_by is None:  # queued: the broker may still hold it
        return row.sent_at > now - redispatch_after
    if row.claimed_by in dead:
        return False
    return row.lease_until is not None and row.lease_until > now


def dispatch(
    store: Store,
    feeds: Sequence[str],
    generation: int,
    now: datetime,
    redispatch_after: timedelta,
) -> list[Task]:
    """New tokens for the `feeds` (due now) whose last task is not in flight any more."""
    if not feeds:
        return []
    rows: dict[str, DispatchRow] = {}
    with store.transaction() as tx:  # read under the write lock: no claim lands meanwhile
        for start in range(0, len(feeds), 1000):
            chunk = feeds[start : start + 1000]
            stmt = select(DispatchRow).where(DispatchRow.feed.in_(chunk))
            rows.update((r.feed, r) for r in tx.session.scalars(stmt))
        claimers = {r.claimed_by for r in rows.values() if r.claimed_by and r.done_at is None}
        dead = {owner for owner in claimers if not store.owner_alive(owner)}
        tasks: list[Task] = []
        for name in feeds:
            row = rows.get(name)
            if row is None:
                tx.session.add(DispatchRow(feed=name, token=1, generation=generation, sent_at=now))
                tasks.append(Task(name, 1, generation))
            elif not _in_flight(row, now, redispatch_after, dead):
                row.token += 1
                row.generation = generation
                row.sent_at = now
                row.claimed_by = None
                row.lease_until = None
                row.done_at = None
                tasks.append(Task(name, row.token, generation))
    return tasks


def claim(store: Store, task: Task, now: datetime, lease: timedelta) -> bool:
    """Take the task for this process (its owner name), or False: done, stale, or claimed by
    a live worker whose lease runs."""
    store.hold_owner_lock()  # the claim names us: our death must free it
    with store.transaction() as tx:
        row = tx.session.get(DispatchRow, task.feed)
        if row is None or row.token != task.token or row.done_at is not None:
            return False
        if (
            row.claimed_by is not None
            and row.lease_until is not None
            and row.lease_until > now
            and store.owner_alive(row.claimed_by)
        ):
            return False
        row.claimed_by = store.owner
        row.lease_until = now + lease
        return True


def finish(store: Store, task: Task, now: datetime) -> None:
    """The task's poll ended (recorded, or failed and recorded as a failure)."""
    with store.transaction() as tx:
        tx.session.execute(
            update(DispatchRow)
            .where(DispatchRow.feed == task.feed, DispatchRow.token == task.token)
            .values(done_at=now, claimed_by=None, lease_until=None)
        )


def last_done(store: Store) -> datetime | None:
    """When a task was last marked done (the scheduler wakes its senders when this moves)."""
    with store.transaction() as tx:
        return tx.session.scalar(select(func.max(DispatchRow.done_at)))


def publish_config(store: Store, content: str, now: datetime) -> int:
    """Make `content` (config.toml's text) the newest generation unless it already is;
    returns its id."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    with store.transaction() as tx:
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
