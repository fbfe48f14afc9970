"""Matching: rule text normalisation, the query language, and item -> matches.

Pure code: `Matcher(config.rules).match(title, text)` is all the pipeline needs; `explain`,
`highlight` and `snippet` serve `monitor test-rule`; `compile_rule` and the language helpers
serve `monitor check`.
"""

from monitor.errors import RuleQueryError
from monitor.rules.match import (
    CompiledRule,
    Matcher,
    MatchResult,
    compile_rule,
    explain,
    highlight,
    snippet,
)
from monitor.rules.query import Node, is_positive, parse_entry, parse_query
from monitor.rules.text import (
    STEMMED_LANGUAGES,
    Token,
    fold,
    is_language_code,
    known_language,
    normalize,
    stem,
    tokenize,
)

__all__ = [
    "STEMMED_LANGUAGES",
    "CompiledRule",
    "MatchResult",
    "Matcher",
    "Node",
    "RuleQueryError",
    "Token",
    "compile_rule",
    "explain",
    "fold",
    "highlight",
    "is_language_code",
    "is_positive",
    "known_language",
    "normalize",
    "parse_entry",
    "parse_query",
    "snippet",
    "stem",
    "tokenize",
]
