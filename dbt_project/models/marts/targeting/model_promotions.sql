-- One row per alias change in the model registry: automatic promotions by the training gate,
-- challengers, manual promotions and rollbacks from the CLI, and moves made in the MLflow UI.
with

promotions as (
    select * from {{ ref('stg_ml__model_promotions') }}
)

select * from promotions
