"""Build a long-article labelled set for `pressroom related-eval` from the BBC News corpus.

Source: the BBC News dataset of Greene & Cunningham (ICML 2006), 2,225 full-length articles
from the BBC news website, 2004-2005, in five topical areas (business, entertainment,
politics, sport, tech); http://mlg.ucd.ie/datasets/bbc.html. All rights in the articles
are owned by the BBC: the set is for development and research, so this script builds it
locally and nothing of it is committed or shipped.

The raw layout is `bbc/<category>/<NNN>.txt` (headline on the first line, body after).
A copy sits in the public repository dejanbatanjac/bbc-article-classify-bert; with the
search tool's fetch it arrives as a bare git directory, which this script reads directly:

    python bench/data/build_bbc.py --git /work/.mirror/dejanbatanjac+bbc-article-classify-bert/repo \
        --out bench/data/bbc_long.jsonl

or from an unpacked folder: `--dir path/to/bbc`. Records are written in a seeded random
order (arrival order is recency for the engine), one JSON object a line:
{id, title, body, category}.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from pathlib import Path

CATEGORIES = ("business", "entertainment", "politics", "sport", "tech")


def from_git(git_dir: str) -> dict[str, str]:
    listing = subprocess.run(
        ["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", "HEAD", "bbc/"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    out = {}
    for name in listing:
        if name.endswith(".txt") and name.split("/")[1] in CATEGORIES:
            raw = subprocess.run(
                ["git", "--git-dir", git_dir, "show", f"HEAD:{name}"], check=True, capture_output=True
            ).stdout
            out[name] = raw.decode("latin-1")
    return out


def from_dir(root: str) -> dict[str, str]:
    base = Path(root)
    return {
        f"bbc/{p.parent.name}/{p.name}": p.read_bytes().decode("latin-1")
        for category in CATEGORIES
        for p in sorted((base / category).glob("*.txt"))
    }


def records(files: dict[str, str], seed: int) -> list[dict]:
    out, seen = [], set()
    for name in sorted(files):
        _, category, filename = name.split("/")
        lines = [line.strip() for line in files[name].splitlines()]
        title = next((line for line in lines if line), "")
        body = " ".join(line for line in lines[lines.index(title) + 1 :] if line)
        if not title or not body or (title, body) in seen:
            continue  # the corpus holds a few exact duplicates
        seen.add((title, body))
        out.append({"id": f"bbc-{category}-{filename[:-4]}", "title": title, "body": body, "category": category})
    random.Random(seed).shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--git", help="a bare git directory holding bbc/<category>/<NNN>.txt")
    source.add_argument("--dir", help="an unpacked bbc/ folder")
    parser.add_argument("--out", default="bench/data/bbc_long.jsonl")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    files = from_git(args.git) if args.git else from_dir(args.dir)
    rows = records(files, args.seed)
    with open(args.out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    words = sorted(len(r["body"].split()) for r in rows)
    print(f"{args.out}: {len(rows)} articles, median body {words[len(words) // 2]} words")


if __name__ == "__main__":
    main()
