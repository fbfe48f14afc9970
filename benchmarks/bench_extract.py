"""Full-text extraction quality and cost (issue 12) on the hand-made page set.

    .venv/bin/python benchmarks/bench_extract.py [--repeat 50]

For each page of `tests/article_pages.py` (news pages in de, en, ru, uk, fr with navigation,
cookie banner, related-article box, comments and footer around the article): the words of the
text `monitor.feeds.extract.extract_text` returns are compared with the words of the
hand-marked body (multisets of folded words, `monitor.rules.text.tokenize`):

    precision = |extracted ∩ body| / |extracted|     (how much of what we match is article)
    recall    = |extracted ∩ body| / |body|          (how much of the article we match)

The baseline, measured in the same run, is the page's whole text (lxml `text_content()` of
<body>): what matching without extraction would see. Cost: CPU time per page of
`extract_text` (the worker's part), best of `--repeat`, and its ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lxml.html

from monitor.feeds.extract import extract_text
from monitor.rules.text import tokenize
from tests.article_pages import PAGES

HEADERS = {"content-type": "text/html; charset=utf-8"}


def bag(text: str) -> Counter[str]:
    return Counter(t.folded for t in tokenize(text))


def whole_text(html: str) -> str:
    body = lxml.html.document_fromstring(html).find("body")
    return "" if body is None else str(body.text_content())


def extracted(html: str) -> str:
    return extract_text(html.encode(), HEADERS, "https://news.example/a")


def best_time(run: Callable[[str], str], html: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run(html)
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rows = []
    totals = {"trafilatura": [0, 0, 0], "whole page": [0, 0, 0]}  # hit, got, wanted
    for page in PAGES:
        truth = bag("\n".join(page.body))
        for name, run in (("trafilatura", extracted), ("whole page", whole_text)):
            got = bag(run(page.html))
            hit = sum((got & truth).values())
            total = totals[name]
            total[0] += hit
            total[1] += sum(got.values())
            total[2] += sum(truth.values())
            precision = hit / max(1, sum(got.values()))
            recall = hit / max(1, sum(truth.values()))
            seconds = best_time(run, page.html, args.repeat)
            rows.append((page.name, name, precision, recall, seconds))
    print(f"{'page':26} {'extractor':12} {'precision':>9} {'recall':>7} {'ms/page':>8}")
    for name, how, precision, recall, seconds in rows:
        print(f"{name:26} {how:12} {precision:9.3f} {recall:7.3f} {seconds * 1000:8.2f}")
    print()
    cost = {how: sum(r[4] for r in rows if r[1] == how) / len(PAGES) for how in totals}
    for how, (hit, got, wanted) in totals.items():
        print(
            f"{how:12} micro precision {hit / max(1, got):.3f}  recall {hit / max(1, wanted):.3f}"
            f"  mean {cost[how] * 1000:.2f} ms/page"
        )
    ratio = cost["trafilatura"] / max(cost["whole page"], 1e-9)
    print(f"extraction costs {ratio:.1f}x the whole-page text baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
