"""A hand-made set of news article pages for the full-text extraction tests and benchmark.

Each `ArticlePage` holds the page's HTML, the hand-marked body (the paragraphs a reader would
call the article) and words placed on purpose: `body_word` only in the body, `decoys` only
in the boilerplate around it (navigation, cookie banner, related-article box, comments,
footer). Written for these tests; the texts are invented.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArticlePage:
    name: str
    html: str
    body: tuple[str, ...]  # the hand-marked article paragraphs
    body_word: str  # stands only in the body
    decoys: tuple[str, ...]  # stand only in the boilerplate


def _nav(*words: str) -> str:
    return (
        "<nav class='main-nav'><ul>"
        + "".join(f"<li><a href='/{w.lower()}'>{w}</a></li>" for w in words)
        + "</ul></nav>"
    )


def _cookie(text: str) -> str:
    return (
        f"<div id='cookie-consent' class='cookie-banner' role='dialog'><p>{text}</p>"
        "<button>OK</button><button>Settings</button></div>"
    )


def _related(title: str, *links: str) -> str:
    return (
        f"<aside class='related-articles'><h3>{title}</h3><ul>"
        + "".join(f"<li><a href='/r{i}'>{t}</a></li>" for i, t in enumerate(links))
        + "</ul></aside>"
    )


def _comments(*texts: str) -> str:
    return (
        "<section id='comments' class='comments'><h3>Comments</h3>"
        + "".join(
            f"<div class='comment'><span class='author'>user{i}</span><p>{t}</p></div>"
            for i, t in enumerate(texts)
        )
        + "</section>"
    )


def _page(lang: str, title: str, head: str, body: tuple[str, ...], tail: str) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in body)
    return (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><header>{head}</header><main><article><h1>{title}</h1>"
        f"<div class='article-body'>{paragraphs}</div></article>{tail}</main>"
        "<footer><p>Imprint · Privacy · Contact · Careers</p></footer></body></html>"
    )


_DE_BODY = (
    "Die Gemeinde Wiesental hat am Montagabend beschlossen, die alte Brücke über den Mühlbach "
    "bis zum Herbst vollständig zu sperren. Gutachter hatten zuvor Risse in mehreren Pfeilern "
    "festgestellt.",
    "Bürgermeisterin Henrike Salzgeber sagte nach der Sitzung, man habe keine andere Wahl "
    "gehabt. Eine Umleitung über die Landstraße soll ab kommender Woche ausgeschildert sein.",
    "Die Kosten für den Neubau schätzt die Verwaltung auf knapp vier Millionen Euro. Ein Teil "
    "davon soll aus einem Förderprogramm des Landes kommen, über das im Frühjahr entschieden "
    "wird.",
)
_EN_BODY = (
    "Harbour authorities in Port Elmsworth closed the northern quay on Thursday after a "
    "container crane partly collapsed during high winds, officials said.",
    "No one was injured, according to a statement from the port operator, which said "
    "engineer Marguerite Obuya was leading the inspection of the remaining cranes.",
    "Shipping companies were told to expect delays of up to three days while cargo is moved "
    "to the southern terminal, which has less space for larger vessels.",
    "The operator said a full report would be published once the inspection is complete.",
)
_RU_BODY = (
    "В городе Северогорске в среду открылся новый мост через реку Ивушку, строительство "
    "которого продолжалось почти четыре года.",
    "Глава города Аркадий Мельничук заявил, что мост разгрузит центральные улицы и сократит "
    "время в пути для жителей левобережья.",
    "По словам подрядчика, на строительство ушло более двенадцати тысяч тонн металла, а "
    "движение общественного транспорта по мосту начнётся в следующем месяце.",
)
_UK_BODY = (
    "У селищі Зелений Гай місцева рада ухвалила рішення відремонтувати стару школу до початку "
    "навчального року.",
    "Директорка школи Оксана Приходько розповіла, що ремонт охопить дах, вікна та систему "
    "опалення, а учні тимчасово навчатимуться в будинку культури.",
    "Кошти на ремонт виділили з обласного бюджету, а частину робіт виконають місцеві "
    "підприємці безкоштовно.",
)
_FR_BODY = (
    "La commune de Belcastel a annoncé mardi la fermeture temporaire de sa médiathèque "
    "après la découverte d'une fuite importante dans la toiture.",
    "Le maire, Gaspard Lherminier, a précisé que les travaux devraient durer au moins six "
    "semaines et que les prêts de livres continueraient dans la salle des fêtes.",
    "Les associations qui utilisaient les salles de lecture seront relogées à l'école "
    "primaire pendant la durée du chantier.",
)
_SHORT_BODY = (
    "Die Polizei sucht nach einem Unfall auf der Kreisstraße zwischen Ober- und Unterhausen "
    "Zeugen. Ein Lieferwagen war am frühen Morgen von der Fahrbahn abgekommen; der Fahrer, "
    "ein Mann aus Quendlingen, wurde leicht verletzt.",
)


PAGES: tuple[ArticlePage, ...] = (
    ArticlePage(
        "de-bridge",
        _page(
            "de",
            "Brücke in Wiesental wird gesperrt",
            _nav("Startseite", "Politik", "Salzburg", "Sport", "Wetter")
            + _cookie("Wir nutzen Cookies und Tracking von Partnern wie Zuckerwatte Media."),
            _DE_BODY,
            _related(
                "Mehr aus der Region",
                "Neuer Radweg nach Tannhausen eröffnet",
                "Stadtfest in Kleeburg abgesagt",
                "Feuerwehr Kleeburg rückt zu Großeinsatz aus",
            )
            + _comments(
                "Endlich wird was getan!", "Das hätte man vor Jahren in Kleeburg sehen müssen."
            ),
        ),
        _DE_BODY,
        "Salzgeber",
        ("Zuckerwatte", "Tannhausen", "Kleeburg"),
    ),
    ArticlePage(
        "en-port",
        _page(
            "en",
            "Crane collapse closes quay in Port Elmsworth",
            _nav("Home", "World", "Business", "Fernhill", "Opinion")
            + _cookie("We and our 312 partners such as Quillbright use cookies."),
            _EN_BODY,
            _related(
                "Most read",
                "Fernhill council approves budget",
                "Storm warnings for the Tidewater coast",
                "Ferry fares to rise again in Tidewater",
            )
            + _comments("Terrible news for the harbour.", "Tidewater had the same last year."),
        ),
        _EN_BODY,
        "Obuya",
        ("Quillbright", "Tidewater", "Fernhill"),
    ),
    ArticlePage(
        "ru-bridge",
        _page(
            "ru",
            "В Северогорске открыли новый мост",
            _nav("Главная", "Политика", "Экономика", "Заречье")
            + _cookie("Мы используем файлы cookie и сервисы Лисичкин-Аналитика."),
            _RU_BODY,
            _related(
                "Читайте также",
                "В Заречье отремонтируют дороги",
                "Погода в Заречье на выходные",
                "Новый парк откроется в Каменке",
            )
            + _comments("Наконец-то!", "А когда в Каменке построят?"),
        ),
        _RU_BODY,
        "Мельничук",
        ("Лисичкин", "Заречье", "Каменке"),
    ),
    ArticlePage(
        "uk-school",
        _page(
            "uk",
            "У Зеленому Гаю відремонтують школу",
            _nav("Головна", "Новини", "Вишнівка", "Спорт")
            + _cookie("Ми використовуємо файли cookie партнера Сонечко-Медіа."),
            _UK_BODY,
            _related(
                "Інші новини",
                "У Вишнівці відкрили амбулаторію",
                "Свято врожаю у Вишнівці",
                "Новий автобус до Дубового",
            )
            + _comments("Дуже добре!", "А в Дубовому коли?"),
        ),
        _UK_BODY,
        "Приходько",
        ("Сонечко", "Вишнівка", "Дубового"),
    ),
    ArticlePage(
        "fr-library",
        _page(
            "fr",
            "La médiathèque de Belcastel fermée pour travaux",
            _nav("Accueil", "Région", "Sports", "Montferrat")
            + _cookie("Nous utilisons des cookies avec nos partenaires comme Pistachio Régie."),
            _FR_BODY,
            _related(
                "À lire aussi",
                "Montferrat : le marché de Noël annulé",
                "Un nouveau maire à Roquebise",
                "Roquebise inaugure son stade",
            )
            + _comments("Dommage pour les enfants.", "À Roquebise aussi il pleut dedans."),
        ),
        _FR_BODY,
        "Lherminier",
        ("Pistachio", "Montferrat", "Roquebise"),
    ),
    ArticlePage(
        "de-short-long-comments",
        _page(
            "de",
            "Unfall auf der Kreisstraße",
            _nav("Startseite", "Polizeibericht", "Lindenbrunn")
            + _cookie("Cookies helfen uns, Ihnen Inhalte von Brausewind zu zeigen."),
            _SHORT_BODY,
            _related(
                "Polizeimeldungen",
                "Einbruch in Lindenbrunn",
                "Radfahrer in Lindenbrunn verletzt",
                "Verkehrskontrolle bei Erlenhof",
            )
            + _comments(
                *(
                    f"Kommentar {i}: Die Straße ist seit Jahren gefährlich, in Erlenhof "
                    "passiert das ständig, und niemand tut etwas dagegen."
                    for i in range(8)
                )
            ),
        ),
        _SHORT_BODY,
        "Quendlingen",
        ("Brausewind", "Lindenbrunn", "Erlenhof"),
    ),
)
