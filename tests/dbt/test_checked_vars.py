"""dbt vars that reach SQL text are checked first: a bad value fails the run with its name, never in a query."""

from __future__ import annotations

import pytest

from ml.errors import DbtError
from ml.warehouse.dbt_runner import run_dbt


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ({"as_of_start": "2026-01-01' or true --"}, 'var as_of_start="2026-01-01\' or true --": expected a date'),
        ({"as_of_start": "2026-06-01", "as_of_end": "next week"}, 'var as_of_end="next week": expected a date'),
        (
            {"as_of_start": "2026-06-01", "reprocess_from": "2026-05-30; drop table x"},
            'var reprocess_from="2026-05-30; drop table x": expected a date',
        ),
        ({"reprocess_to": "2026-13-45"}, "month must be in 1..12"),
        (
            {"feature_retention_days": "5 or 1", "history_as_of_end": "2026-06-30"},
            'var feature_retention_days="5 or 1": expected a whole number of days',
        ),
    ],
)
def test_a_bad_date_or_count_var_fails_naming_it(empty_env, dbt_vars, message):
    with pytest.raises(DbtError, match=message.replace("(", r"\(")) as failure:
        run_dbt(["compile", "--select", "int_as_of_dates", "int_events_checked"], dbt_vars, echo=False)
    assert "Traceback" not in str(failure.value)
