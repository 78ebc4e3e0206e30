{#- Fails with one row per key that appears more than once.
    `reprocessed` (a date column of the key): an incremental run checks only the rows on or after the
    first day it re-processed, less `days_before` (the models' own window, macros/reprocess_window.sql):
    the older rows were checked by the run that wrote them, and a daily check of all of them would grow
    with the history. A full refresh and a run without dates check every row. -#}
{% test unique_combination(model, columns, reprocessed=none, days_before=0) %}
{%- set start = reprocess_from() if reprocessed and not flags.FULL_REFRESH else none %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
{%- if start %}
where {{ reprocessed }} >= {{ start }} - {{ days_before }}
{%- endif %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
