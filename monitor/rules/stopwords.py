"""The commonest function words of German, English and Russian (folded), for `monitor check`'s
flooding warnings and for the compiled matcher's choice of the rarest required word. A short
hand-made list on purpose: it only has to catch a rule that is one such word alone."""

from __future__ import annotations

from monitor.rules.text import fold

_WORDS = {
    "de": """der die das den dem des ein eine einer eines einem einen und oder aber nicht ist
        sind war hat haben wird werden mit von zu zum zur im in an am auf aus bei fur um es er
        sie wir ihr ich du als auch noch nach vor uber so wie dass da wenn""",
    "en": """the a an and or but not is are was were be been has have had will would with of
        to in on at by for from as it its he she they we you i this that these those there
        their his her our if so do does did""",
    "ru": """и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по
        только ее мне было вот от меня еще нет о из ему теперь когда даже ну ли если уже или
        ни быть был него до вас для это этот эта""",
}

STOP_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(fold(w) for w in words.split()) for code, words in _WORDS.items()
}
"""Language code -> folded stop words."""

ALL_STOP_WORDS: frozenset[str] = frozenset().union(*STOP_WORDS.values())


def stop_words(languages: tuple[str, ...]) -> frozenset[str]:
    """The stop words of some languages; of every listed language when `languages` is ()."""
    if not languages:
        return ALL_STOP_WORDS
    return frozenset().union(*(STOP_WORDS.get(code, frozenset()) for code in languages))
