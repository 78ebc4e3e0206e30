{#- Clean orders that redeemed a coupon, one row per order, with the discount it cost (the catalogue's
    rule on the order's value): user_id, order_date, coupon_code, order_key, order_value, discount_paid.
    `reach_days`: how far before the re-processed days the caller's windows reach (in_reprocess_window). -#}
{%- macro redemption_costs(reach_days) -%}
    select
        orders.*,
        -- Money as exact cents: a float sum depends on summation order, and a rerun must give identical rows. The
        -- percentage is applied in decimals too (x 0.01, not / 100, which DuckDB does in floats), so a half cent
        -- rounds up on every engine.
        cast(round(case catalogue.discount_type
            when 'percent' then orders.order_value * cast(catalogue.discount_value as decimal(9, 4)) * 0.01
            else cast(catalogue.discount_value as decimal(18, 2))
        end, 2) as decimal(18, 2)) as discount_paid
    from (
        select
            events.user_id,
            cast(events.event_at as date) as order_date,
            events.coupon_code,
            coalesce(events.order_id, events.event_id) as order_key,
            sum(cast(events.unit_price * events.quantity as decimal(18, 2))) as order_value
        from {{ ref('int_events_checked') }} as events
        where events.quarantine_reason is null
          and events.event_type = 'purchase'
          and events.coupon_code is not null
          and {{ in_reprocess_window('events.event_at', reach_days, end_days_before=0) }}
        group by 1, 2, 3, 4
    ) as orders
    inner join {{ ref('coupon_catalogue') }} as catalogue using (coupon_code)
{%- endmacro -%}
