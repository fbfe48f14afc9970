"""Text normalisation shared by item text and rule terms: normalise, split, fold, stem.

Both sides go through the same steps, so a rule term matches what the reader sees:

* `tokenize` applies Unicode NFKC and case folding and cuts words at every character that is
  not a letter or digit; combining marks that NFKC cannot compose (a Russian stress accent,
  an Indic vowel sign) stay inside their word. Each `Token` keeps its span in the ORIGINAL
  text, for highlighting and snippets. Text already in NFKC (most feed text, once no-break
  spaces and "…" are treated as the separators they are) is split with one regex; other text
  is normalised one base character (plus its marks) at a time, keeping offsets exact.
* `fold` removes diacritics (NFKD, drop combining marks, a few stroke letters such as `ł`,
  `ø` by table); `ß` has already become `ss` through case folding.
* `stem` runs the Snowball stemmer of a language on the case-folded word (with diacritics,
  which stemmers such as Russian's need; only leftover stress accents are dropped) and folds
  the result. Any two-letter ISO 639-1 code is a valid rule language; a code without a
  Snowball stemmer (`uk`, `zh`, ...) simply matches unstemmed.

Stemmer objects are not thread-safe, so each thread gets its own; stems are memoised.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import NamedTuple, Protocol, cast

import Stemmer

# ISO 639-1 code -> Snowball algorithm name in PyStemmer (filtered to what is installed).
_ISO_TO_ALGORITHM = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "eo": "esperanto",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "st": "sesotho",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
# Every ISO 639-1 code, as `ISO 639-2/T:639-1` pairs plus the ISO 639-2/B variants (ger, fre,
# dut, ...), from Debian's iso-codes (iso_639-2.json): a rule language must be one of these.
_ISO_639_PAIRS = """
aar:aa abk:ab ave:ae afr:af aka:ak amh:am arg:an ara:ar asm:as ava:av aym:ay aze:az bak:ba
bel:be bul:bg bih:bh bis:bi bam:bm ben:bn bod:bo tib:bo bre:br bos:bs cat:ca che:ce cha:ch
cos:co cre:cr ces:cs cze:cs chu:cu chv:cv cym:cy wel:cy dan:da deu:de ger:de div:dv dzo:dz
ewe:ee ell:el gre:el eng:en epo:eo spa:es est:et eus:eu baq:eu fas:fa per:fa ful:ff fin:fi
fij:fj fao:fo fra:fr fre:fr fry:fy gle:ga gla:gd glg:gl grn:gn guj:gu glv:gv hau:ha heb:he
hin:hi hmo:ho hrv:hr hat:ht hun:hu hye:hy arm:hy her:hz ina:ia ind:id ile:ie ibo:ig iii:ii
ipk:ik ido:io isl:is ice:is ita:it iku:iu jpn:ja jav:jv kat:ka geo:ka kon:kg kik:ki kua:kj
kaz:kk kal:kl khm:km kan:kn kor:ko kau:kr kas:ks kur:ku kom:kv cor:kw kir:ky lat:la ltz:lb
lug:lg lim:li lin:ln lao:lo lit:lt lub:lu lav:lv mlg:mg mah:mh mri:mi mao:mi mkd:mk mac:mk
mal:ml mon:mn mar:mr msa:ms may:ms mlt:mt mya:my bur:my nau:na nob:nb nde:nd nep:ne ndo:ng
nld:nl dut:nl nno:nn nor:no nbl:nr nav:nv nya:ny oci:oc oji:oj orm:om ori:or oss:os pan:pa
pli:pi pol:pl pus:ps por:pt que:qu roh:rm run:rn ron:ro rum:ro rus:ru kin:rw san:sa srd:sc
snd:sd sme:se sag:sg sin:si slk:sk slo:sk slv:sl smo:sm sna:sn som:so sqi:sq alb:sq srp:sr
ssw:ss sot:st sun:su swe:sv swa:sw tam:ta tel:te tgk:tg tha:th tir:ti tuk:tk tgl:tl tsn:tn
ton:to tur:tr tso:ts tat:tt twi:tw tah:ty uig:ug ukr:uk urd:ur uzb:uz ven:ve vie:vi vol:vo
wln:wa wol:wo xho:xh yid:yi yor:yo zha:za zho:zh chi:zh zul:zu
"""
_ISO_639_2_TO_1 = {pair[:3]: pair[4:] for pair in _ISO_639_PAIRS.split()}
ISO_639_1: frozenset[str] = frozenset(_ISO_639_2_TO_1.values())
"""Every two-letter ISO 639-1 language code (lower case)."""

_INSTALLED = frozenset(Stemmer.algorithms())
_ALGORITHMS = {code: alg for code, alg in _ISO_TO_ALGORITHM.items() if alg in _INSTALLED}

STEMMED_LANGUAGES: frozenset[str] = frozenset(_ALGORITHMS)
"""Language codes with a Snowball stemmer; other valid codes match unstemmed."""
# "German" -> "de": a stemmer's name is a likely mistake for its code ("norwegian" -> "no").
_ALGORITHM_TO_ISO = {alg: code for code, alg in _ISO_TO_ALGORITHM.items() if code != "nb"}

_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_WORD_RUN = re.compile(r"[^\W_]+")  # str.isalnum() characters
# Separators that NFKC rewrites (no-break and typographic spaces, "…"), mapped to a space.
_SPACES = "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_COMPAT_SEPARATORS = re.compile(f"[{_SPACES}\u2024\u2025\u2026]")
# Letters that carry a stroke or are ligatures: NFKD does not decompose them.
_FOLD_TABLE = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t", "ß": "ss"}
    | {"æ": "ae", "œ": "oe", "þ": "th"}
)


class Token(NamedTuple):
    """One word: its normalised form (NFKC, case-folded), folded form, and original span."""

    word: str
    folded: str
    start: int  # offsets into the original text: text[start:end] is the word as written
    end: int


def is_language_code(code: str) -> bool:
    """A valid rule language: an ISO 639-1 code (any case). `deu` or `german` is not one."""
    return code.lower() in ISO_639_1


def language_code_for(name: str) -> str | None:
    """The ISO 639-1 code that `name` stands for, or None: the code itself (any case), an
    ISO 639-2 code (`deu`, `ger` -> `de`) or a Snowball stemmer's name (`German` -> `de`)."""
    lower = name.strip().lower()
    if lower in ISO_639_1:
        return lower
    return _ISO_639_2_TO_1.get(lower) or _ALGORITHM_TO_ISO.get(lower)


def known_language(code: str) -> bool:
    """True when `code` has a Snowball stemmer; other valid codes just match unstemmed."""
    return code.lower() in STEMMED_LANGUAGES


def stemmer_name(code: str) -> str | None:
    """The Snowball algorithm used for a language code, or None (no stemming)."""
    return _ALGORITHMS.get(code.lower())


def normalize(text: str) -> str:
    """Unicode NFKC followed by case folding (`Straße` -> `strasse`)."""
    return unicodedata.normalize("NFKC", text).casefold()


def fold(word: str) -> str:
    """Remove diacritics: `gespräche` -> `gesprache`, `łódź` -> `lodz`, `ß` -> `ss`."""
    if word.isascii():
        return word
    return _fold(word)


@lru_cache(maxsize=1 << 16)
def _fold(word: str) -> str:
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)
    )
    return unicodedata.normalize("NFC", stripped.translate(_FOLD_TABLE))


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "M"


def _continues_cluster(ch: str) -> bool:
    """Characters normalised together with the character before them."""
    if ch.isascii():
        return False
    return _is_mark(ch) or "\u1160" <= ch <= "\u11ff"  # marks, Hangul medial/final jamo


@lru_cache(maxsize=1 << 14)
def _normalize_cluster(cluster: str) -> str:
    return normalize(cluster)


def tokenize(text: str) -> list[Token]:
    """Split text into words, each with its span in `text` (see the module docstring)."""
    if text.isascii():
        return [
            Token(word := m.group().lower(), word, m.start(), m.end())
            for m in _ASCII_WORD.finditer(text)
        ]
    # Common separators that NFKC would rewrite (no-break spaces, "…") are separators either
    # way: replacing them one-for-one keeps offsets and lets most text take the fast path.
    plain = _COMPAT_SEPARATORS.sub(" ", text)
    if unicodedata.is_normalized("NFKC", plain):
        return _tokenize_normalized(plain)
    return _tokenize_clusters(text)


def _tokenize_normalized(text: str) -> list[Token]:
    """Text already in NFKC: words are runs of letters/digits plus the marks inside them."""
    tokens: list[Token] = []
    start = end = -1
    n = len(text)
    for m in _WORD_RUN.finditer(text):
        s, e = m.span()
        if start >= 0:
            k = end
            while k < s and not text[k].isascii() and _is_mark(text[k]):
                k += 1
            if k == s:  # only marks between the runs: one word (a stress mark, a vowel sign)
                end = e
                continue
            word = text[start:k].casefold()
            tokens.append(Token(word, fold(word), start, k))
        start, end = s, e
    if start >= 0:
        while end < n and not text[end].isascii() and _is_mark(text[end]):
            end += 1
        word = text[start:end].casefold()
        tokens.append(Token(word, fold(word), start, end))
    return tokens


def _tokenize_clusters(text: str) -> list[Token]:
    """Any text: normalise one base character and its marks at a time, tracking offsets."""
    tokens: list[Token] = []
    chars: list[str] = []
    start = end = 0
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _continues_cluster(text[j]):
            j += 1
        cluster = text[i:j]
        norm = cluster.lower() if cluster.isascii() else _normalize_cluster(cluster)
        for ch in norm:
            if ch.isalnum() or (chars and _is_mark(ch)):
                if not chars:
                    start = i
                chars.append(ch)
                end = j
            elif chars:
                word = "".join(chars)
                tokens.append(Token(word, fold(word), start, end))
                chars = []
        i = j
    if chars:
        word = "".join(chars)
        tokens.append(Token(word, fold(word), start, end))
    return tokens


def words(text: str) -> list[str]:
    """The normalised words of `text`."""
    return [t.word for t in tokenize(text)]


# --- stemming ------------------------------------------------------------------------------


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # PyStemmer's method name


_local = threading.local()


def _stemmer(algorithm: str) -> _Stemmer:
    """This thread's stemmer for `algorithm` (PyStemmer objects are not thread-safe)."""
    cache = cast("dict[str, _Stemmer] | None", getattr(_local, "stemmers", None))
    if cache is None:
        cache = {}
        _local.stemmers = cache
    stemmer = cache.get(algorithm)
    if stemmer is None:
        stemmer = cast(_Stemmer, Stemmer.Stemmer(algorithm))
        cache[algorithm] = stemmer
    return stemmer


# Stress accents (acute, grave) survive NFKC on letters that have no precomposed form.
_STRESS_MARKS = re.compile("[\u0300\u0301]")


@lru_cache(maxsize=1 << 17)
def stem_with(word: str, algorithm: str) -> str:
    """The folded Snowball stem of a normalised word, for a PyStemmer algorithm name."""
    if not word.isascii():
        word = _STRESS_MARKS.sub("", word)
    return fold(_stemmer(algorithm).stemWord(word))


def stem(word: str, language: str) -> str | None:
    """The folded stem of a normalised word in a language, or None if it has no stemmer."""
    algorithm = stemmer_name(language)
    return None if algorithm is None else stem_with(word, algorithm)
