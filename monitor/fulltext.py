"""Full-text feeds (issue 12): each new item's article, read inside its feed's poll.

    items (new, unseen) ──▶ read_articles ──▶ items with `article` or `article_error`
                             per distinct link, concurrently:
                               robots.txt (RobotsCache) -> fetch (the feed Fetcher)
                               -> main text (WorkerPool.extract, trafilatura, in a worker)
                             at most `full_text_wait`, then the rest are given up

The poll waits for its articles before matching, so an item is matched, stored and alerted
exactly once, with its article or (`article_error` says why not) on its feed text alone. Nothing
is written while the articles load: the poll holds no transaction and the event loop is free
(fetches are awaited, extraction runs in a worker process). A slow article site delays only
the items of the feeds whose articles it serves, by `full_text_wait` at most; other feeds' polls
run beside it. An item is stored with the poll that read it, so its article is fetched once:
a later poll sees the item as seen and fetches nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from monitor.app import App
from monitor.errors import FeedError
from monitor.feeds.article import read_page
from monitor.feeds.fetch import Fetcher, is_private_target, mask_credentials
from monitor.textutil import one_line
from monitor.types import FeedConfig, Item, Settings

log = logging.getLogger("monitor.fulltext")

_REASON_MAX = 200


async def read_articles(
    app: App,
    feed: FeedConfig,
    items: Sequence[Item],
    fetcher: Fetcher,
    settings: Settings,
) -> list[Item]:
    """`items`, each with its article's text (`article`) or why it was not read
    (`article_error`). Never raises for a page's sake."""
    if not items:
        return []
    links = list(dict.fromkeys(i.link for i in items if i.link))
    tasks = {link: asyncio.create_task(_read(app, feed, link, fetcher, settings)) for link in links}
    wait = settings.full_text_wait.total_seconds()
    try:
        if tasks:
            await asyncio.wait(tasks.values(), timeout=wait)
    finally:  # also when the poll itself is cancelled (a reload, a stop): no orphan fetches
        late = [task for task in tasks.values() if not task.done()]
        for running in late:
            running.cancel()
        if late:
            await asyncio.wait(late)
    out = []
    for item in items:
        task = tasks.get(item.link) if item.link else None
        if task is None:
            out.append(replace(item, article_error="the item has no link"))
        elif task.cancelled():
            shown = _duration(wait)
            out.append(replace(item, article_error=f"not read within full_text_wait ({shown})"))
        else:
            text, error = task.result()
            out.append(replace(item, article=text, article_error=error))
    read = sum(1 for i in out if i.article)
    if read < len(out):
        log.info(
            "feed %s: %d of %d articles read; the others are matched on the feed text",
            feed.name,
            read,
            len(out),
            extra={"event": "full_text", "feed": feed.name, "read": read, "items": len(out)},
        )
    return out


async def _read(
    app: App, feed: FeedConfig, link: str, fetcher: Fetcher, settings: Settings
) -> tuple[str | None, str | None]:
    """(text, None) or (None, why not)."""
    try:
        page = await read_page(
            fetcher,
            app.robots,
            link,
            settings.user_agent,
            per_host=feed.per_host,
            private_ok=is_private_target(feed.url, fetcher.address_kind),
        )
        if isinstance(page, str):
            return None, _reason(page, link)
        try:
            text = await app.executor.extract(page.body, page.headers, page.url)
        except FeedError as exc:
            return None, _reason(str(exc), link)
        return text, None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug must cost one article, never the poll
        log.exception("internal error while reading an article of feed %s", feed.name)
        return None, _reason(f"internal error: {exc!r}", link)


def _reason(text: str, link: str) -> str:
    return one_line(mask_credentials(text, link), _REASON_MAX)


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
