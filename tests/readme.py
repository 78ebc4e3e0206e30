"""The README's command blocks, for the tests that run them as printed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str, index: int = 0) -> str:
    """The `index`th (from 0) ```bash block under a README heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)[index]
