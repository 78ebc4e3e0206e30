{% test unique_combination(model, columns) %}
-- Fails with one row per key that appears more than once.
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
