"""Where things live: every Redis key in shared/keys.py; imports run one way (pressroom, services, shared)."""

import re
from pathlib import Path

from shared import keys

ROOT = Path(__file__).resolve().parent.parent.parent
BUILT_ELSEWHERE = re.compile(r"""keys\.PREFIX|\bimport\b.*\bPREFIX\b|["']pr:""")


def test_no_module_but_shared_keys_builds_a_key_from_the_prefix():
    offenders = []
    for package in ("shared", "services", "pressroom"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "shared" / "keys.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BUILT_ELSEWHERE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_key_families_do_not_overlap():
    names = [keys.site_list("home"), keys.SITE_CARDS, keys.SITE_DIRTY, keys.SITE_BUILDING, keys.SITE_ETAGS,
             keys.RELATED_SHOWS + "a", keys.RELATED_SHOWN_IN + "a", keys.subscription("s"), keys.delivery("d"),
             keys.delivery_log("s"), keys.delivery_busy("s"), keys.confirmation_sent("s"), keys.OUTBOX]
    assert len(set(names)) == len(names) and all(n.startswith(f"{keys.PREFIX}:") for n in names)


def test_services_and_shared_never_import_the_pressroom_command():
    """`pressroom` registers the services' commands; an import back would be a cycle (shared.commands instead)."""
    importing = re.compile(r"^\s*(from|import)\s+pressroom\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("shared", "services")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if importing.match(line)
    ]
    assert offenders == []


def test_services_never_import_each_other():
    """Services meet only in shared/ (task names, keys, messages): each can be deployed and scaled alone."""
    importing = re.compile(r"^\s*(?:from|import)\s+services\.(\w+)")
    offenders = []
    for service in sorted(p for p in (ROOT / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        for path in sorted(service.rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = importing.match(line)
                if found and found.group(1) != service.name:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
    assert (ROOT / "services" / "scheduler" / "tasks.py").exists()
