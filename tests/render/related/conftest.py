"""Fixtures for the related-articles tests: a real Redis, one key prefix per test, a small newsroom."""

from __future__ import annotations

import uuid

import pytest
import redis

from services.render.related import RelatedDoc, RelatedIndex

# Three desks, four stories each: enough for lists to have a right answer.
CORPUS = {
    "football": [
        ("Rovers beat City in cup derby", "Rovers striker Diaz scored twice as the club beat City 3-1 in the cup "
         "derby at a packed stadium. The manager praised the defence and the goalkeeper after the match."),
        ("City sack manager after derby defeat", "City dismissed their manager after the cup derby defeat to Rovers. "
         "The club board said the team needed a new coach before the league season resumes."),
        ("Diaz named player of the month", "Rovers striker Diaz was named league player of the month after scoring "
         "seven goals, including two in the cup derby against City."),
        ("Goalkeeper injury blow for Rovers", "Rovers will be without their first-choice goalkeeper for the league "
         "match after he injured a knee in training, the club manager confirmed."),
    ],
    "rates": [
        ("Central bank raises interest rates", "The central bank raised its benchmark interest rate by a quarter "
         "point to fight inflation, and signalled that further rate increases were likely this year."),
        ("Mortgage costs climb after rate rise", "Lenders raised mortgage rates for homeowners after the central "
         "bank increase, adding to household costs as inflation squeezes budgets."),
        ("Inflation eases but stays above target", "Consumer price inflation eased slightly last month but remains "
         "well above the central bank target, economists said, keeping pressure on interest rates."),
        ("Markets slide on rate worries", "Stock markets fell and bond yields rose as investors bet the central "
         "bank would keep raising interest rates to tame inflation."),
    ],
    "space": [
        ("Rover finds ancient lake bed on Mars", "The Mars rover found rocks that formed in an ancient lake, "
         "scientists at the space agency said, strengthening the case that the planet once held water."),
        ("Space agency delays Mars sample return", "The space agency postponed the mission to return rock samples "
         "from Mars, citing the rising cost of the rocket and the lander."),
        ("Astronomers spot water vapour on exoplanet", "Astronomers using a space telescope detected water vapour "
         "in the atmosphere of a distant planet orbiting a small star."),
        ("Rocket launch puts telescope in orbit", "A rocket carrying a new space telescope lifted off and placed "
         "the observatory in orbit, the agency said, beginning a mission to study distant planets."),
    ],
}


def corpus_docs(language: str = "en") -> list[tuple[str, RelatedDoc]]:
    """(desk, doc) for every story; ids say the desk, times follow the listing order."""
    out = []
    for desk, stories in CORPUS.items():
        for i, (title, body) in enumerate(stories):
            doc = RelatedDoc(f"{desk}-{i}", language, title, body, (), 1_700_000_000.0 + 60 * len(out))
            out.append((desk, doc))
    return out


@pytest.fixture
def rclient(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"test:rel:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def index(rclient, prefix) -> RelatedIndex:
    yield RelatedIndex(rclient, prefix=prefix)


@pytest.fixture
def newsroom(index) -> RelatedIndex:
    """The index with the whole corpus in it, indexed one story at a time."""
    for _, doc in corpus_docs():
        index.index(doc)
    return index


def lists_after_indexing(client: redis.Redis, docs: list[RelatedDoc], k: int = 5) -> dict[str, list[str]]:
    """Every article's top `k` after indexing `docs` in the given order into a fresh index (dropped after)."""
    index = RelatedIndex(client, prefix=f"test:rel:{uuid.uuid4().hex[:10]}")
    try:
        for doc in docs:
            index.index(doc)
        return {doc.id: index.query(doc.id, k) for doc in docs}
    finally:
        index.drop()
