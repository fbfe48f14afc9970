"""Benchmarks of the monitor (see benchmarks/README.md), and the generators they share.

Everything here is synthetic and deterministic for a seed: news-like sentences in German,
English and Russian built from slot templates (no real article text), whole RSS 2.0
documents, and rule sets of any size drawn from the same vocabulary plus invented words that
never occur in the text, so that most rules miss most items, as in real use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

from monitor.types import RuleConfig

LANGUAGES = ("de", "en", "ru")

# --- vocabulary ----------------------------------------------------------------------------
# fmt: off
_DE = {
    "actor": [
        "Die Bundesregierung", "Der Kanzler", "Die Außenministerin", "Das Verteidigungsministerium",
        "Die Nato", "Die Europäische Union", "Der Kreml", "Die Vereinten Nationen",
        "Ein Sprecher des Weißen Hauses", "Die ukrainische Armee", "Die Opposition",
        "Der Bundestag", "Die Europäische Zentralbank", "Die Gewerkschaft Verdi",
        "Marta Kowalczyk", "Jonas Vellmer", "Der Generalstab in Kiew", "Die Polizei",
    ],
    "place": [
        "Berlin", "Kiew", "Moskau", "Kursk", "Charkiw", "Paris", "Brüssel", "Washington",
        "Peking", "Seoul", "Pjöngjang", "Warschau", "Wien", "Odessa", "Donezk", "Hamburg",
        "München", "Genf", "Istanbul", "Teheran", "Saporischschja", "Belgorod",
    ],
    "topic": [
        "neue Sanktionen gegen Russland", "weitere Hilfen für die Ukraine", "eine Waffenruhe",
        "Verhandlungen über einen Gefangenenaustausch", "den Einsatz nordkoreanischer Truppen",
        "höhere Verteidigungsausgaben", "Gespräche über die Energiepreise",
        "ein Abkommen über den Export von Getreide", "schärfere Regeln für Migration",
        "eine Reform der Schuldenbremse", "neue Zölle auf chinesische Elektroautos",
        "strengere Sanktionen gegen den Iran", "eine Senkung der Leitzinsen",
    ],
    "verb": [
        "angekündigt", "bestätigt", "kritisiert", "zurückgewiesen", "beschlossen", "gefordert",
        "begrüßt", "infrage gestellt",
    ],
    "day": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
    "event": [
        "einem Drohnenangriff", "schweren Gefechten", "einem Raketenangriff", "Protesten",
        "einem Unwetter", "einem Zugunglück", "einem Brand in einem Wohnhaus",
        "Kämpfen nordkoreanischer Truppen",
    ],
    "quote": [
        "historischen Schritt", "schweren Fehler", "Wendepunkt", "Angriff auf die Demokratie",
        "klaren Bruch des Völkerrechts", "überfälligen Signal",
    ],
    "headline": [
        "{place}: {actor} warnt vor Eskalation", "Liveblog: Die Lage in {place} am {day}",
        "{actor} kündigt Gespräche in {place} an", "Proteste in {place} gehen weiter",
        "Waffenruhe in {place} brüchig", "Zentralbank hält Zinsen stabil",
        "Energiepreise steigen erneut", "Drohnenangriff auf {place}",
        "Fußball: Auswärtssieg in {place}",
    ],
    "sentence": [
        "{actor} hat am {day} in {place} {topic} {verb}.",
        "Nach Angaben von Behörden wurden bei {event} nahe {place} mindestens {num} Menschen"
        " verletzt.",
        "Die Lage in der Region um {place} bleibt nach Einschätzung von Beobachtern angespannt.",
        "{actor} sprach von einem „{quote}“.",
        "Wie {actor} mitteilte, sollen die Gespräche in {place} am {day} fortgesetzt werden.",
        "Der Dax schloss am {day} mit einem Plus von {small} Prozent bei {big} Punkten.",
        "Experten rechnen damit, dass die Debatte über {topic} noch Wochen dauern wird.",
        "Im Bundestag wurde über {topic} gestritten; die Abstimmung ist für {day} geplant.",
        "Augenzeugen berichteten von Explosionen im Zentrum von {place}.",
        "In {place} gingen am {day} rund {num}00 Menschen auf die Straße.",
        "Die Opposition wirft der Regierung vor, {topic} zu lange verschleppt zu haben.",
        "Beim Fußball-Länderspiel in {place} blieb es am {day} weitgehend ruhig.",
    ],
}

_EN = {
    "actor": [
        "The German government", "The chancellor", "The foreign minister", "The Pentagon",
        "Nato", "The European Union", "The Kremlin", "The United Nations",
        "A White House spokesperson", "Ukraine's army", "The opposition", "Parliament",
        "The central bank", "Marta Kowalczyk", "Jonas Vellmer", "Police", "Analysts",
    ],
    "place": [
        "Berlin", "Kyiv", "Moscow", "Kursk", "Kharkiv", "Paris", "Brussels", "Washington",
        "Beijing", "Seoul", "Pyongyang", "Warsaw", "Vienna", "Odesa", "Donetsk", "London",
        "Geneva", "Istanbul", "Tehran", "Zaporizhzhia", "Belgorod",
    ],
    "topic": [
        "new sanctions on Russia", "further aid to Ukraine", "a ceasefire",
        "talks on a prisoner exchange", "the deployment of North Korean troops",
        "higher defence spending", "talks on energy prices", "a deal on grain exports",
        "tighter migration rules", "new tariffs on Chinese electric cars",
        "tougher sanctions against Iran", "a cut in interest rates",
    ],
    "verb": [
        "announced", "confirmed", "criticised", "rejected", "approved", "called for",
        "welcomed", "questioned",
    ],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "event": [
        "a drone attack", "heavy fighting", "a missile strike", "protests", "a storm",
        "a train crash", "a fire in an apartment block", "clashes with North Korean troops",
    ],
    "quote": [
        "historic step", "grave mistake", "turning point", "attack on democracy",
        "clear breach of international law", "long overdue signal",
    ],
    "headline": [
        "{place}: {actor} warns of escalation", "Live: the situation in {place} on {day}",
        "{actor} to hold talks in {place}", "Protests in {place} continue",
        "Fragile ceasefire in {place}", "Central bank holds rates",
        "Energy prices rise again", "Drone attack on {place}", "Football: away win in {place}",
    ],
    "sentence": [
        "{actor} {verb} {topic} in {place} on {day}.",
        "At least {num} people were injured in {event} near {place}, officials said.",
        "Observers describe the situation around {place} as tense.",
        "{actor} called it a \"{quote}\".",
        "{actor} said talks in {place} would resume on {day}.",
        "The FTSE 100 closed {small} per cent higher at {big} points on {day}.",
        "Experts expect the debate over {topic} to drag on for weeks.",
        "Lawmakers argued over {topic}; a vote is scheduled for {day}.",
        "Witnesses reported explosions in central {place}.",
        "Around {num}00 people took to the streets of {place} on {day}.",
        "The opposition accused the government of stalling on {topic}.",
        "The football international in {place} passed off largely peacefully on {day}.",
    ],
}

_RU = {
    "actor": [
        "Правительство", "Министерство обороны", "Президент", "Кремль", "НАТО", "Евросоюз",
        "ООН", "Украинская армия", "Оппозиция", "Центробанк", "Марта Ковальчик", "Полиция",
        "Генштаб", "Представитель Белого дома",
    ],
    "place": [
        "в Москве", "в Киеве", "в Курской области", "под Курском", "в Харькове", "в Брюсселе",
        "в Вашингтоне", "в Пекине", "в Сеуле", "в Пхеньяне", "в Варшаве", "в Одессе",
        "в Донецке", "в Белгороде", "в Женеве", "в Стамбуле", "в Тегеране",
    ],
    "topic": [
        "новые санкции", "дальнейшую помощь Украине", "перемирие", "обмен пленными",
        "переброску северокорейских военных", "рост военных расходов", "цены на энергоносители",
        "соглашение об экспорте зерна", "новые пошлины на китайские электромобили",
        "снижение ключевой ставки",
    ],
    "verb": ["объявил", "подтвердил", "раскритиковал", "отверг", "одобрил", "потребовал"],
    "day": ["в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу"],
    "event": [
        "атаки беспилотников", "ожесточённых боёв", "ракетного удара", "протестов", "урагана",
        "крушения поезда", "пожара в жилом доме",
    ],
    "quote": ["историческим шагом", "грубой ошибкой", "поворотным моментом", "провокацией"],
    "headline": [
        "{actor} предупреждает об эскалации", "Ситуация {place}: онлайн",
        "{actor} проведёт переговоры {place}", "Протесты {place} продолжаются",
        "Хрупкое перемирие {place}", "Центробанк сохранил ставку",
        "Цены на энергоносители снова растут", "Атака беспилотников {place}",
    ],
    "sentence": [
        "{actor} {day} {verb} {topic}.",
        "По данным властей, в результате {event} {place} пострадали не менее {num} человек.",
        "Обстановка {place} остаётся напряжённой, считают наблюдатели.",
        "{actor} назвал это решение {quote}.",
        "Переговоры {place} продолжатся {day}, сообщил {actor_lower}.",
        "Индекс Мосбиржи {day} вырос на {small}% до {big} пунктов.",
        "Эксперты ожидают, что дискуссия про {topic} затянется на недели.",
        "Очевидцы сообщили о взрывах в центре города {place}.",
        "{day} {place} на улицы вышли около {num}00 человек.",
        "Оппозиция обвинила власти в том, что они затягивают {topic}.",
    ],
}
# fmt: on
_VOCAB = {"de": _DE, "en": _EN, "ru": _RU}

# fmt: off
_SYLLABLES = [
    "ka", "ro", "vel", "mir", "dun", "tes", "lan", "bor", "ik", "sa", "ne", "vo", "gra", "tur",
    "pel", "zin", "mar", "ost", "fel", "den", "ar", "kul", "bra", "lo", "hen", "sti", "wen",
    "dor", "mak", "ul", "ri",
]
# fmt: on


def invented_word(rng: random.Random) -> str:
    """A capitalised pseudo-word (a name, a place) that never occurs in generated text."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(3, 4))).capitalize() + "x"


# --- text ----------------------------------------------------------------------------------


def _fill(template: str, vocab: dict[str, list[str]], rng: random.Random) -> str:
    actor = rng.choice(vocab["actor"])
    return template.format(
        actor=actor,
        actor_lower=actor[0].lower() + actor[1:],
        place=rng.choice(vocab["place"]),
        topic=rng.choice(vocab["topic"]),
        verb=rng.choice(vocab["verb"]),
        day=rng.choice(vocab["day"]),
        event=rng.choice(vocab["event"]),
        quote=rng.choice(vocab["quote"]),
        num=rng.randint(2, 90),
        small=f"{rng.randint(0, 2)},{rng.randint(0, 9)}",
        big=f"{rng.randint(10, 40)}.{rng.randint(100, 999)}",
    )


def headline(language: str, rng: random.Random) -> str:
    vocab = _VOCAB[language]
    return _fill(rng.choice(vocab["headline"]), vocab, rng)


def sentence(language: str, rng: random.Random) -> str:
    vocab = _VOCAB[language]
    return _fill(rng.choice(vocab["sentence"]), vocab, rng)


def paragraphs(language: str, rng: random.Random, size: int) -> list[str]:
    """Paragraphs of 2-5 sentences, about `size` characters in all."""
    out: list[str] = []
    total = 0
    while total < size:
        para = " ".join(sentence(language, rng) for _ in range(rng.randint(2, 5)))
        out.append(para)
        total += len(para) + 1
    return out


@dataclass(frozen=True, slots=True)
class Article:
    guid: str
    language: str
    title: str
    link: str
    paragraphs: tuple[str, ...]
    category: str
    published: datetime

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)


def article(
    guid: str, language: str, rng: random.Random, size: int, published: datetime
) -> Article:
    title = headline(language, rng)
    slug = "-".join(title.lower().split()[:4]).strip(":;,.!?\"'")
    return Article(
        guid=guid,
        language=language,
        title=title,
        link=f"https://news.example/{language}/{guid}/{escape(slug)}?utm_source=rss",
        paragraphs=tuple(paragraphs(language, rng, size)),
        category=rng.choice(["Politik", "Ausland", "World", "Economy", "Мир", "Wirtschaft"]),
        published=published,
    )


def articles(count: int, seed: int = 1, languages: tuple[str, ...] = LANGUAGES) -> list[Article]:
    """`count` articles, languages in rotation, 400-2,500 characters of text each."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    return [
        article(
            f"a{seed}-{i}",
            languages[i % len(languages)],
            rng,
            rng.randint(400, 2500),
            now - timedelta(minutes=i),
        )
        for i in range(count)
    ]


def rss_feed(
    feed: int,
    items: int,
    seed: int = 1,
    languages: tuple[str, ...] = ("de", "en"),
    now: datetime | None = None,
) -> bytes:
    """One RSS 2.0 document of `items` items, each about 1-4 KB on the wire (HTML in CDATA),
    with guids unique across feeds."""
    rng = random.Random(seed * 1_000_003 + feed)
    now = now or datetime.now(UTC)
    language = languages[feed % len(languages)]
    entries = []
    for i in range(items):
        a = article(
            f"feed{feed}-item{i}",
            language,
            rng,
            rng.randint(800, 3700),
            now - timedelta(minutes=7 * i + rng.randint(0, 6)),
        )
        body = "".join(f"<p>{escape(p, quote=False)}</p>" for p in a.paragraphs)
        entries.append(
            f"<item><title>{escape(a.title, quote=False)}</title>"
            f"<link>{escape(a.link)}</link>"
            f'<guid isPermaLink="false">{a.guid}</guid>'
            f"<pubDate>{format_datetime(a.published)}</pubDate>"
            f"<category>{a.category}</category>"
            f"<description><![CDATA[{body}]]></description></item>"
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Bench feed {feed}</title><link>https://news.example/{feed}/</link>"
        f"<description>synthetic news</description>{''.join(entries)}</channel></rss>"
    )
    return doc.encode("utf-8")


# --- rules ---------------------------------------------------------------------------------

# Terms that occur in generated text, as (de, en, ru) variants of one idea.
# fmt: off
_COMMON = [
    ("nordkoreanische Truppen", "North Korean troops", "северокорейских военных"),
    ("Waffenruhe", "ceasefire", "перемирие"),
    ("Drohnenangriff", "drone attack", "беспилотников"),
    ("Gefangenenaustausch", "prisoner exchange", "обмен пленными"),
    ("Sanktionen", "sanctions", "санкции"),
    ("Energiepreise", "energy prices", "энергоносители"),
    ("Getreide", "grain", "зерна"),
    ("Zentralbank", "central bank", "Центробанк"),
    ("Kursk", "Kursk", "Курск"),
    ("Pjöngjang", "Pyongyang", "Пхеньян"),
    ("Kowalczyk", "Kowalczyk", "Ковальчик"),
    ("Explosionen", "explosions", "взрывах"),
    ("Zölle", "tariffs", "пошлины"),
    ("Verteidigungsausgaben", "defence spending", "военных расходов"),
]
# fmt: on


def poll_rules() -> tuple[RuleConfig, ...]:
    """Ten hand-written rules of the kinds a desk would write (used by bench_poll)."""
    de_en_ru = ("de", "en", "ru")
    return (
        RuleConfig(
            "nk-troops",
            any=("nordkoreanische Truppen", "North Korean troops", "северокорейские военные"),
            query="Kursk OR Курск OR Pjöngjang OR Pyongyang",
            none=("Fußball",),
            languages=de_en_ru,
        ),
        RuleConfig("ceasefire", any=("Waffenruhe", "ceasefire", "перемирие"), languages=de_en_ru),
        RuleConfig(
            "drones-kyiv",
            query=(
                '(Drohnenangriff NEAR/12 Kiew) OR ("drone attack" NEAR/12 Kyiv)'
                " OR (беспилотников NEAR/12 Киеве)"
            ),
            languages=("de", "en", "ru"),
        ),
        RuleConfig(
            "rates",
            query='title:(Zentralbank OR "central bank" OR Центробанк) AND (Zins* OR rate*)',
            languages=de_en_ru,
        ),
        RuleConfig("iran-sanctions", all=("Sanktionen",), any=("Iran",), languages=("de",)),
        RuleConfig(
            "prisoners",
            any=("Gefangenenaustausch", "prisoner exchange", "обмен пленными"),
            languages=de_en_ru,
        ),
        RuleConfig("people", query='"Marta Kowalczyk" OR Vellmer OR Ковальчик'),
        RuleConfig("energy", query='Energiepreise OR "energy prices" OR Gaspreis* -Fußball'),
        RuleConfig(
            "grain-odesa",
            query="(Getreide OR grain OR зерно) AND (Odessa OR Odesa OR Одесса)",
            languages=de_en_ru,
        ),
        RuleConfig("protests", query="title:Proteste OR title:protests OR title:протесты"),
    )


def _quoted(term: str) -> str:
    return f'"{term}"' if " " in term else term


def generated_rules(count: int, seed: int = 7) -> tuple[RuleConfig, ...]:
    """`count` rules: the ten of `poll_rules`, then generated ones cycling through any-lists,
    all/none lists, phrases, OR queries, NEAR, title:, prefixes and negation, in de/en/ru.
    About one term in sixteen occurs in generated text, the rest are invented words."""
    rng = random.Random(seed)
    rules = list(poll_rules()[:count])
    language_sets = [("de", "en"), ("de", "en", "ru"), ("ru",), ("en",), ("de",)]

    def term() -> str:
        if rng.random() < 0.06:
            return rng.choice(rng.choice(_COMMON))
        if rng.random() < 0.3:
            return f"{invented_word(rng)} {invented_word(rng)}"  # a two-word name
        return invented_word(rng)

    i = len(rules)
    while len(rules) < count:
        kind = i % 8
        name = f"gen-{i}"
        langs = rng.choice(language_sets)
        rule: RuleConfig
        if kind == 0:
            rule = RuleConfig(name, any=tuple(term() for _ in range(rng.randint(2, 5))))
        elif kind == 1:
            rule = RuleConfig(name, any=(term(), term()), all=(term(),))
        elif kind == 2:
            rule = RuleConfig(name, query=" OR ".join(_quoted(term()) for _ in range(3)))
        elif kind == 3:
            rule = RuleConfig(
                name, query=f"{_quoted(term())} NEAR/{rng.randint(3, 10)} {_quoted(term())}"
            )
        elif kind == 4:
            rule = RuleConfig(name, query=f"title:({_quoted(term())} OR {_quoted(term())})")
        elif kind == 5:
            rule = RuleConfig(name, any=(term(), term(), term()), none=(invented_word(rng),))
        elif kind == 6:
            prefix = invented_word(rng)[:5]
            rule = RuleConfig(name, query=f"{prefix}* AND ({_quoted(term())} OR {term()})")
        else:
            rule = RuleConfig(
                name, query=f"{_quoted(term())} AND NOT ({_quoted(term())} OR {_quoted(term())})"
            )
        rules.append(
            RuleConfig(
                rule.name,
                any=rule.any,
                all=rule.all,
                none=rule.none,
                query=rule.query,
                languages=langs,
                channels=None,
            )
        )
        i += 1
    return tuple(rules)
