"""Assets the shop DAGs produce, shared so that producers and consumers name them once."""

from airflow.sdk import Asset

USER_FEATURES = Asset("duckdb://warehouse/main/user_features", group="warehouse")
SCORES = Asset("file://data/scores", group="ml")
TARGETING = Asset("duckdb://warehouse/main/coupon_targets", group="warehouse")
ANALYST_SNAPSHOT = Asset("file://data/analyst/warehouse_snapshot.duckdb", group="analyst")
