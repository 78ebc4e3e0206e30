"""dbt vars that reach SQL text are checked first: a bad value fails the run with its name, never in a query."""

from __future__ import annotations

import pytest

from ml.errors import DbtError
from ml.warehouse.dbt_runner import _dbt_failure, run_dbt


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


def test_a_failure_message_keeps_dbt_s_words_when_the_process_ends_with_binding_leak_reports():
    # Seen once in a full run: DuckDB's binding printed a leak report as dbt exited, filling the message's tail.
    lines = [
        "Runtime Error",
        "  Compilation Error in model int_as_of_dates (models/intermediate/features/int_as_of_dates.sql)",
        '  var as_of_start="x": expected a date',
        "nanobind: leaked 84 functions!",
        *[f' - leaked function "f{i}"' for i in range(20)],
        " - ... skipped remainder",
        "nanobind: this is likely caused by a reference counting issue in the binding code.",
        "See https://nanobind.readthedocs.io/en/latest/refleaks.html",
    ]
    message = str(_dbt_failure(["compile"], "exit 2", lines))
    assert 'var as_of_start="x": expected a date' in message
    assert "nanobind" not in message and "leaked" not in message
