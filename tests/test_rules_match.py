"""Matching rules against items: one case per sentence of the spec's "Matching" section."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import QueryError
from monitor.rules import (
    Matcher,
    RuleQueryError,
    compile_rule,
    explain,
    highlight,
    snippet,
)
from monitor.types import Match, RuleConfig

DE_EN_RU = ("de", "en", "ru")


def rule(**kwargs: Any) -> RuleConfig:
    kwargs.setdefault("name", "r")
    kwargs.setdefault("languages", DE_EN_RU)
    for key in ("any", "all", "none", "languages"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    return RuleConfig(**kwargs)


def terms(r: RuleConfig, title: str, text: str) -> tuple[str, ...] | None:
    result = explain(r, title, text)
    return None if result is None else result.terms


# --- one case per sentence of the spec -----------------------------------------------------


@pytest.mark.parametrize(
    ("r", "title", "text", "expected"),
    [
        # Fields searched: title and text
        pytest.param(rule(any=["Kursk"]), "Angriff bei Kursk", "Keine Details.", ("Kursk",),
                     id="title-searched"),
        pytest.param(rule(any=["Kursk"]), "Lage", "Angriff bei Kursk.", ("Kursk",),
                     id="body-searched"),
        # cut into words at every non-letter/digit: Kursk-Region holds kursk
        pytest.param(rule(any=["Kursk"]), "", "Gefechte in der Kursk-Region", ("Kursk",),
                     id="split-hyphen"),
        pytest.param(rule(any=["Kursk-Region"]), "", "die Kursk Region", ("Kursk Region",),
                     id="rule-term-split-too"),
        pytest.param(rule(any=["KURSK"]), "", "ＫＵＲＳＫ (Vollbreite)", ("ＫＵＲＳＫ",),
                     id="nfkc-casefold"),
        # folded forms: ß = ss, diacritics removed (no stemmer needed: languages=())
        pytest.param(rule(any=["Großbritannien"], languages=()), "",
                     "Grossbritannien entsendet Diplomaten.", ("Grossbritannien",), id="ß=ss"),
        pytest.param(rule(any=["Grossbritannien"], languages=()), "",
                     "Großbritannien entsendet Diplomaten.", ("Großbritannien",), id="ss=ß"),
        pytest.param(rule(any=["Gespräche"], languages=()), "", "Die Gesprache in Genf.",
                     ("Gesprache",), id="ä=a"),
        pytest.param(rule(any=["Gesprache"], languages=()), "", "Die Gespräche in Genf.",
                     ("Gespräche",), id="a=ä"),
        pytest.param(rule(any=["Gespräche"], languages=()), "", "Die Gesprüche in Genf.",
                     None, id="ä!=ü"),
        # Snowball stems in one of the rule's languages
        pytest.param(rule(any=["nordkoreanische Truppen"], languages=["de"]), "",
                     "Einheiten nordkoreanischer Truppen rücken vor.",
                     ("nordkoreanischer Truppen",), id="de-stem-phrase"),
        pytest.param(rule(any=["nordkoreanische Truppen"], languages=["uk"]), "",
                     "Einheiten nordkoreanischer Truppen rücken vor.", None,
                     id="de-phrase-unstemmed"),
        pytest.param(rule(any=["Kursk"], languages=["de"]), "",
                     "Die Kursker Gebietsverwaltung schweigt.", ("Kursker",), id="Kursk~Kursker"),
        pytest.param(rule(any=["Kursker"], languages=["de"]), "", "Lage in Kursk.", ("Kursk",),
                     id="Kursker~Kursk"),
        pytest.param(rule(any=["Курск"], languages=["ru"]), "",
                     "Губернатор Курской области сообщил об обстреле.", ("Курской",),
                     id="ru-Курск~Курской"),
        pytest.param(rule(any=["Курск"], languages=["de", "en"]), "",
                     "Губернатор Курской области сообщил об обстреле.", None,
                     id="ru-needs-ru-stemmer"),
        pytest.param(rule(any=["North Korean troops"], languages=["en"]), "",
                     "A North Korean troop convoy was seen.", ("North Korean troop",),
                     id="en-stem"),
        pytest.param(rule(any=["North Korean troops"], languages=["en"]), "",
                     "North Korean soldiers were seen.", None, id="en-other-word"),
        pytest.param(rule(any=["Truppen"], languages=["de"]), "", "Eine Truppe zieht ab.",
                     ("Truppe",), id="de-Truppen~Truppe"),
        # whole words only: Kursk never matches Kurs, Kurse, Kursziel, and the other way round
        pytest.param(rule(any=["Kursk"]), "", "Der Kurs des Rubels fällt.", None, id="¬Kurs"),
        pytest.param(rule(any=["Kursk"]), "", "Die Kurse an der Börse fallen.", None,
                     id="¬Kurse"),
        pytest.param(rule(any=["Kursk"]), "", "Das Kursziel der Analysten steigt.", None,
                     id="¬Kursziel"),
        pytest.param(rule(any=["Kursk"]), "", "Wechselkurse und Kursen.", None, id="¬Kursen"),
        pytest.param(rule(any=["Курск"]), "", "Курсы валют и курсом рубля.", None,
                     id="¬Курсы"),
        pytest.param(rule(any=["Kurs"]), "", "Gefechte bei Kursk.", None, id="Kurs¬Kursk"),
        pytest.param(rule(any=["Kurse"]), "", "Gefechte bei Kursk.", None, id="Kurse¬Kursk"),
        pytest.param(rule(any=["Kursziel"]), "", "Gefechte bei Kursk.", None,
                     id="Kursziel¬Kursk"),
        # languages without a Snowball stemmer match unstemmed
        pytest.param(rule(any=["Kursk"], languages=["zh"]), "", "Die Kursker Behörden.", None,
                     id="no-stemmer-no-stem"),
        pytest.param(rule(any=["Курськ"], languages=["uk"]), "", "Бої під Курськом.", None,
                     id="uk-unstemmed"),
        pytest.param(rule(any=["Курськ"], languages=["uk"]), "", "Бої біля Курськ.",
                     ("Курськ",), id="uk-exact"),
        # a phrase matches its words consecutively
        pytest.param(rule(any=["nordkoreanische Truppen"]), "",
                     "nordkoreanische und russische Truppen", None, id="phrase-split"),
        pytest.param(rule(any=["nordkoreanische Truppen"]), "",
                     "Truppen, nordkoreanische Offiziere", None, id="phrase-order"),
        pytest.param(rule(any=["nordkoreanische Truppen"]), "Kampf gegen nordkoreanische",
                     "Truppen rücken vor.", None, id="phrase-not-across-title-body"),
        pytest.param(rule(query='"Курской области"'), "", "в Курской области", ("Курской области",),
                     id="ru-quoted-phrase"),
        # word* matches every word that starts with word (normalised, not stemmed)
        pytest.param(rule(any=["nordkorea*"]), "", "Nordkoreas Armee.", ("Nordkoreas",),
                     id="prefix"),
        pytest.param(rule(any=["Gespräch*"]), "", "Eine Gesprachsrunde.", ("Gesprachsrunde",),
                     id="prefix-folded"),
        pytest.param(rule(any=["Truppen*"]), "", "Eine Truppe zieht ab.", None,
                     id="prefix-not-stemmed"),
        pytest.param(rule(any=["Kursk*"]), "", "Der Kurs steigt.", None, id="prefix-longer"),
        pytest.param(rule(any=["Курск*"]), "", "в Курской области", ("Курской",),
                     id="prefix-ru"),
        pytest.param(rule(any=["nordkorea* Truppen"]), "", "nordkoreanischer Truppen",
                     ("nordkoreanischer Truppen",), id="prefix-in-phrase"),
        # any / all / none
        pytest.param(rule(any=["Belgorod", "Kursk"]), "", "Lage in Kursk.", ("Kursk",),
                     id="any-one"),
        pytest.param(rule(any=["Belgorod", "Charkiw"]), "", "Lage in Kursk.", None,
                     id="any-none-present"),
        pytest.param(rule(all=["Kursk", "Truppen"]), "", "Lage in Kursk.", None,
                     id="all-missing-one"),
        pytest.param(rule(all=["Kursk", "Truppen"]), "Truppen", "Lage in Kursk.",
                     ("Truppen", "Kursk"), id="all-present"),
        pytest.param(rule(any=["Kursk"], none=["Fußball"]), "", "Fussball in Kursk.", None,
                     id="none-excludes-folded"),
        pytest.param(rule(any=["Kursk"], none=["Fußball"]), "", "Kursk: Stand des Fußballs.",
                     None, id="none-excludes-stemmed"),
        pytest.param(rule(any=["Kursk"], none=["Fußball"]), "Fußball", "Lage in Kursk.", None,
                     id="none-excludes-title"),
        pytest.param(rule(any=["Kursk"], none=["Fußball"]), "", "Fußballspiel in Kursk.",
                     ("Kursk",), id="none-whole-words"),
        pytest.param(rule(any=["Kursk"], none=["Fußball"], query="Truppen"), "",
                     "Truppen bei Kursk.", ("Truppen", "Kursk"), id="lists-and-query"),
    ],
)  # fmt: skip
def test_spec_matching(
    r: RuleConfig, title: str, text: str, expected: tuple[str, ...] | None
) -> None:
    assert terms(r, title, text) == expected


# --- query operators, over one German item -------------------------------------------------

TITLE = "Lage an der Front"
TEXT = "Ukrainische Beobachter melden Gefechte nordkoreanischer Truppen in der russischen "
TEXT += "Kursk-Region nahe Sudscha."


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("Kursk", True),
        ("Kursk Truppen", True),  # implicit AND
        ("Kursk Belgorod", False),
        ("Kursk AND Truppen", True),
        ("Kursk AND Belgorod", False),
        ("Kursk OR Belgorod", True),
        ("Belgorod OR Charkiw", False),
        ("Kursk NOT Belgorod", True),
        ("Kursk NOT Truppen", False),
        ("Kursk -Sudscha", False),
        ('Kursk -"russische Truppen"', True),
        ('Kursk -"nordkoreanische Truppen"', False),
        # AND binds tighter than OR
        ("Belgorod AND Kursk OR Truppen", True),
        ("Truppen OR Kursk AND Belgorod", True),
        ("Belgorod AND (Kursk OR Truppen)", False),
        ("(Belgorod OR Kursk) Truppen", True),
        # NOT binds tighter than AND: (NOT Kursk) AND Truppen
        ("NOT Kursk AND Truppen", False),
        ("NOT (Kursk AND Belgorod) Truppen", True),
        ("NOT Belgorod Kursk", True),
        ("-(Belgorod OR Charkiw) Kursk", True),
        ("-(Belgorod OR Sudscha) Kursk", False),
        # NEAR/n: both within n words, either order (Truppen is 4 words before Kursk)
        ("Truppen NEAR/4 Kursk", True),
        ("Kursk NEAR/4 Truppen", True),
        ("Truppen NEAR/3 Kursk", False),
        ("Kursk NEAR/3 Truppen", False),
        ('"nordkoreanische Truppen" NEAR/4 Kursk', True),
        ('Kursk NEAR/4 "nordkoreanische Truppen"', True),
        ('"nordkoreanische Truppen" NEAR/3 Kursk', False),
        ("Kursk NEAR/1 Region", True),
        ("Region NEAR/1 Kursk", True),
        ("Kursk NEAR/20 Belgorod", False),
        ("Kursk NEAR/5 Kursk", False),  # two occurrences needed
        ("Lage NEAR/20 Kursk", False),  # title and body are apart
        # title: restricts to the title
        ("title:Front", True),
        ("title:Kursk", False),
        ("Front", True),
        ('title:"an der Front"', True),
        ("title:(Front OR Belgorod) Kursk", True),
        ("title:(Kursk OR Truppen)", False),
        ("title:(-Kursk) Truppen", True),
        ("title:(Lage NEAR/3 Front)", True),
        # prefixes
        ("nordkorea*", True),
        ("Sudsch*", True),
        ("Belgor*", False),
    ],
)
def test_query(query: str, matches: bool) -> None:
    assert (explain(rule(query=query), TITLE, TEXT) is not None) is matches


# --- matched terms, snippets, spans --------------------------------------------------------


def test_terms_are_distinct_and_as_written() -> None:
    text = "Kursk meldet Angriffe. In KURSK und im Kursker Umland heulen Sirenen."
    assert terms(rule(any=["Kursk"]), "Kursk unter Beschuss", text) == ("Kursk", "Kursker")


def test_negated_terms_never_count() -> None:
    r = rule(any=["Kursk"], none=["Fußball"], query="Truppen OR -Belgorod")
    assert terms(r, "", "Truppen bei Kursk, fern von Charkiw.") == ("Truppen", "Kursk")
    r = rule(query="Kursk -Belgorod")
    assert terms(r, "", "Kursk ohne das Wort.") == ("Kursk",)


def test_near_reports_both_sides() -> None:
    assert terms(rule(query="Kursk NEAR/4 Truppen"), TITLE, TEXT) == ("Truppen", "Kursk")


def test_explain_spans_and_highlight() -> None:
    r = rule(any=["Kursk"], query="title:Front")
    result = explain(r, TITLE, TEXT)
    assert result is not None
    assert [TITLE[s:e] for s, e in result.title_spans] == ["Front"]
    assert [TEXT[s:e] for s, e in result.text_spans] == ["Kursk"]
    assert highlight(TEXT, result.text_spans).endswith("russischen [[Kursk]]-Region nahe Sudscha.")
    assert highlight("abcdef", [(3, 5), (0, 2), (1, 4)], "<", ">") == "<abcde>f"
    assert highlight("abc", []) == "abc"


def test_snippet_is_around_the_first_body_match() -> None:
    before = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    after = " Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua." * 4
    text = before + "Gefechte   nahe\n\nKursk" + after
    result = explain(rule(any=["Kursk"]), "Kursk", text)
    assert result is not None
    s = result.snippet
    assert "Gefechte nahe Kursk" in s  # whitespace collapsed
    assert s.startswith("…") and s.endswith("…")
    assert 150 <= len(s) <= 202
    inner = s.strip("…").split()
    whole_words = set(text.split())
    assert all(w in whole_words for w in inner)  # cut at word boundaries


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("Kurz:  Kursk\n meldet.", 7, 12, "Kurz: Kursk meldet."),
        ("Kursk " + "wort " * 60, 0, 5, "Kursk " + " ".join(["wort"] * 39) + "…"),
        ("wort " * 60 + "Kursk", 300, 305, "…" + " ".join(["wort"] * 39) + " Kursk"),
    ],
)
def test_snippet(text: str, start: int, end: int, expected: str) -> None:
    assert snippet(text, start, end) == expected


def test_snippet_from_the_title_when_only_the_title_matched() -> None:
    result = explain(rule(any=["Kursk"]), "Neue Kämpfe um Kursk", "Ohne Details.")
    assert result is not None and result.snippet == "Neue Kämpfe um Kursk"


# --- the spec's example rule over a German news paragraph ----------------------------------

NK_TITLE = "Geheimdienst: Pjöngjang verstärkt Kontingent an der Grenze"
NK_TEXT = """Seoul/Kiew. Nach Einschätzung des südkoreanischen Geheimdienstes sind in den
vergangenen Wochen weitere Einheiten aus Pjöngjang nach Russland verlegt worden. Ukrainische
Militärbeobachter berichten von heftigen Gefechten nordkoreanischer Truppen mit eigenen
Verbänden nahe der Kleinstadt Sudscha. In der Kursker Gebietsverwaltung wollte man die Angaben
nicht kommentieren; auch Gespräche über einen Gefangenenaustausch seien ins Stocken geraten."""


def test_nk_troops_rule_over_a_german_paragraph() -> None:
    nk = rule(
        name="nk-troops",
        any=["nordkoreanische Truppen", "North Korean troops"],
        none=["Fußball"],
        query="Kursk OR Курск",
    )
    [match] = Matcher([nk]).match(NK_TITLE, NK_TEXT)
    assert match.rule == "nk-troops"
    assert match.terms == ("nordkoreanischer Truppen", "Kursker")
    assert "Gefechten nordkoreanischer Truppen mit eigenen" in match.snippet
    assert "\n" not in match.snippet and len(match.snippet) <= 202
    # without the Kursk mention the query fails; with Fußball the none list excludes it
    assert Matcher([nk]).match(NK_TITLE, NK_TEXT.replace("Kursker", "regionalen")) == []
    assert Matcher([nk]).match(NK_TITLE, NK_TEXT + " Fußball fällt aus.") == []


def test_russian_paragraph() -> None:
    ru = rule(name="kursk-ru", any=["Курск"], query='"северокорейские войска" OR КНДР')
    text = "Северокорейских войск в Курской области становится больше, сообщают источники."
    [match] = Matcher([ru]).match("Сводка", text)
    assert match.terms == ("Северокорейских войск", "Курской")


# --- Matcher -------------------------------------------------------------------------------


def test_matcher_returns_one_match_per_rule_in_rule_order() -> None:
    rules = [
        rule(name="ru", any=["Курск"]),
        rule(name="kursk", any=["Kursk"]),
        rule(name="troops", any=["Truppen"]),
        rule(name="belgorod", any=["Belgorod"]),
    ]
    matcher = Matcher(rules)
    assert [m.rule for m in matcher.match(TITLE, TEXT)] == ["kursk", "troops"]
    assert all(isinstance(m, Match) for m in matcher.match(TITLE, TEXT))
    assert matcher.match("", "") == []
    assert [r.rule for r in matcher.explain(TITLE, TEXT)] == ["kursk", "troops"]


def test_compiled_rule_can_be_reused() -> None:
    compiled = compile_rule(rule(any=["Kursk"]))
    assert explain(compiled, "", "Kursk") is not None
    assert compiled.explain("", "Kurs") is None


# --- rules that do not compile -------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "field", "index", "column", "message"),
    [
        (rule(any=["Kursk"], query="Kursk AND"), "query", None, 7, "AND must be followed"),
        (rule(any=["Kursk", "Kursk *"]), "any", 1, 7, "'*' must directly follow"),
        (rule(all=["Kursk", "--"]), "all", 1, 1, "contains no word"),
        (rule(any=["Kursk"], none=["…"]), "none", 0, 1, "contains no word"),
        (rule(none=["Fußball"]), "rule", None, 1, "nothing to match"),
        (rule(), "rule", None, 1, "nothing to match"),
        (rule(query="-Fußball"), "rule", None, 1, "only excludes"),
        (rule(query="NOT Fußball"), "rule", None, 1, "only excludes"),
        (rule(query="Kursk OR -Fußball"), "rule", None, 1, "only excludes"),
        (rule(all=["nordkoreanische Truppen"], none=["Truppen"]), "none", 0, 1, "never matches"),
        (rule(any=["Kursk", "Kursk-Region"], none=["Kursk"]), "any", None, 1, "never matches"),
    ],
)
def test_compile_errors(
    r: RuleConfig, field: str, index: int | None, column: int, message: str
) -> None:
    with pytest.raises(RuleQueryError) as info:
        compile_rule(r)
    err = info.value
    assert isinstance(err, QueryError)
    assert (err.rule, err.field, err.index, err.column) == ("r", field, index, column)
    assert message in err.message
    assert message in str(err) and "'r'" in str(err)


def test_error_text_names_rule_field_and_column() -> None:
    with pytest.raises(QueryError) as info:
        Matcher([rule(name="nk", any=["x"], query="(Kursk OR Курск")])
    assert str(info.value) == "rule 'nk', query column 1: '(' is never closed: a ')' is missing"


@pytest.mark.parametrize(
    "r",
    [
        rule(any=["Kursk"], query="-Fußball"),  # lists give the positive part
        rule(all=["Kursk"], none=["Fußball"]),
        rule(query="Kursk -Fußball"),
        rule(any=["Kursk", "Belgorod"], none=["Kursk"]),  # Belgorod can still match
    ],
)
def test_rules_that_compile(r: RuleConfig) -> None:
    compile_rule(r)


def test_near_stays_fast_when_both_words_repeat_thousands_of_times() -> None:
    """A hostile item must not stall matching: NEAR is not quadratic in the hit counts."""
    import time

    rule = RuleConfig(name="near", query="Kursk NEAR/4 Truppen", languages=("de",))
    text = " ".join(["Kursk Wald Feld Wiese Truppen Haus Dorf Stadt Land"] * 8000)
    started = time.perf_counter()
    result = Matcher([rule]).match("", text)
    assert [m.rule for m in result] == ["near"]
    assert time.perf_counter() - started < 5.0
