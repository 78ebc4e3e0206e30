"""Customer data kept to what is needed: contact data pseudonymised when it lands, customers forgotten on request
from every file and table, and never landed again."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.__main__ import main
from ml.errors import ConfigError
from ml.ingest.landing import ingest
from ml.privacy.examples import synthetic_examples
from ml.privacy.pseudonyms import keyed_hashes
from tests.checksums import query
from tests.privacy_scan import text_hits, user_id_hits
from tests.readme import readme_block

USERS_CSV = "user_id,signup_at,country,email,phone,marketing_consent\n1,2026-01-01,DE,Ann@Shop.de ,+4915112345678,yes\n"
EVENTS_CSV = """event_at,event_type,user_id,product_id,category,price,session_id
2026-03-02T10:00:00Z,view,1,10,home,20.0,s1
2026-03-02T10:02:00Z,purchase,2,10,home,20.0,s2
"""
CONTACT = r"[Aa]nn@[Ss]hop\.de|\+4915112345678"


def test_contact_data_lands_pseudonymised_and_an_earlier_landing_is_rewritten(empty_env, tmp_path):
    data = empty_env / "data"
    # A users table landed before pseudonymisation, with raw contact data.
    old = data / "landing" / "users" / "users.parquet"
    old.parent.mkdir(parents=True)
    pd.DataFrame(
        {"user_id": [2], "signup_at": [pd.Timestamp("2026-01-02")], "email": ["bob@shop.de"], "phone": ["+491701"]}
    ).to_parquet(old)
    events = tmp_path / "events_2026-03-02.csv"
    events.write_text(EVENTS_CSV)
    ingest(events=str(events))
    landed = pd.read_parquet(old)
    assert {"email", "phone"}.isdisjoint(landed.columns)
    assert landed["email_hash"].tolist() == keyed_hashes(pd.Series(["bob@shop.de"]), "email").tolist()

    users = tmp_path / "users.csv"
    users.write_text(USERS_CSV)
    ingest(users=str(users))
    landed = pd.read_parquet(old).set_index("user_id")
    assert {"email", "phone"}.isdisjoint(landed.columns)
    # Keyed: the same address (any case, trimmed) gives the same pseudonym, not the plain hash a dictionary reverses.
    assert landed.loc[1, "email_hash"] == keyed_hashes(pd.Series(["ann@shop.de"]), "email")[0]
    assert landed.loc[1, "email_hash"] != hashlib.sha256(b"ann@shop.de").hexdigest()
    assert text_hits(data, CONTACT) == [] and text_hits(data, "bob@shop") == []


def test_a_short_or_sample_pseudonym_key_is_refused_and_nothing_lands(empty_env, tmp_path, monkeypatch):
    users = tmp_path / "users.csv"
    users.write_text(USERS_CSV)
    for key in ("change-me", "x" * 40, "too-short-1234"):
        monkeypatch.setenv("SHOP_PSEUDONYM_KEY", key)
        with pytest.raises(ConfigError, match="SHOP_PSEUDONYM_KEY must be a random secret of at least 32 characters"):
            ingest(users=str(users))
        assert not (empty_env / "data" / "landing" / "users").exists()


def test_parse_errors_and_messages_show_the_shape_of_a_value_not_the_value(empty_env, tmp_path, capsys):
    bad = tmp_path / "users.csv"
    bad.write_text("user_id,signup_at,email\nann@shop.de,2026-01-01,ann@shop.de\n")
    assert main(["ingest", "--users", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "unreadable value(s), e.g. ['xxx@xxxx.xx']" in error and "ann" not in error
    events = tmp_path / "events_2026-03-02.csv"
    events.write_text(EVENTS_CSV + "2026-03-02T11:00:00Z,view,ann@shop.de,10,home,20.0,s3\n")
    ingest(events=str(events))
    landed = pd.read_parquet(empty_env / "data" / "landing" / "events" / "event_date=2026-03-02")
    assert landed["parse_errors"].dropna().tolist() == ["user_id=xxx@xxxx.xx"]
    assert text_hits(empty_env / "data", "ann@shop") == []


def test_forget_refuses_a_bad_id_and_changes_nothing(empty_env, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure requests\n17\n\n1x8\n")
    assert main(["forget", "--user-id", "3", "--file", str(ids)]) == 2
    assert "ids.txt: user id '1x8' is not a whole number; nothing was erased" in capsys.readouterr().err
    assert main(["forget", "--file", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file of user ids" in capsys.readouterr().err
    assert main(["forget"]) == 2
    assert not (empty_env / "data" / "privacy").exists()


def test_a_changed_key_after_an_erasure_stops_landing_instead_of_letting_the_user_back(
    empty_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("SHOP_PSEUDONYM_KEY", "a" * 20 + "0123456789abcdef")
    events = tmp_path / "events_2026-03-02.csv"
    events.write_text(EVENTS_CSV)
    ingest(events=str(events))
    assert main(["forget", "--user-id", "1"]) == 0
    landed = empty_env / "data" / "landing" / "events" / "event_date=2026-03-02" / "part-0.parquet"
    before = landed.read_bytes()
    monkeypatch.setenv("SHOP_PSEUDONYM_KEY", "b" * 20 + "0123456789abcdef")
    with pytest.raises(ConfigError, match="recorded under another pseudonym key"):
        ingest(events=str(events))
    assert landed.read_bytes() == before and pd.read_parquet(landed)["user_id"].tolist() == [2]


def test_model_input_examples_are_made_up_rows(trained_shop, shop_copy):
    """MLflow shows a model's input example to everyone who can read the run: it must be no customer's row."""
    from mlflow.models import Model

    import mlflow
    from ml.propensity.datasets import model_inputs
    from ml.propensity.train import load_split
    from ml.registry.aliases import MODEL_NAMES

    shop_copy(trained_shop)
    _, columns, frames = load_split(["purchase_30d"], None)
    rows = pd.concat([model_inputs(part, columns) for part in frames["purchase_30d"].values()], ignore_index=True)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAMES['purchase_30d']}@champion")
    logged = Model.load(local).load_input_example(local)
    assert list(logged.columns) == columns and len(logged) == 5
    assert logged.astype(rows.dtypes.to_dict()).merge(rows.drop_duplicates(), how="inner").empty
    examples = synthetic_examples(rows)
    assert (examples.dtypes == rows.dtypes).all() and examples.merge(rows.drop_duplicates(), how="inner").empty


def test_forget_erases_users_everywhere_and_no_landing_or_rebuild_brings_them_back(
    built_shop, shop_copy, tmp_path, capsys
):
    from ml.warehouse.dbt_runner import run_dbt
    from ml.warehouse.history import build_history
    from ml.warehouse.publish import publish_snapshot

    shop = shop_copy(built_shop)
    run_dbt(["run", "--select", "path:models/staging/landing"])  # the copy's views: over the copy's landing
    publish_snapshot()
    buyers = query(
        shop.warehouse,
        """select user_id from stg_landing__events join stg_landing__coupon_sends using (user_id)
           where event_type = 'purchase' group by 1 order by count(*) desc, 1 limit 3""",
    )
    ids = [int(u) for (u,) in buyers]
    block = readme_block("Your own data", 1)  # the README's erasure, run below as printed
    named = [int(i) for i in re.findall(r"--user-id (\d+)", block)]
    assert len(ids) == 3 and user_id_hits(shop.data, ids) and user_id_hits(shop.data, named[:1])
    # The shop sends an old export again later: keep a copy of what the inbox holds now.
    resent = tmp_path / "resent"
    shutil.copytree(shop.data / "inbox" / "events", resent)
    (tmp_path / "ids.txt").write_text(f"{ids[2]}\n")

    assert (
        main(["forget", "--user-id", str(ids[0]), "--user-id", str(ids[1]), "--file", str(tmp_path / "ids.txt")]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["users"] == 3 and summary["newly_suppressed"] == 3
    assert all(summary["rows_erased"][place] > 0 for place in ("landing", "inbox", "warehouse"))
    assert user_id_hits(shop.data, ids) == []
    # The erasure is recorded, and the list that keeps them out holds keyed hashes, never the ids.
    privacy = shop.data / "privacy"
    as_words = rf"\b({'|'.join(map(str, ids))})\b"  # an id, not three digits inside a hash
    for name in ("suppressed_users.parquet", "erasures.parquet"):
        frame = pq.read_table(privacy / name).to_pandas().astype(str)
        assert not frame.isin([str(i) for i in ids]).any().any() and not text_hits(privacy, as_words)
    # The README's block, as printed, from the folder that holds data/.
    (shop.root / ".venv").symlink_to(Path(sys.executable).parents[1])
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=shop.root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["users"] == len(named) and user_id_hits(shop.data, ids + named) == []
    others = query(shop.warehouse, "select count(distinct user_id) from stg_landing__events")[0][0]
    assert others > 1000  # everyone else is still there

    build_history(keep_last=3)  # `ml history`: lands the inbox again and rebuilds every table
    assert user_id_hits(shop.data, ids + named) == []
    again = ingest(events=str(resent))  # the old exports, sent again
    assert again["suppressed_rows"] > 0 and user_id_hits(shop.data, ids) == []


def test_a_trigger_cannot_simulate_the_demo_shop_into_a_real_shops_inbox(empty_env, monkeypatch):
    from datetime import date

    from ml.errors import UserFacingError
    from ml.pipeline import land, source_of

    with pytest.raises(UserFacingError, match="source=simulate is refused: this deployment lands the shop's own"):
        source_of({"params": {"source": "simulate"}})
    assert source_of({"params": {"source": "inbox"}}) == "inbox"
    monkeypatch.setenv("SHOP_SOURCE", "simulate")
    assert source_of({"params": {"source": "simulate"}}) == "simulate"
    # Even where the demo is allowed, exports the simulator did not write are never overwritten.
    own = empty_env / "data" / "inbox" / "events" / "events_2026-03-02.csv"
    own.parent.mkdir(parents=True)
    own.write_text(EVENTS_CSV)
    with pytest.raises(UserFacingError, match="holds exports the demo shop did not write"):
        land(date(2026, 3, 3), source="simulate")
    assert [p.name for p in (empty_env / "data").rglob("*") if p.is_file()] == [own.name]
    assert own.read_text() == EVENTS_CSV


def test_forget_reads_ids_and_files_as_landing_does(empty_env):
    """An export's header in another case, ids written 0042 or 42.0, a .pq file: landing reads all of them as
    user 42, so the erasure must too."""
    inbox = empty_env / "data" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "old_export.CSV").write_text(" User_Id ,amount\n0042,1\n 42,2\n42.0,3\n7,4\n")
    pd.DataFrame({"USER_ID": [" 42", "7"], "amount": [5, 6]}).to_parquet(inbox / "more.pq")
    assert main(["forget", "--user-id", "42"]) == 0
    assert (inbox / "old_export.CSV").read_text().splitlines() == [" User_Id ,amount", "7,4"]
    assert pd.read_parquet(inbox / "more.pq")["USER_ID"].tolist() == ["7"]
