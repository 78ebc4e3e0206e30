"""Progress lines for long loops, readable both in a terminal and in Airflow task logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], label: str, total: int | None = None, every: float = 0.1) -> Iterator[T]:
    """Yield from `items`, printing `label: k/total (pct) elapsed` about every `every` of the way."""
    total = total if total is not None else len(items)  # type: ignore[arg-type]
    step = max(1, int(total * every))
    started = time.monotonic()
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            elapsed = time.monotonic() - started
            print(f"{label}: {done}/{total} ({done / max(total, 1):.0%}) {elapsed:.1f}s", file=sys.stderr, flush=True)
