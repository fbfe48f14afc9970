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
from monitor.feeds.fastparse import read_feed
from monitor.feeds.parse import _prepare, parse_feed, parse_feed_fast

URL = "https://corpus.example.org/feed"
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "feeds-corpus"


def _best(run: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _for_reader(body: bytes) -> tuple[bytes, str | None]:
    """What parse.py hands the lxml reader (its `_prepare` step)."""
    data, fp_type, _ = _prepare(body, "")
    return data, fp_type.partition("; charset=")[2] or None


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

    def reader() -> None:
        for i in fast_docs:
            read_feed(*_prepared[i])

    _prepared = {i: _for_reader(bodies[i]) for i in fast_docs}
    # (label, function, entries, index of the baseline row on the same documents)
    runs: list[tuple[str, Callable[[], None], int, int]] = [
        ("feedparser.parse, defaults (all documents)", baseline, entries, 0),
        ("feedparser.parse, defaults (fast-path documents)", feedparser_fast_docs, fast_entries, 1),
        ("lxml reader alone: read_feed (fast-path documents)", reader, fast_entries, 1),
        ("parse_feed_fast (fast-path documents)", fast, fast_entries, 1),
        ("parse_feed(fast=False) (all documents)", feedparser_only, entries, 0),
        ("parse_feed as shipped (all documents)", shipped, entries, 0),
    ]
    # rounds interleave the runs, so that a busy machine slows them alike; best round counts
    best = [float("inf")] * len(runs)
    for _ in range(args.rounds):
        for n, (_, run, _, _) in enumerate(runs):
            best[n] = min(best[n], _best(run, 1))
    print(f"{'':52} {'total s':>8} {'ms/entry':>9} {'x faster':>9}")
    for (label, _, n, ref), seconds in zip(runs, best, strict=True):
        per = seconds / n
        ratio = (best[ref] / runs[ref][2]) / per
        print(f"{label:52} {seconds:8.2f} {per * 1e3:9.3f} {ratio:9.1f}")
    print("\nx faster: against feedparser's defaults on the same documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
