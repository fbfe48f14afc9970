"""`monitor poll` as a user runs it, with 10 rules and with 10,000 rules, in the same run.

    .venv/bin/python benchmarks/bench_rules_poll.py [--feeds 200] [--items 50] [--rules 10000]
                                                    [--runs 2] [--strict]

A loopback HTTP server (a thread here) serves `--feeds` RSS documents of `--items` news-like
items each (German, English, Russian; benchmarks/__init__.py). For each rule count, a fresh
config.toml and SQLite database are written and `monitor poll` runs as a subprocess: it
fetches every feed, parses, matches every item against every rule (in its worker processes)
and stores. The rules are the realistic never-matching ones of bench_rules.py (1-3 terms or
phrases, prefixes, NOT, NEAR, title:; de/en/ru; some transliterated or unstemmed); the small
set is the first 10 of them.

Printed: wall and CPU time (this process's children: the CLI and its workers) of each pass,
best of `--runs` (run alternately), the matches stored (0 expected), and the ratio of the
10,000-rule pass to the 10-rule pass. Target (issue 7): at most 1.5x. `--strict` exits 1 when
it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import rss_feed  # noqa: E402
from benchmarks.bench_rules import realistic_rules  # noqa: E402
from monitor.feeds.parse import parse_feed  # noqa: E402
from monitor.rules.text import tokenize  # noqa: E402
from monitor.types import RuleConfig  # noqa: E402

_PREFIX = re.compile(r"(\w+)\*")

TARGET = 1.5
EXTRA_SETTINGS: list[str] = []  # lines added to [monitor] (--setting)


class Server:
    """A loopback server answering /feed/N with the pre-built document N."""

    def __init__(self, docs: Sequence[bytes]) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                index = int(self.path.rsplit("/", 1)[-1])
                body = owner.docs[index]
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.docs = docs
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/feed/{index}"


def never_matching(count: int, seed: int, docs: Sequence[bytes]) -> tuple[RuleConfig, ...]:
    """`count` realistic rules none of whose `word*` prefixes starts a word of these feeds
    (bench_rules checks its prefixes against other generated text)."""
    vocabulary = sorted(
        {t.folded for doc in docs for item in parse_feed(doc, {}, "http://x/").items
         for t in tokenize(f"{item.title} {item.text}")}
    )  # fmt: skip

    def hits(prefix: str) -> bool:
        i = bisect_left(vocabulary, prefix)
        return i < len(vocabulary) and vocabulary[i].startswith(prefix)

    kept = [
        r
        for r in realistic_rules(int(count * 1.2) + 10, seed)
        if not any(hits(p.lower()) for p in _PREFIX.findall(r.query or ""))
    ]
    if len(kept) < count:
        raise SystemExit(f"only {len(kept)} never-matching rules generated")
    return tuple(kept[:count])


def toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a valid TOML basic string


def toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def write_config(folder: Path, server: Server, feeds: int, rules: Sequence[RuleConfig]) -> Path:
    lines = [
        "[monitor]",
        'database = "sqlite:///monitor.db"',
        *EXTRA_SETTINGS,
        "[channels]",
    ]
    for i in range(feeds):
        lines += ["[[feeds]]", f'name = "f{i}"', f"url = {toml_string(server.url(i))}"]
    for rule in rules:
        lines += ["[[rules]]", f"name = {toml_string(rule.name)}"]
        for key in ("any", "all", "none"):
            values = getattr(rule, key)
            if values:
                lines.append(f"{key} = {toml_list(values)}")
        if rule.query:
            lines.append(f"query = {toml_string(rule.query)}")
        lines.append(f"languages = {toml_list(rule.languages)}")
        if rule.transliterate:
            lines.append("transliterate = true")
        lines.append("channels = []")
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_poll(config: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of `monitor poll` on a fresh database; the matches stored."""
    database = config.parent / "monitor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"monitor poll failed ({done.returncode}):\n{done.stderr[-2000:]}")
    with sqlite3.connect(database) as db:
        matches = db.execute("SELECT count(*) FROM matches").fetchone()[0]
        items = db.execute("SELECT count(*) FROM items").fetchone()[0]
    if items == 0:
        raise SystemExit("no item stored: the feeds were not fetched")
    return wall, children_cpu() - cpu, matches


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--rules", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--strict", action="store_true")
    p.add_argument(
        "--setting", action="append", default=[], help="a [monitor] line, e.g. per_host = 8"
    )
    args = p.parse_args()
    EXTRA_SETTINGS.extend(args.setting)

    languages = ("de", "en", "ru")
    docs = [rss_feed(i, args.items, args.seed, languages=languages) for i in range(args.feeds)]
    many = never_matching(args.rules, args.seed, docs)
    few = many[:10]
    size = sum(len(d) for d in docs) / 1e6
    print(
        f"monitor poll: {args.feeds} feeds x {args.items} items ({size:.1f} MB), "
        f"{len(few)} vs {len(many)} rules; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores; best of {args.runs}"
    )
    results: dict[int, list[tuple[float, float, int]]] = {len(few): [], len(many): []}
    with Server(docs) as server, tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for rules in (few, many):
            folder = Path(tmp) / f"r{len(rules)}-{len(configs)}"
            folder.mkdir()
            configs[len(rules)] = write_config(folder, server, args.feeds, rules)
        for _ in range(args.runs):
            for count, config in configs.items():
                results[count].append(one_poll(config))
    best = {count: (min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2])
            for count, runs in results.items()}  # fmt: skip
    for count, (wall, cpu, matches) in best.items():
        print(f"  {count:>6} rules: {wall:6.2f} s wall, {cpu:6.2f} s CPU, {matches} matches")
    (w_few, c_few, _), (w_many, c_many, _) = best[len(few)], best[len(many)]
    ratio = w_many / w_few
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"{verdict}  {len(many)} rules cost {ratio:.2f}x the wall time of {len(few)} "
        f"({c_many / c_few:.2f}x the CPU); target <= {TARGET}x"
    )
    return 1 if args.strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
