"""Extraction quality on the hand-made page set (tests/article_pages.py), served from a
loopback server and read as the poll reads them: the word placed in the article body is found,
the words placed only in navigation, cookie banner, related-article box and comments are not.
Precision and recall over the whole set: benchmarks/bench_extract.py."""

from __future__ import annotations

import asyncio

import pytest

from monitor.feeds.article import Page, RobotsCache, read_page
from monitor.feeds.extract import extract_text
from monitor.feeds.fetch import Fetcher
from monitor.rules.text import tokenize
from tests.article_pages import PAGES, ArticlePage
from tests.feedserver import FeedServer, Static


def words(text: str) -> set[str]:
    return {t.folded for t in tokenize(text)}


@pytest.mark.parametrize("case", PAGES, ids=[p.name for p in PAGES])
def test_the_body_word_is_found_and_the_boilerplate_words_are_not(case: ArticlePage) -> None:
    with FeedServer() as srv:
        srv.routes[f"/{case.name}"] = Static(case.html.encode(), "text/html; charset=utf-8")

        async def main() -> Page | str:
            async with Fetcher(timeout=5) as fetcher:
                url = srv.url(f"/{case.name}")
                return await read_page(fetcher, RobotsCache(), url, "t/1", private_ok=True)

        page = asyncio.run(main())
    assert isinstance(page, Page), page
    text = extract_text(page.body, page.headers, page.url)
    found = words(text)
    assert words(case.body_word) <= found
    for decoy in case.decoys:
        assert not words(decoy) & found, decoy
