"""One config generation as the pipeline reads it: lookups built once per config.

A reload (SIGHUP) builds a new `Snapshot` and the app swaps it in atomically; a poll reads the
snapshot once at its start, so it never mixes two configs. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.types import AlertTiming, ChannelConfig, Config, FeedConfig, RuleConfig


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int  # 1 at start, +1 per reload
    config: Config
    feeds: Mapping[str, FeedConfig]
    rules: tuple[RuleConfig, ...]
    routing: Mapping[str, tuple[str, ...]]  # rule name -> the channels it alerts (in order)
    timings: Mapping[str, AlertTiming]  # rule name -> its digest, quiet hours and cap
    channels: Mapping[str, ChannelConfig]
    # Identifies the rule set: worker processes keep one compiled matcher per id, so a poll
    # never ships the rules again while the id holds.
    matcher_id: str

    @classmethod
    def of(cls, config: Config, generation: int) -> Snapshot:
        digest = hashlib.sha256(repr(config.rules).encode()).hexdigest()[:16]
        return cls(
            generation=generation,
            config=config,
            feeds={f.name: f for f in config.feeds},
            rules=config.rules,
            routing={r.name: config.rule_channels(r) for r in config.rules},
            timings={r.name: r.timing for r in config.rules},
            channels={c.name: c for c in config.channels},
            matcher_id=digest,
        )

    @property
    def enabled_feeds(self) -> tuple[FeedConfig, ...]:
        return tuple(f for f in self.config.feeds if f.enabled)
