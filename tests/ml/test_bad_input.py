"""Bad export files, generated: each ends as a one-line refusal that changes nothing, or lands with its bad
values kept for quarantine; never a traceback, never a partial landing, never a lost row."""

from __future__ import annotations

import collections
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.errors import LandingError
from ml.ingest.landing import ingest

COLUMNS = ["event_id", "event_at", "event_type", "user_id", "product_id", "category", "price", "quantity", "session_id"]
TRIED: collections.Counter = collections.Counter()


def good_rows(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "event_at": [f"2026-03-02T10:{i % 60:02d}:00Z" for i in range(n)],
            "event_type": ["view", "cart", "purchase"] * (n // 3) + ["view"] * (n % 3),
            "user_id": [str(1 + i % 7) for i in range(n)],
            "product_id": [str(10 + i) for i in range(n)],
            "category": "home",
            "price": "20.0",
            "quantity": "1",
            "session_id": [f"s{i // 3}" for i in range(n)],
        }
    )


WEIRD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "NaN", "null", "1e308", "-1", "9" * 40, "1,5", "²", "\x00", "2026-02-30", "1970-01-01"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@st.composite
def damaged_export(draw) -> tuple[str, bytes, list[str], int]:
    """(file suffix, bytes, the damage classes applied, data rows written)."""
    frame = good_rows(draw(st.integers(min_value=0, max_value=12)))
    classes = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["drop", "rename", "cell", "duplicate", "far_time", "empty_rows"]))
        classes.append(kind)
        if kind == "drop" and len(frame.columns) > 1:
            frame = frame.drop(columns=draw(st.sampled_from(list(frame.columns))))
        elif kind == "rename" and len(frame.columns):
            column = draw(st.sampled_from(list(frame.columns)))
            frame = frame.rename(columns={column: draw(st.sampled_from([column.upper() + " ", "time", "", "x"]))})
        elif kind == "cell" and len(frame):
            column = draw(st.sampled_from(list(frame.columns)))
            frame = frame.astype(str)
            frame.iloc[draw(st.integers(0, len(frame) - 1)), list(frame.columns).index(column)] = draw(WEIRD)
        elif kind == "duplicate" and len(frame):
            frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, len(frame)))]], ignore_index=True)
        elif kind == "far_time" and "event_at" in frame and len(frame):
            frame = frame.astype(str)
            frame.loc[frame.index[0], "event_at"] = draw(
                st.sampled_from(["1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z", "0001-01-01", "10000-01-01"])
            )
        elif kind == "empty_rows":
            frame = pd.concat([frame, pd.DataFrame([{c: "" for c in frame.columns}] * 2)], ignore_index=True)
    form = draw(st.sampled_from(["csv", "csv;", "csv_tab", "latin-1", "utf-16", "parquet", "header_only", "blank"]))
    classes.append(f"format:{form}")
    if form == "parquet":
        buffer = io.BytesIO()
        frame.astype(str).to_parquet(buffer, index=False)
        return ".parquet", buffer.getvalue(), classes, len(frame)
    if form == "blank":
        return ".csv", b"", classes, 0
    if form == "header_only":
        frame = frame.iloc[0:0]
    separator = {"csv;": ";", "csv_tab": "\t"}.get(form, ",")
    encoding = form if form in ("latin-1", "utf-16") else "utf-8"
    text = frame.to_csv(index=False, sep=separator)
    if encoding == "latin-1":
        text = text.replace("home", "maison é")
    return ".csv", text.encode(encoding, errors="replace"), classes, len(frame)


def landed(data_dir) -> pd.DataFrame:
    files = sorted((data_dir / "landing" / "events").glob("event_date=*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


@pytest.fixture(scope="module")
def shop_with_a_landed_day(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    first = root / "events_2026-03-02.csv"
    good_rows(30).to_csv(first, index=False)
    return root, first


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(export=damaged_export())
def test_a_damaged_export_is_refused_whole_or_landed_without_losing_a_row(shop_with_a_landed_day, export):
    import os

    root, first = shop_with_a_landed_day
    os.environ["SHOP_DATA_DIR"] = str(root / "data")
    if not (root / "data" / "landing").exists():
        ingest(events=str(first))
    suffix, content, classes, rows = export
    TRIED.update(classes)
    TRIED["cases"] += 1
    path = root / f"events_2026-03-02{suffix}"
    path.write_bytes(content)
    before = landed(root / "data")
    files_before = {p: p.read_bytes() for p in (root / "data" / "landing").rglob("*.parquet")}
    try:
        summary = ingest(events=str(path))
    except LandingError as refusal:
        TRIED["refused"] += 1
        message = str(refusal)
        assert "\n" not in message.strip() and str(path) in message and "Traceback" not in message
        assert {p: p.read_bytes() for p in (root / "data" / "landing").rglob("*.parquet")} == files_before
        return
    TRIED["landed"] += 1
    after = landed(root / "data")
    assert summary["events_rows"] == rows  # every row of the file was read: none dropped on the way
    assert set(before["event_id"]) <= set(after["event_id"])  # nothing landed before was lost


def test_the_generated_cases_cover_every_class():
    """Run after the property test (same module): every damage class and file form was tried."""
    if not TRIED:
        pytest.skip("run with the property test")
    forms = {c for c in TRIED if c.startswith("format:")}
    assert len(forms) == 8 and {"drop", "rename", "cell", "duplicate", "far_time", "empty_rows"} <= set(TRIED)
    assert TRIED["refused"] > 0 and TRIED["landed"] > 0
    print(dict(TRIED))
