"""Feed parsing cost per entry over the real-world corpus, three ways in one run.

    .venv/bin/python benchmarks/bench_parse.py [--corpus ../shared/feeds-corpus] [--rounds 3]

- feedparser with its defaults (`feedparser.parse(BytesIO(body))`: HTML sanitising and
  relative-URI resolution on), the baseline most scripts use;
- the fast path alone (`parse_feed_fast`: lxml reader plus our normalisation), over the
  documents it accepts;
- `parse_feed` as shipped (fast path, feedparser fallback, JSON Feed), over every document.

Every document is parsed once per round; the best round counts. Entries are those of
feedparser's count (the same denominator for every line; JSON Feed, which feedparser cannot
read, counts the items `parse_feed` finds). Prints ms per entry and ratios against the
feedparser baseline; there is no target, the figures go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import feedparser

from monitor.errors import FeedError
from monitor.feeds.parse import parse_feed, parse_feed_fast

URL = "https://corpus.example.org/feed"
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "feeds-corpus"


def _best(run: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.md")
    if not files:
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    bodies = [p.read_bytes() for p in files]
    counts: list[int] = []
    for body in bodies:
        n = len(feedparser.parse(io.BytesIO(body)).entries)
        if n == 0:
            try:
                n = len(parse_feed(body, {}, URL).items)
            except FeedError:
                n = 0
        counts.append(n)
    fast_docs = [i for i, b in enumerate(bodies) if parse_feed_fast(b, {}, URL) is not None]
    entries = sum(counts)
    fast_entries = sum(counts[i] for i in fast_docs)

    def baseline() -> None:
        for body in bodies:
            feedparser.parse(io.BytesIO(body))

    def feedparser_fast_docs() -> None:
        for i in fast_docs:
            feedparser.parse(io.BytesIO(bodies[i]))

    def fast() -> None:
        for i in fast_docs:
            parse_feed_fast(bodies[i], {}, URL)

    def shipped() -> None:
        for body in bodies:
            with contextlib.suppress(FeedError):
                parse_feed(body, {}, URL)

    def feedparser_only() -> None:
        for body in bodies:
            with contextlib.suppress(FeedError):
                parse_feed(body, {}, URL, fast=False)

    size = sum(map(len, bodies)) / 1e6
    print(f"python {platform.python_version()}, feedparser {feedparser.__version__}")
    print(f"corpus: {len(bodies)} documents, {size:.1f} MB, {entries} entries")
    print(f"fast path takes {len(fast_docs)} documents ({fast_entries} entries)\n")
    rows: list[tuple[str, float, int]] = []
    base = _best(baseline, args.rounds)
    rows.append(("feedparser.parse, defaults (all documents)", base, entries))
    rows.append(
        (
            "feedparser.parse, defaults (fast-path documents)",
            _best(feedparser_fast_docs, args.rounds),
            fast_entries,
        )
    )
    rows.append(("parse_feed_fast (fast-path documents)", _best(fast, args.rounds), fast_entries))
    rows.append(
        ("parse_feed(fast=False) (all documents)", _best(feedparser_only, args.rounds), entries)
    )
    rows.append(("parse_feed as shipped (all documents)", _best(shipped, args.rounds), entries))
    base_per = base / entries
    print(f"{'':50} {'total s':>8} {'ms/entry':>9} {'x faster':>9}")
    for label, seconds, n in rows:
        per = seconds / n
        print(f"{label:50} {seconds:8.2f} {per * 1e3:9.3f} {base_per / per:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
