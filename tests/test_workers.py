"""WorkerPool: parsing in worker processes, and a parse that overruns its deadline is stopped."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import pytest

from monitor.errors import FeedError
from monitor.feeds.parse import parse_feed
from monitor.workers import WorkerPool

RSS = (Path(__file__).parent / "fixtures" / "feeds" / "rss20.xml").read_bytes()


def big_feed(items: int) -> bytes:
    entry = (
        "<item><guid>g{n}</guid><title>Meldung {n}</title>"
        "<description>Ein längerer Text über die Lage, Nummer {n}.</description></item>"
    )
    body = "".join(entry.format(n=n) for n in range(items))
    return f'<rss version="2.0"><channel><title>big</title>{body}</channel></rss>'.encode()


def test_results_equal_parsing_in_process() -> None:
    async def run() -> None:
        with WorkerPool(workers=2) as pool:
            results = await asyncio.gather(*(pool.parse(RSS, {}, "http://x/") for _ in range(8)))
        assert all(r == parse_feed(RSS, {}, "http://x/") for r in results)

    asyncio.run(run())


def test_a_parse_over_its_deadline_is_stopped_and_the_pool_recovers() -> None:
    async def run() -> None:
        with WorkerPool(workers=1, deadline=60) as pool:
            await pool.parse(RSS, {}, "http://x/")  # workers are up (start-up is not timed)
            pool.deadline = 0.05  # far below the parse (~0.4 s on the fast path)
            assert pool._executor is not None
            workers = list(pool._executor._processes.values())
            with pytest.raises(FeedError, match="longer than"):
                await pool.parse(big_feed(20_000), {}, "http://x/")  # about 2 s of parsing
            # stopped, not left to finish: the worker that ran it was killed
            for process in workers:
                process.join(timeout=30)
                assert not process.is_alive()
                # killed: -SIGKILL, or 255 when the forkserver reaped it before it could report
                assert process.exitcode in (-signal.SIGKILL, 255)
            again = await pool.parse(RSS, {}, "http://x/")
            assert again.items

    asyncio.run(run())


def test_a_broken_document_is_a_feed_error_not_a_crash() -> None:
    async def run() -> None:
        with WorkerPool(workers=1) as pool:
            with pytest.raises(FeedError, match="not a feed"):
                await pool.parse(b"<html><body>Login</body></html>", {}, "http://x/")
            assert (await pool.parse(RSS, {}, "http://x/")).items

    asyncio.run(run())


def test_matching_in_a_worker_equals_matching_here() -> None:
    from monitor.rules.match import Matcher
    from monitor.types import RuleConfig

    rules = (RuleConfig(name="nk", any=("Kursk",)), RuleConfig(name="none", any=("Paris",)))
    items = parse_feed(big_feed(50), {}, "http://x/").items
    items = tuple(i for i in items) + parse_feed(RSS, {}, "http://x/").items

    async def run() -> list[tuple[object, list[object]]]:
        with WorkerPool(workers=1) as pool:
            assert await pool.match("r1", rules, "f", []) == []
            return list(await pool.match("r1", rules, "f", items))

    expected = [(i.key, Matcher(rules).match(i.title, i.text)) for i in items]
    assert [(item.key, found) for item, found in asyncio.run(run())] == expected


PICKLED: list[str] = []


class CountedRules(tuple):  # type: ignore[type-arg]
    """A rule tuple that notes each time it is pickled (sent to a worker)."""

    def __reduce__(self) -> tuple[object, ...]:
        PICKLED.append("rules")
        return (tuple, (tuple(self),))


def test_the_rules_travel_to_a_worker_once_per_rule_set() -> None:
    from monitor.types import RuleConfig

    items = parse_feed(RSS, {}, "http://x/").items
    first = CountedRules((RuleConfig(name="nk", any=("Kursk",)),))
    second = CountedRules((RuleConfig(name="other", any=("Paris",)),))
    PICKLED.clear()

    async def run() -> list[list[str]]:
        with WorkerPool(workers=1) as pool:
            seen = []
            for _ in range(5):  # five polls with the same rule set
                found = await pool.match("gen-1", first, "f", items)
                seen.append([m.rule for _, ms in found for m in ms])
            assert PICKLED == ["rules"]  # once, for the first poll with "gen-1"
            found = await pool.match("gen-2", second, "f", items)  # a reload
            seen.append([m.rule for _, ms in found for m in ms])
            assert PICKLED == ["rules", "rules"]
            return seen

    seen = asyncio.run(run())
    assert all(rules and set(rules) == {"nk"} for rules in seen[:5])
    assert "nk" not in seen[5]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'<rss version="2.0"><channel><item><title>x &#99999999; y</title></item>'
            b"</channel></rss>",
            "parsing failed: ValueError: chr() arg not in range(0x110000)",
        ),
        (
            b'<?xml version="1.0" encoding="utf\xff-8"?>'
            b'<rss version="2.0"><channel></channel></rss>',
            "parsing failed: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff",
        ),
    ],
)
def test_any_parser_crash_is_that_feeds_error(body: bytes, error: str) -> None:
    async def run() -> None:
        with WorkerPool(workers=1) as pool:
            # a FeedError is this feed's problem; anything else would end the whole pass
            with pytest.raises(FeedError) as raised:
                await pool.parse(body, {}, "http://x/")
            assert str(raised.value).startswith(error)
            assert (await pool.parse(RSS, {}, "http://x/")).items

    asyncio.run(run())


def test_feeds_queued_behind_a_slow_one_do_not_inherit_its_deadline() -> None:
    async def run() -> None:
        with WorkerPool(workers=1, deadline=1.0) as pool:
            await pool.parse(RSS, {}, "http://x/")
            # 150,000 items: several seconds even on the lxml fast path (20,000 took 0.4 s)
            slow = asyncio.ensure_future(pool.parse(big_feed(150_000), {}, "http://x/"))
            quick = [asyncio.ensure_future(pool.parse(RSS, {}, "http://x/")) for _ in range(3)]
            with pytest.raises(FeedError, match="longer than"):
                await slow
            done = [await q for q in quick]
            assert all(parsed.items for parsed in done)

    asyncio.run(run())


def test_close_waits_until_the_pool_has_wound_down() -> None:
    """After close() no executor thread is left to race the interpreter's exit.

    Python 3.11's exit hook writes to the pool's wake-up pipe while the manager thread of a
    pool whose workers were killed may be closing it: `monitor poll` then printed a traceback
    ("Exception ignored in: <module 'threading'> ... OSError: [Errno 9] Bad file descriptor")
    about once in a hundred runs. Fixed in CPython by gh-125451 (3.12.8, 3.13.1), not in 3.11.
    """

    def managers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if type(t).__name__ == "_ExecutorManagerThread"]

    async def run() -> None:
        with WorkerPool(workers=2) as pool:
            await asyncio.gather(*(pool.parse(RSS, {}, "http://x/") for _ in range(4)))
            assert managers()

    asyncio.run(run())
    assert managers() == []
