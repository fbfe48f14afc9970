"""Latin <-> Cyrillic transliteration of rule words (`transliterate = true` on a rule).

The scheme is cyrtranslit's Russian one (close to GOST 7.79-2000 system B): `ж` = `zh`,
`х` = `h`, `ц` = `cz`, `ч` = `ch`, `ш` = `sh`, `щ` = `shh`, `ю` = `yu`, `я` = `ya`,
`й` = `j`, `ы` = `y'`, `ь`/`ъ` = `'`/`''`. A Latin rule word gains its Cyrillic spelling
(`kursk` -> `курск`, `zelenskij` -> `зеленский`) and a Cyrillic rule word its Latin one
without the apostrophes of the soft and hard signs (`чернобыль` -> `chernobyl`), and both
forms then match like any rule word: by folded form and by the stems of the rule's languages.
Only the rule side is transliterated (items are analysed as they are), so it costs nothing
per item. A word that does not convert completely (a letter the scheme leaves as it is)
gains nothing: a half-converted word can never occur in a text.
"""

from __future__ import annotations

import re
from functools import lru_cache

import cyrtranslit

_LANGUAGE = "ru"
_LATIN = re.compile(r"[a-z]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@lru_cache(maxsize=1 << 14)
def transliterations(word: str) -> tuple[str, ...]:
    """The other-script spellings of a normalised (case-folded) word: () when there is none."""
    if _CYRILLIC.search(word) is not None and _LATIN.search(word) is None:
        latin = str(cyrtranslit.to_latin(word, _LANGUAGE)).replace("'", "")
        return () if _CYRILLIC.search(latin) or latin == word else (latin,)
    if _LATIN.search(word) is not None and _CYRILLIC.search(word) is None:
        cyrillic = str(cyrtranslit.to_cyrillic(word, _LANGUAGE))
        return () if _LATIN.search(cyrillic) or cyrillic == word else (cyrillic,)
    return ()
