"""The README stays a short user guide that names every step, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from ml.pipeline import DAILY_STEPS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_readme_is_short_and_its_table_names_every_daily_step():
    text = README.read_text()
    assert len(text.splitlines()) <= 220
    table = text.split("\n## The daily DAG, step by step\n", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `([a-z_]+)(?:\.\*)?`", table, flags=re.M)
    assert named == list(DAILY_STEPS)  # every step, in the order the DAG runs them


def test_every_relative_link_in_the_readme_and_docs_exists():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
            checked += 1
    assert checked >= 8
