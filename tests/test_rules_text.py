"""Tokenising, folding and stemming (spec, "Matching": how text and rule terms are split)."""

from __future__ import annotations

import threading

import pytest
import Stemmer

from monitor.rules.text import (
    ISO_639_1,
    STEMMED_LANGUAGES,
    fold,
    is_language_code,
    known_language,
    language_code_for,
    normalize,
    stem,
    tokenize,
    words,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cut at every character that is not a letter or digit
        ("Gefechte in der Kursk-Region", ["gefechte", "in", "der", "kursk", "region"]),
        ("Kyiv's mayor, 2024: 'no comment'", ["kyiv", "s", "mayor", "2024", "no", "comment"]),
        ("Soldaten/Truppen (laut Angaben)", ["soldaten", "truppen", "laut", "angaben"]),
        ("Курская область—граница", ["курская", "область", "граница"]),
        # case folding: ß becomes ss
        ("STRASSE Straße", ["strasse", "strasse"]),
        # NFKC: ligatures, full-width letters, circled digits
        ("ﬁnale ＫＵＲＳＫ ①", ["finale", "kursk", "1"]),
        # combining marks that NFKC cannot compose stay inside the word (Russian stress mark)
        ("Ку́рск", ["ку́рск"]),
        # decomposed umlaut is composed by NFKC
        ("Gespra\u0308che", ["gespräche"]),
        ("", []),
        ("  — … !!", []),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Die Kursk-Region, sagte der Sprecher.",
        "Großbritannien und Gespra\u0308che über Ку́рск",
        "ﬁnale Runde: ＫＵＲＳＫ ①",
        "İstanbul ½ Łódź",
    ],
)
def test_token_spans_point_into_the_original_text(text: str) -> None:
    tokens = tokenize(text)
    assert tokens
    for tok in tokens:
        assert tok.word in normalize(text[tok.start : tok.end])


def test_token_spans_are_exact() -> None:
    text = "Die Kursk-Region, Gespra\u0308che."
    spans = [(t.word, text[t.start : t.end]) for t in tokenize(text)]
    assert spans == [
        ("die", "Die"),
        ("kursk", "Kursk"),
        ("region", "Region"),
        ("gespräche", "Gespra\u0308che"),
    ]


@pytest.mark.parametrize(
    ("word", "folded"),
    [
        ("großbritannien", "grossbritannien"),  # ß = ss
        ("grossbritannien", "grossbritannien"),
        ("gespräche", "gesprache"),  # diacritics removed
        ("café", "cafe"),
        ("łódź", "lodz"),  # stroke letters by table
        ("søren", "soren"),
        ("ёлка", "елка"),
        ("ку́рск", "курск"),
        ("kursk", "kursk"),
    ],
)
def test_fold(word: str, folded: str) -> None:
    assert fold(word) == folded


def test_tokens_carry_their_folded_form() -> None:
    assert [t.folded for t in tokenize("Großbritannien Gespräche")] == [
        "grossbritannien",
        "gesprache",
    ]


@pytest.mark.parametrize(
    ("word", "language", "expected"),
    [
        # checked against PyStemmer 3.1 (Snowball)
        ("kursker", "de", "kursk"),
        ("kursk", "de", "kursk"),
        ("nordkoreanischer", "de", "nordkorean"),
        ("nordkoreanische", "de", "nordkorean"),
        ("gespräche", "de", "gesprach"),  # stemmed with the umlaut, then folded
        ("kurse", "de", "kurs"),
        ("kurs", "de", "kur"),
        ("kursziel", "de", "kursziel"),
        ("troops", "en", "troop"),
        ("курской", "ru", "курск"),
        ("курск", "ru", "курск"),
        ("курсы", "ru", "курс"),
        ("ку́рской", "ru", "курск"),  # a stress mark does not stop the stemmer
        ("северокорейских", "ru", "северокореиск"),  # й is needed for the stem, folded after
        # no Snowball stemmer: unstemmed, no error
        ("курської", "uk", None),
        ("库尔斯克", "zh", None),
        ("kursker", "xx", None),
    ],
)
def test_stem(word: str, language: str, expected: str | None) -> None:
    assert stem(word, language) == expected


@pytest.mark.parametrize(
    ("code", "valid", "stemmed"),
    [
        ("de", True, True),
        ("en", True, True),
        ("ru", True, True),
        ("fr", True, True),
        ("DE", True, True),
        ("uk", True, False),  # Snowball has no Ukrainian stemmer: unstemmed
        ("zh", True, False),
        ("ka", True, False),
        ("ger", False, False),
        ("deu", False, False),
        ("xx", False, False),  # two letters, but no ISO 639-1 code
        ("qq", False, False),
        ("d", False, False),
        ("german", False, False),
    ],
)
def test_languages(code: str, valid: bool, stemmed: bool) -> None:
    assert is_language_code(code) is valid
    assert known_language(code) is stemmed


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("deu", "de"),
        ("ger", "de"),
        ("eng", "en"),
        ("rus", "ru"),
        ("ukr", "uk"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("spa", "es"),
        ("ita", "it"),
        ("nld", "nl"),
        ("dut", "nl"),
        ("por", "pt"),
        ("pol", "pl"),
        ("chi", "zh"),
        ("nob", "nb"),
        ("German", "de"),  # a Snowball stemmer's name
        ("norwegian", "no"),
        ("xx", None),
        ("gsw", None),  # Swiss German: ISO 639-2, but no two-letter code
        ("ukrainian", None),
        ("", None),
    ],
)
def test_language_code_for(name: str, code: str | None) -> None:
    assert language_code_for(name) == code


def test_iso_639_1_is_complete_and_covers_the_stemmers() -> None:
    assert len(ISO_639_1) == 184 and all(len(c) == 2 and c.islower() for c in ISO_639_1)
    assert STEMMED_LANGUAGES <= ISO_639_1
    assert all(is_language_code(c) for c in ISO_639_1)


def test_stemmed_languages_cover_the_newsroom_languages() -> None:
    assert {"de", "en", "ru", "fr", "es", "it", "nl", "pl", "sv", "tr"} <= STEMMED_LANGUAGES
    assert "uk" not in STEMMED_LANGUAGES


def test_stemming_from_several_threads_agrees() -> None:
    """Each thread stems with its own PyStemmer object (they are not thread-safe)."""
    reference = Stemmer.Stemmer("german")
    vocabulary = [f"thread{i}{w}" for i in range(500) for w in ("kursker", "gespräche", "truppen")]
    expected = [fold(reference.stemWord(w)) for w in vocabulary]
    agreed: list[bool] = []

    def work(offset: int) -> None:
        mine = vocabulary[offset:] + vocabulary[:offset]  # uncached words, different order
        got = {w: stem(w, "de") for w in mine}
        agreed.append([got[w] for w in vocabulary] == expected)

    threads = [threading.Thread(target=work, args=(k * 97,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert agreed == [True] * 4


@pytest.mark.parametrize(
    "text",
    [
        "Gefechte\u00a0bei Kursk… und\u202fSudscha",  # no-break spaces and "…": fast path
        "Ку́рск и Курская область",
        "नमस्ते दुनिया",  # vowel signs (marks) inside words
        "\u0301Kursk\u0301 x",  # a mark with no word before it separates
        "Straße, Łódź, İstanbul",
    ],
)
def test_fast_path_agrees_with_cluster_path(text: str) -> None:
    from monitor.rules.text import _tokenize_clusters

    assert tokenize(text) == _tokenize_clusters(text)


def test_spans_survive_no_break_spaces() -> None:
    text = "Lage\u00a0in\u00a0Kursk…"
    assert [text[t.start : t.end] for t in tokenize(text)] == ["Lage", "in", "Kursk"]
