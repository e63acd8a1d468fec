"""`pressroom related-eval` as an operator runs it: a subprocess, a JSONL file, a report on stdout."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import redis

from tests.conftest import ROOT

LAST_LINE = re.compile(r"^[\w.-]+: P@5=(\d\.\d{3}) P@10=(\d\.\d{3}) index_ms=(\d+\.\d{2}) query_ms=(\d+\.\d{2})$")
DESKS = {
    "Sports": "match goal striker league coach stadium season cup keeper derby injury transfer".split(),
    "Business": "shares profit market investor bank earnings merger stock revenue inflation bond dividend".split(),
    "Sci/Tech": "software chip internet space rocket planet telescope browser server satellite robot laptop".split(),
    "World": "election minister parliament troops border ceasefire embassy summit rebels treaty vote protest".split(),
}
COMMON = "the a of and in on for with after before over".split()


def write_records(path, per_desk: int = 12) -> None:
    rng = random.Random(4)
    lines = []
    for n in range(per_desk):
        for desk, vocab in DESKS.items():
            title = " ".join(rng.sample(vocab, 4)).capitalize()
            body = " ".join(rng.choice(vocab if rng.random() < 0.6 else COMMON) for _ in range(25))
            lines.append(json.dumps({"id": f"{desk}-{n}", "title": title, "body": body, "category": desk}))
    path.write_text("\n".join(lines) + "\n")


def run_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pressroom.cli", "related-eval", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )


def test_eval_on_a_given_redis_prints_the_report_and_leaves_no_keys(tmp_path, redis_server):
    records = tmp_path / "news.jsonl"
    write_records(records)
    done = run_eval(str(records), "--redis-url", redis_server.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    p5, p10, index_ms, query_ms = map(float, match.groups())
    assert p5 > 0.9 and p10 > 0.9  # four desks with disjoint vocabularies are easy to tell apart
    assert index_ms > 0 and query_ms > 0
    assert "48 articles" in lines[0]
    assert "index [" in done.stderr and "48/48" in done.stderr  # progress on stderr, not in the report
    client = redis.Redis.from_url(redis_server.url)
    assert list(client.scan_iter(match="pr:releval:*")) == []
    client.close()


def test_eval_starts_its_own_redis_when_given_none(tmp_path):
    records = tmp_path / "news.jsonl"
    write_records(records, per_desk=3)
    done = run_eval(str(records))
    assert done.returncode == 0, done.stderr
    assert "embedded Redis" in done.stdout
    assert LAST_LINE.match(done.stdout.strip().splitlines()[-1])


def test_eval_rejects_a_bad_record_with_its_line_number(tmp_path):
    records = tmp_path / "bad.jsonl"
    records.write_text('{"id": "a", "title": "t", "body": "b", "category": "c"}\n{"id": "b", "title": "t"}\n')
    done = run_eval(str(records))
    assert done.returncode == 2
    assert "bad.jsonl:2" in done.stderr and "category" in done.stderr


def test_eval_reports_every_set_beside_same_run_tfidf_and_bm25(tmp_path):
    easy, mixed = tmp_path / "easy.jsonl", tmp_path / "mixed.jsonl"
    write_records(easy)
    rows = [json.loads(line) for line in easy.read_text().splitlines()]
    for i, row in enumerate(rows):  # every third label is wrong: no method can be perfect on it
        if i % 3 == 0:
            row["category"] = "Noise"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_eval(str(easy), str(mixed), "--strict")
    out = done.stdout
    table = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("easy.jsonl", "mixed"))
             and "P@5=" not in line}
    assert set(table) == {"easy.jsonl", "mixed.jsonl"}, out
    engine5, tfidf5, bm255 = (float(table["mixed.jsonl"][i]) for i in (2, 4, 6))
    assert 0 < tfidf5 < 1 and 0 < bm255 < 1 and 0 < engine5 < 1
    assert float(table["easy.jsonl"][4]) > tfidf5  # the references really ran on each set
    holds = all(float(row[2]) >= float(row[4]) - 5e-4 and float(row[3]) >= float(row[5]) - 5e-4
                for row in table.values())
    assert done.returncode == (0 if holds else 1), out
    assert ("engine at or above TF-IDF on every set" in out) == holds
