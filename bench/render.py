"""Render benchmark: pages per second of Pressroom's article page function, against bare Jinja2 + nh3.

Pressroom's figure is `services.render.pages.article_page(article, path, site, photo)` on
articles loaded with `shared.ninjs.load_article`, each with five related, five editor's
choice and five popular cards and a fake processed photo (the shape of
`ProcessedPhoto`, as in tests/render/test_pages.py). The baseline, in the same process
and run, renders the very same `article.html` and `base.html` text with a minimal Jinja2
Environment and the same context computed beforehand, sanitising the body with one
`nh3.Cleaner` of the same policy: what rendering this page costs without Pressroom's
wrapper. Both must produce byte-identical HTML for every article, or the run fails, so
the two sides demonstrably do the same page.

Rounds alternate the two sides so that drift on a shared machine hits both; the median
round is reported. A breakdown then times, per page, the pieces of wrapper work the
baseline leaves out, so a gap can be traced to code.

The article generator here (headlines, bodies, sections and topics sampled from
`../shared/data/dev_news.jsonl`, never copied into the repository) is shared with
bench/site.py, which renders the same kind of articles through the whole stack and Hugo.

    .venv/bin/python bench/render.py [--articles 500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
NEWS = ROOT.parent / "shared" / "data" / "dev_news.jsonl"
TEMPLATES = ROOT / "services" / "render" / "templates"
SITE_URL = "https://news.example.test"

SUBJECTS = {
    "World": ["Elections", "Diplomacy", "Conflict", "Refugees", "Human rights", "United Nations", "Terrorism",
              "Climate", "Protests", "Aid", "Nuclear talks", "Trade talks"],
    "Sports": ["Football", "Baseball", "Basketball", "Tennis", "Golf", "Olympics", "Cycling", "Formula One",
               "Cricket", "Transfers", "Doping", "Ice hockey"],
    "Business": ["Markets", "Oil", "Earnings", "Mergers", "Interest rates", "Retail", "Airlines", "Banking",
                 "Jobs", "Housing", "Currencies", "Inflation"],
    "Sci/Tech": ["Software", "Space", "Internet", "Security", "Mobile", "Chips", "Science", "Health",
                 "Open source", "Search", "Games", "Telecoms"],
}
PLACES = ["Afghanistan", "Argentina", "Australia", "Azerbaijan", "Brazil", "Britain", "Canada", "China", "Egypt",
          "France", "Georgia", "Germany", "Greece", "India", "Indonesia", "Iran", "Iraq", "Israel", "Italy", "Japan",
          "Kenya", "Mexico", "Netherlands", "Nigeria", "Pakistan", "Poland", "Russia", "Saudi Arabia", "South Africa",
          "South Korea", "Spain", "Sudan", "Sweden", "Switzerland", "Syria", "Turkey", "Ukraine", "United States",
          "Venezuela", "Vietnam"]
FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
         "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sami", "Tara"]
LAST = ["Abbott", "Bakker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen",
        "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka"]
ORGANISATIONS = ["Reuters", "Associated Press", "United Nations", "European Union", "NATO", "World Bank", "IMF",
                 "OPEC", "FIFA", "IOC", "Microsoft", "Google", "Apple", "IBM", "Intel", "NASA", "Red Cross",
                 "World Health Organization", "Federal Reserve", "European Central Bank"]
PREFIXES = ["", "Update", "Analysis", "Explainer", "In pictures", "Live", "Opinion", "Q&A"]
COLLECTION = "Editor's choice"


@dataclass
class Story:
    """One generated article: the NINJS document and what Hugo's Markdown copy needs."""

    doc: dict
    headline: str
    section: str
    tags: list[str]
    published: datetime
    paragraphs: list[list[tuple]] = field(repr=False)  # each: [("text"|"em"|"strong", s) | ("link", s, href)]
    quote: str = ""

    def markdown(self) -> str:
        """The body as Markdown, from the same paragraphs the HTML body is made of."""
        parts = ["".join(_md_span(span) for span in para) for para in self.paragraphs]
        if self.quote:
            parts.append("> " + _md_text(self.quote))
        return "\n\n".join(parts) + "\n"


def _md_text(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def _md_span(span: tuple) -> str:
    kind, text = span[0], _md_text(span[1])
    if kind == "em":
        return f"*{text}*"
    if kind == "strong":
        return f"**{text}**"
    if kind == "link":
        return f"[{text}]({span[2]})"
    return text


def _html_span(span: tuple) -> str:
    kind, text = span[0], html.escape(span[1], quote=False)
    if kind == "em":
        return f"<em>{text}</em>"
    if kind == "strong":
        return f"<strong>{text}</strong>"
    if kind == "link":
        return f'<a href="{html.escape(span[2])}" target="_blank" data-track="body-link">{text}</a>'
    return text


def load_news(path: Path = NEWS) -> dict[str, list[dict]]:
    """dev_news.jsonl items by category; stops the run with a clear message if the file is missing."""
    if not path.exists():
        raise SystemExit(f"bench: {path} not found (pass --news PATH; the data set is never in the repository)")
    by_category: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        by_category.setdefault(item["category"], []).append(item)
    return by_category


def make_stories(count: int, news: dict[str, list[dict]], run: str, end: datetime | None = None,
                 days: float = 30.0, seed: int = 1, start: int = 0) -> list[Story]:
    """`count` distinct articles, oldest first, published evenly over `days` up to `end`.

    `start` offsets the choice of lead items, so a second batch does not repeat the first.

    Headlines, bodies and the section come from the news items (a body is 6 to 12 items of
    one category, a realistic 1-3 kB); topics, places, people and organisations from fixed
    pools, so topic pages fill up as they would on a real site. Bodies carry the markup a
    CMS sends (classes, inline styles, tracking attributes, the odd embed script) so the
    sanitiser has real work. Every twelfth article is in the Editor's choice collection.
    """
    rng = random.Random(seed)
    end = end or datetime.now(UTC).replace(microsecond=0)
    step = timedelta(days=days) / max(count, 1)
    categories = sorted(news)
    people = [f"{f} {last}" for f in FIRST for last in LAST]
    stories = []
    for i in range(count):
        section = categories[(start + i) % len(categories)]
        items = news[section]
        n = (start + i) // len(categories)
        lead = items[n % len(items)]
        prefix = PREFIXES[(n // len(items)) % len(PREFIXES)]
        headline = f"{prefix}: {lead['title']}" if prefix else lead["title"]
        paragraphs = [[("text", lead["body"])]]
        for item in rng.sample(items, rng.randint(5, 11)):
            words = item["body"].split(" ")
            cut = rng.randrange(len(words))
            kind = rng.choice(("text", "text", "em", "strong", "link"))
            span = ("link", " ".join(words[cut:cut + 4]), f"https://example.org/{item['id']}") if kind == "link" \
                else (kind, " ".join(words[cut:cut + 4]))
            paragraphs.append([("text", " ".join(words[:cut]) + " "), span, ("text", " " + " ".join(words[cut + 4:]))])
        subjects = rng.sample(SUBJECTS.get(section, SUBJECTS["World"]), 2)
        places = rng.sample(PLACES, rng.randint(1, 2))
        persons = rng.sample(people, rng.randint(0, 2))
        orgs = rng.sample(ORGANISATIONS, rng.randint(0, 1))
        published = end - step * (count - 1 - i)
        quote = rng.choice(items)["title"] if i % 8 == 3 else ""
        body = "".join(
            f'<p class="body-text" style="margin:0">{"".join(_html_span(s) for s in para)}</p>' for para in paragraphs
        )
        if quote:
            body += (f'<blockquote class="twitter-tweet"><p lang="en">{html.escape(quote)}</p></blockquote>'
                     '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>')
        subject = [{"name": section, "scheme": "section"}, *({"name": s} for s in subjects)]
        if i % 12 == 5:
            subject.append({"name": COLLECTION, "scheme": "collection"})
        doc = {
            "uri": f"urn:bench:{run}:{i}",
            "type": "text",
            "version": "1",
            "versioncreated": published.isoformat(),
            "firstcreated": published.isoformat(),
            "pubstatus": "usable",
            "language": "en",
            "headline": headline,
            "byline": rng.choice(people) + rng.choice(["", "", " with Reuters", " and " + rng.choice(people)]),
            "located": places[0],
            "description_text": lead["body"][:300],
            "subject": subject,
            "place": [{"name": p} for p in places],
            "person": [{"name": p} for p in persons],
            "organisation": [{"name": o} for o in orgs],
            "body_html": body,
        }
        tags = [*subjects, *places, *persons, *orgs]
        stories.append(Story(doc, headline, section, tags, published, paragraphs, quote))
    return stories


def fake_photo(n: int) -> SimpleNamespace:
    """A ProcessedPhoto-shaped object: three JPEG and three WebP widths and the three crops."""
    digest = f"{n:064x}"

    def rendition(width: int, height: int, ext: str) -> SimpleNamespace:
        key = f"photos/v1/{digest[:2]}/{digest}/{width}x{height}.{ext}"
        return SimpleNamespace(width=width, height=height, key=key, url=f"{SITE_URL}/{key}", mimetype=f"image/{ext}")

    widths = ((320, 180), (640, 360), (1280, 720))
    return SimpleNamespace(
        digest=digest, width=1600, height=900,
        jpeg=tuple(rendition(w, h, "jpg") for w, h in widths),
        webp=tuple(rendition(w, h, "webp") for w, h in widths),
        crops={"16x9": rendition(1200, 675, "jpg"), "4x3": rendition(1200, 900, "jpg"),
               "1x1": rendition(1200, 1200, "jpg")},
    )


@dataclass
class Case:
    """One page to render: the inputs of `article_page` and the baseline's precomputed context."""

    article: object
    path: str
    site: object
    photo: object
    context: dict = field(default_factory=dict)


def make_cases(count: int, news: dict[str, list[dict]]) -> list[Case]:
    from services.render.pages import SiteContext, news_article_ld
    from services.render.publish import page_path
    from shared import keys
    from shared.ninjs import load_article

    stories = make_stories(count, news, "render")
    cards = [{"id": keys.article_id(s.doc["uri"]), "headline": s.headline,
              "url": f"{SITE_URL}/{s.published:%Y/%m/%d}/{keys.slugify(s.headline)}/"} for s in stories]
    cases = []
    for i, story in enumerate(stories):
        doc = dict(story.doc)
        doc["associations"] = {"featuremedia": {
            "type": "picture", "mimetype": "image/jpeg", "description_text": f"Photo for {story.headline}",
            "byline": "Bench Photographer", "renditions": {"original": {"href": f"https://photos.example.org/{i}.jpg",
                                                                         "mimetype": "image/jpeg"}}}}
        article = load_article(doc)
        pick = [cards[(i * 31 + k * 7 + 1) % len(cards)] for k in range(15)]
        site = SiteContext(site_url=SITE_URL, api_url="https://api.example.test",
                           related=pick[:5], editors_choice=pick[5:10], popular=pick[10:])
        path = page_path(article)
        photo = fake_photo(i)
        canonical = f"{site.site_url}/{path.strip('/')}/"
        published = article.published_at
        updated = article.versioncreated if article.versioncreated and published and \
            article.versioncreated > published else None
        context = {
            "article": article, "canonical": canonical, "updated": updated, "site": site, "photo": photo,
            "topics": [t for t in article.topics if t.scheme not in ("section", "collection")],
            "slugify": keys.slugify, "ld": news_article_ld(article, canonical, site, photo, updated),
        }
        cases.append(Case(article, path, site, photo, context))
    return cases


def bare_environment():
    """The baseline: Jinja2 with the two template texts in memory and the filters the page uses."""
    from jinja2 import DictLoader, Environment
    from markupsafe import Markup

    def tojson_ld(value) -> Markup:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704

    env = Environment(
        loader=DictLoader({name: (TEMPLATES / name).read_text() for name in ("article.html", "base.html")}),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
    )
    env.filters["isodate"] = lambda d: d.isoformat() if isinstance(d, datetime) else ""
    env.filters["longdate"] = lambda d: d.strftime("%-d %B %Y, %H:%M UTC") if isinstance(d, datetime) else ""
    env.filters["tojson_ld"] = tojson_ld
    return env


def bare_cleaner():
    """One nh3.Cleaner with Pressroom's own sanitising policy, built once."""
    import nh3

    from services.render import sanitize

    return nh3.Cleaner(
        tags=sanitize.TAGS, attributes=sanitize.ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        clean_content_tags={"script", "style", "iframe", "object", "embed", "noscript", "template"},
        link_rel="noopener noreferrer",
    ).clean


def timed(fn, cases: list[Case]) -> float:
    started = time.perf_counter()
    for case in cases:
        fn(case)
    return time.perf_counter() - started


def breakdown(cases: list[Case], clean) -> list[tuple[str, float]]:
    """Microseconds per page of each piece of work `article_page` does that the baseline does not."""
    from services.render.pages import environment, news_article_ld
    from services.render.sanitize import article_body

    env = environment()
    parts = [
        ("sanitise: nh3.clean with the policy passed per call (sanitize.article_body)",
         lambda c: article_body(c.article.body_html, c.article.body_text)),
        ("sanitise: one prebuilt nh3.Cleaner, same policy (the baseline)", lambda c: clean(c.article.body_html)),
        ("environment().get_template('article.html') (+ 'base.html' at render)",
         lambda c: (env.get_template("article.html"), env.get_template("base.html"))),
        ("news_article_ld + authors (JSON-LD dict)",
         lambda c: news_article_ld(c.article, c.context["canonical"], c.site, c.photo, None)),
    ]
    out = []
    for label, fn in parts:
        best = min(timed(fn, cases) for _ in range(3))
        out.append((label, best / len(cases) * 1e6))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=500, help="distinct articles per round")
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per side (median reported)")
    parser.add_argument("--news", type=Path, default=NEWS, help="dev_news.jsonl to sample text from")
    args = parser.parse_args(argv)

    from services.render.pages import article_page

    cases = make_cases(args.articles, load_news(args.news))
    env = bare_environment()
    clean = bare_cleaner()

    def pressroom(case: Case) -> str:
        return article_page(case.article, case.path, case.site, case.photo)

    template = env.get_template("article.html")

    def bare(case: Case) -> str:
        return template.render(body=clean(case.article.body_html), **case.context)

    mismatched = [c.path for c in cases if pressroom(c) != bare(c)]  # also the warm-up
    if mismatched:
        print(f"bench: FAILED: baseline HTML differs from article_page for {len(mismatched)} articles, "
              f"e.g. {mismatched[0]}", file=sys.stderr)
        return 1
    sizes = [len(pressroom(c).encode()) for c in cases]
    body_sizes = [len(c.article.body_html.encode()) for c in cases]
    print(f"render benchmark: {len(cases)} articles x {args.rounds} rounds per side, one thread; pages "
          f"{statistics.median(sizes) / 1024:.1f} KiB median, NINJS bodies {statistics.median(body_sizes)} bytes "
          f"median; baseline output checked byte-identical", flush=True)

    times: dict[str, list[float]] = {"pressroom": [], "bare": []}
    for r in range(args.rounds):
        order = (("pressroom", pressroom), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("pressroom", pressroom))
        for name, fn in order:
            times[name].append(timed(fn, cases))
    rate = {name: len(cases) / statistics.median(values) for name, values in times.items()}
    spread = {name: (len(cases) / max(values), len(cases) / min(values)) for name, values in times.items()}

    print(f"\n{'target':<52} {'pages/s':>9} {'ms/page':>8}   range of rounds")
    for name, label in (("pressroom", "Pressroom article_page"), ("bare", "bare Jinja2 + nh3.Cleaner (same template)")):
        lo, hi = spread[name]
        print(f"{label:<52} {rate[name]:>9.1f} {1000 / rate[name]:>8.3f}   {lo:.0f}-{hi:.0f}/s")
    print(f"{'ratio Pressroom / bare':<52} {rate['pressroom'] / rate['bare']:>9.3f}")
    print("\nper-page cost of the pieces (best of 3 passes):")
    for label, micros in breakdown(cases, clean):
        print(f"  {micros:8.1f} us  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
