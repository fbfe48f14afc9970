"""The compiled rule matcher alone at 10,000 rules, against the bare analysis and the simple
evaluator, measured in the same run.

    .venv/bin/python benchmarks/bench_rules.py [--rules 10000] [--items 1500]
                                               [--simple-items 20] [--seed 3] [--strict]

Rules: `--rules` realistic watch rules that never match the generated text: 1-3 terms or
phrases (invented names, some phrases with a common word of the text), `word*` prefixes,
`NOT` / `none` with words that do occur, `NEAR/n`, `title:`; languages de/en/ru in varied sets,
some with `transliterate = true` or `languages = []`.
Items: generated news-like articles (benchmarks/__init__.py), German, English and Russian in
rotation, 400-2,500 characters each.

Printed, all from this run:
* compile time and the memory allocated while compiling (tracemalloc peak), and the index
  shape (indexed rules, always-candidates, keys);
* items/s of `CompiledRules.match` and of the bare analysis: normalising, splitting and stemming
  the same items in the same languages (what any matcher must do), and their ratio
  (target >= 0.5);
* items/s of the simple evaluator (`Matcher`, every rule on every item), timed on
  `--simple-items` items and taken per item (it is linear in the items), and the ratio
  (target >= 100);
* whether both agree on those items.
Targets: compile < 2 s, < 200 MB; ratios as above. `--strict` exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time
import tracemalloc
from bisect import bisect_left
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import Article, articles, invented_word
from monitor.rules.compile import compile_rules
from monitor.rules.match import Matcher
from monitor.rules.text import stem_with, stemmer_name, tokenize
from monitor.types import RuleConfig

WARMUP = 200
COMMON = {
    "de": ["Regierung", "Ministerium", "Grenze", "Bericht", "Sprecher"],
    "en": ["government", "ministry", "border", "report", "spokesman"],
    "ru": ["правительство", "министерство", "граница", "доклад", "заявил"],
}
LANGUAGE_SETS = [("de", "en"), ("de", "en", "ru"), ("ru",), ("en",), ("de",), ()]


def realistic_rules(count: int, seed: int) -> tuple[RuleConfig, ...]:
    rng = random.Random(seed)
    rules: list[RuleConfig] = []
    # Words of the generated text, so that no prefix of an invented name is a real word's.
    vocabulary = sorted({t.folded for a in articles(600, seed=seed + 1) for t in tokenize(a.text)})

    def name() -> str:
        return invented_word(rng)

    def prefix() -> str:
        while True:
            p = name()[: rng.randint(4, 6)].lower()
            i = bisect_left(vocabulary, p)
            if i == len(vocabulary) or not vocabulary[i].startswith(p):
                return p + "*"

    for i in range(count):
        langs = rng.choice(LANGUAGE_SETS)
        common = COMMON[rng.choice(langs or ("de",))]
        kind = i % 8
        translit = rng.random() < 0.1 and "ru" in langs
        if kind == 0:
            any_ = tuple(name() for _ in range(rng.randint(1, 3)))
            rule = RuleConfig(f"r{i}", any=any_)
        elif kind == 1:
            any_ = (f"{rng.choice(common)} {name()}", name())
            rule = RuleConfig(f"r{i}", any=any_, none=(rng.choice(common),))
        elif kind == 2:
            rule = RuleConfig(f"r{i}", query=prefix())
        elif kind == 3:
            near = f"{rng.choice(common)} NEAR/{rng.randint(3, 8)} {name()}"
            rule = RuleConfig(f"r{i}", query=near)
        elif kind == 4:
            rule = RuleConfig(f"r{i}", query=f'title:({name()} OR "{name()} {name()}")')
        elif kind == 5:
            rule = RuleConfig(f"r{i}", query=f"{name()} AND NOT {rng.choice(common)}")
        elif kind == 6:
            rule = RuleConfig(f"r{i}", any=(name(),), all=(rng.choice(common),))
        else:
            rule = RuleConfig(f"r{i}", query=f'"{name()} {name()}" OR {prefix()}')
        rules.append(
            RuleConfig(
                rule.name,
                any=rule.any,
                all=rule.all,
                none=rule.none,
                query=rule.query,
                languages=langs,
                transliterate=translit,
            )
        )
    return tuple(rules)


def bare_analysis(items: list[Article], algorithms: tuple[str, ...]) -> int:
    """Normalise, split and stem (each distinct word of a field once per algorithm)."""
    n = 0
    for a in items:
        for text in (a.title, a.text):
            tokens = tokenize(text)
            for algorithm in algorithms:
                stems: dict[str, str] = {}
                for tok in tokens:
                    if tok.word not in stems:
                        stems[tok.word] = stem_with(tok.word, algorithm)
                n += len(stems)
    return n


def rate(run: object, items: list[Article]) -> float:
    start = time.perf_counter()
    run(items)  # type: ignore[operator]
    return len(items) / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rules", type=int, default=10_000)
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--simple-items", type=int, default=20)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--strict", action="store_true")
    args = p.parse_args()

    rules = realistic_rules(args.rules, args.seed)
    items = articles(args.items + WARMUP, seed=args.seed)
    warm, timed = items[:WARMUP], items[WARMUP:]
    print(f"Python {platform.python_version()}, {args.rules} rules, {len(timed)} items")

    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    compiled = compile_rules(rules, generation=1)
    compile_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    st = compiled.stats
    print(
        f"compile: {compile_s:.2f} s, peak {peak / 2**20:.0f} MB allocated (tracemalloc; "
        f"compile time under tracemalloc is pessimistic)"
    )
    start = time.perf_counter()
    compile_rules(rules)
    compile_plain = time.perf_counter() - start
    print(f"compile without tracemalloc: {compile_plain:.2f} s")
    print(
        f"index: {st.indexed} rules indexed, {st.always} always-candidates, {st.keys} keys, "
        f"prefix lengths {st.prefix_lengths}, algorithms {compiled.algorithms}"
    )
    algorithms = tuple(a for a in (stemmer_name(c) for c in ("de", "en", "ru")) if a)

    def run_compiled(batch: list[Article]) -> None:
        for a in batch:
            compiled.match(a.title, a.text)

    simple = Matcher(rules)

    def run_simple(batch: list[Article]) -> None:
        for a in batch:
            simple.match(a.title, a.text)

    run_compiled(warm)
    bare_analysis(warm, algorithms)
    run_simple(warm[:5])
    analysis_rate = rate(lambda b: bare_analysis(b, algorithms), timed)
    compiled_rate = rate(run_compiled, timed)
    analysis_rate = max(analysis_rate, rate(lambda b: bare_analysis(b, algorithms), timed))
    compiled_rate = max(compiled_rate, rate(run_compiled, timed))
    sample = timed[: args.simple_items]
    simple_rate = rate(run_simple, sample)
    agree = all(
        compiled.match(a.title, a.text) == simple.match(a.title, a.text) for a in sample[:5]
    )
    matched = sum(len(compiled.match(a.title, a.text)) for a in timed[:300])

    vs_analysis = compiled_rate / analysis_rate
    vs_simple = compiled_rate / simple_rate
    print(f"bare analysis (tokenize + stem de/en/ru): {analysis_rate:8.0f} items/s")
    print(f"compiled matcher:                         {compiled_rate:8.0f} items/s")
    print(f"simple evaluator ({len(sample)} items):            {simple_rate:8.1f} items/s")
    print(f"matches in 300 items: {matched}; compiled == simple on 5 items: {agree}")
    checks = [
        ("compiled / bare analysis", vs_analysis, vs_analysis >= 0.5, ">= 0.5"),
        ("compiled / simple", vs_simple, vs_simple >= 100, ">= 100"),
        ("compile seconds", compile_plain, compile_plain < 2, "< 2"),
        ("compile MB", peak / 2**20, peak < 200 * 2**20, "< 200"),
    ]
    ok = agree
    for label, value, passed, target in checks:
        print(f"{label:26s} {value:10.2f}  target {target:6s} {'PASS' if passed else 'FAIL'}")
        ok = ok and passed
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
