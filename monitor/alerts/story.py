"""One alert per story: near-duplicate items across feeds, found by MinHash (pure).

`story_of(title, text)` gives an item's `Story`: a MinHash signature of its word 3-shingles
(title and text, case-folded words) and its LSH buckets. Two items whose signatures agree in a
fraction >= `[monitor] story_similarity` of their positions (an estimate of the Jaccard
similarity of their shingle sets) are one story. The store finds candidates through the
buckets (an indexed table: 16 bands of 4 positions, so an item costs 16 index probes whatever
the number of items), checks their signatures, and links the copy to the story's first item.

The signature's 64 positions are 64 independent hash functions: each shingle is hashed once
with BLAKE2b to 128 bytes, read as 64 unsigned 16-bit values, and each position keeps its
minimum over the shingles. 16-bit values collide once in 65,536: a negligible bias next to
the ~1/8 standard error of a 64-position estimate. Items with fewer than MIN_SHINGLES
shingles (a title alone) have no signature: too short to tell a story from a headline.

With 16 bands of 4, two items of Jaccard 0.5 share a bucket with probability 0.64, of 0.6 with
0.88, of 0.7 with 0.99; different stories on one topic (Jaccard of 3-shingles under 0.1)
almost never do, and when they do, the signature check rejects them.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import timedelta

SHINGLE = 3  # words per shingle
POSITIONS = 64
BANDS = 16
ROWS = POSITIONS // BANDS
MIN_SHINGLES = 8
_WORD = re.compile(r"\w+")
_PERSON = b"nm-story"


@dataclass(frozen=True, slots=True)
class Story:
    """An item's fingerprint and how the store looks for its story."""

    signature: tuple[int, ...]  # POSITIONS values
    buckets: tuple[int, ...]  # BANDS signed 64-bit bucket ids
    threshold: float  # [monitor] story_similarity
    window: timedelta  # [monitor] story_window

    @property
    def text(self) -> str:
        return signature_text(self.signature)


def shingles(text: str) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) < SHINGLE:
        return set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(parts: set[bytes]) -> tuple[int, ...]:
    rows = [
        struct.unpack(
            f"<{POSITIONS}H",
            hashlib.blake2b(s, digest_size=64, person=_PERSON).digest()
            + hashlib.blake2b(s, digest_size=64, person=_PERSON, salt=b"2").digest(),
        )
        for s in parts
    ]
    return tuple(map(min, zip(*rows, strict=True)))


def buckets(sig: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for band in range(BANDS):
        values = struct.pack(f"<B{ROWS}H", band, *sig[band * ROWS : (band + 1) * ROWS])
        out.append(
            int.from_bytes(hashlib.blake2b(values, digest_size=8).digest(), "big", signed=True)
        )
    return tuple(out)


def fingerprint(title: str, text: str) -> tuple[int, ...]:
    """An item's MinHash signature; () when its text is too short to compare. About 1 ms
    for a long item: computed in the worker processes (worker_tasks), for matched items only."""
    parts = shingles(f"{title}\n{text}")
    if len(parts) < MIN_SHINGLES:
        return ()
    return signature(parts)


def story_of(
    title: str,
    text: str,
    threshold: float = 0.5,
    window: timedelta = timedelta(hours=48),
    sig: tuple[int, ...] | None = None,
) -> Story | None:
    """The item's Story (from `sig` when it was computed already), or None when its text is
    too short to compare."""
    if sig is None:
        sig = fingerprint(title, text)
    if not sig:
        return None
    return Story(sig, buckets(sig), threshold, window)


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The estimated Jaccard similarity of two signatures (0 when they differ in length)."""
    if len(a) != len(b) or not a:
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def signature_text(sig: tuple[int, ...]) -> str:
    return "".join(f"{v:04x}" for v in sig)


def signature_from_text(text: str | None) -> tuple[int, ...]:
    if not text or len(text) != 4 * POSITIONS:
        return ()
    try:
        return tuple(int(text[i : i + 4], 16) for i in range(0, len(text), 4))
    except ValueError:
        return ()
