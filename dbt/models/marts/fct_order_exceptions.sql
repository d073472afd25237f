-- Exceptions as operations works them (batch view): one row per exception episode of a
-- shipment or order, with its severity, age and status SLA from seed exception_policy.
--   carrier_exception / delivery_failed / customs_hold: an actual carrier event says so; it is
--     resolved by the shipment's next actual progress event.
--   stuck: no actual scan for longer than the leg's mode allows; opened when the threshold
--     passed, resolved by the next scan.
--   late_vs_promise: the end of the promised local day passed before delivery; resolved at
--     delivery.
-- Ages and open episodes are measured against the lake's clock (int_lake_clock).
--
-- worklist_status says what an episode needs, from the data alone:
--   resolved       it was closed (resolved_at);
--   within_sla     open, and the lake's clock has not yet passed its SLA (opened_at + sla_hours);
--   awaiting_data  open and past its SLA by the lake's clock, but the feed that would close it
--                  has not reported that far: the episode's carrier's latest actual scan (for an
--                  order without a carrier, the lake's data clock int_lake_clock.data_through_at)
--                  is older than the SLA's end, so its closing event may simply not be here yet;
--   overdue        open, past its SLA, and that feed has reported beyond the SLA's end: the data
--                  could have closed it and did not. Only these are truly overdue.
-- data_through_at is that feed's reach for an open episode, and the moment it was resolved for a
-- resolved one (its feed had reported at least that far).
--
-- Incremental by order (macros/incremental.sql): a run re-derives every order that fct_orders
-- re-derived or whose shipments received events since its last run, every order with an open
-- episode (its age, SLA and status move with the clock and its carrier's feed), and every order
-- not delivered that has or may get a shipment (a stuck or late episode opens with the clock).
{#- append_new_columns: a lake built before refreshed_at existed gains the column; its
    rows, refreshed_at null, leave no watermark, so that first run re-derives every key -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook="{{ delete_markers('exception_id') }}",
    )
}}
with

{% if is_incremental() %}
changed as (

    select order_id from {{ ref('fct_orders') }} where refreshed_at > {{ refreshed_since() }}
    union
    select order_id from {{ ref('fct_tracking_events') }}
    where ingested_at > {{ ingested_since() }} and order_id is not null
    union
    select order_id from {{ this }} where is_open
    union
    select order_id from {{ ref('fct_orders') }}
    where not is_delivered and not (is_cancelled and shipment_count = 0)

),
{% endif %}

all_events as (

    select * from {{ ref('fct_tracking_events') }}
    where is_actual and shipment_id is not null

),

events as (

    select * from all_events
    {{ only_changed('order_id') }}

),

orders as (

    select * from {{ ref('fct_orders') }}
    {{ only_changed('order_id') }}

),

policy as (

    select * from {{ ref('exception_policy') }}

),

clock as (

    select * from {{ ref('int_lake_clock') }}

),

feeds as (

    -- how far each carrier's feed has reported: its latest actual scan, leaving out scans dated
    -- more than an hour after they were landed (from the future; int_lake_clock's rule)
    select carrier_id, max(event_at) as feed_through_at
    from all_events
    where event_at <= ingested_at + interval 1 hour
    group by carrier_id

),

sequenced as (

    select
        events.*,
        lead(event_at) over (
            partition by shipment_id order by event_at, leg_no, event_seq
        ) as next_event_at,
        -- the next event that moves the shipment forward again
        min(event_at) filter (
            where event_code in (
                'PICKED_UP', 'DEPARTED', 'IN_TRANSIT', 'ARRIVED', 'CUSTOMS_CLEARED',
                'OUT_FOR_DELIVERY', 'AVAILABLE_FOR_PICKUP', 'DELIVERED'
            )
        ) over (
            partition by shipment_id order by event_at, leg_no, event_seq
            rows between 1 following and unbounded following
        ) as next_progress_at,
        max(event_code = 'DELIVERED' and mode = 'last_mile') over (partition by shipment_id)
            as shipment_delivered,
        -- coalesced: a shipment without any exception event has only null reasons, and a null
        -- here would hide its open stuck episode
        coalesce(max(exception_reason = 'LOST') over (partition by shipment_id), false)
            as shipment_lost
    from events

),

event_exceptions as (

    select
        order_id,
        shipment_id,
        tracking_ref,
        carrier_id,
        mode,
        case
            when event_code = 'DELIVERY_FAILED' then 'delivery_failed'
            when event_code = 'CUSTOMS_HOLD' then 'customs_hold'
            else 'carrier_exception'
        end as exception_type,
        case when event_code = 'EXCEPTION' then coalesce(exception_reason, 'OTHER') else '*' end
            as exception_reason,
        event_at as opened_at,
        case when exception_reason = 'LOST' then null else next_progress_at end as resolved_at
    from sequenced
    where event_code in ('EXCEPTION', 'DELIVERY_FAILED', 'CUSTOMS_HOLD')

),

gaps as (

    select
        sequenced.*,
        policy.stuck_after_hours,
        coalesce(
            next_event_at,
            case when not shipment_delivered and not shipment_lost then clock.as_of end
        ) as gap_end_at
    from sequenced
    cross join clock
    inner join policy
        on policy.exception_type = 'stuck' and policy.exception_reason = sequenced.mode

),

stuck as (

    select
        order_id,
        shipment_id,
        tracking_ref,
        carrier_id,
        mode,
        'stuck' as exception_type,
        mode as exception_reason,
        event_at + to_microseconds(cast(stuck_after_hours * 3600e6 as bigint)) as opened_at,
        next_event_at as resolved_at
    from gaps
    where gap_end_at > event_at + to_microseconds(cast(stuck_after_hours * 3600e6 as bigint))
        and not (event_code = 'DELIVERED' and mode = 'last_mile')

),

late as (

    select
        order_id,
        cast(null as varchar) as shipment_id,
        cast(null as varchar) as tracking_ref,
        last_mile_carrier_id as carrier_id,
        cast(null as varchar) as mode,
        'late_vs_promise' as exception_type,
        promise_type as exception_reason,
        promised_by_at as opened_at,
        delivered_at as resolved_at
    from orders
    cross join clock
    where not is_cancelled
        and promised_by_at < coalesce(delivered_at, clock.as_of)

),

unioned as (

    select * from event_exceptions
    union all
    select * from stuck
    union all
    select * from late

),

with_policy as (

    select
        unioned.*,
        coalesce(specific.severity, fallback.severity) as severity,
        coalesce(specific.sla_hours, fallback.sla_hours) as sla_hours,
        coalesce(specific.description, fallback.description) as recommended_action
    from unioned
    left join policy as specific
        on unioned.exception_type = specific.exception_type
        and unioned.exception_reason = specific.exception_reason
    left join policy as fallback
        on unioned.exception_type = fallback.exception_type
        and fallback.exception_reason = '*'

),

with_feed as (

    -- how far the feed that would close the episode has reported: its carrier's, else the
    -- lake's data clock
    select
        with_policy.*,
        case
            when with_policy.resolved_at is not null then with_policy.resolved_at
            when feeds.feed_through_at is not null then least(feeds.feed_through_at, clock.as_of)
            else coalesce(clock.data_through_at, clock.as_of)
        end as data_through_at
    from with_policy
    cross join clock
    left join feeds on feeds.carrier_id = with_policy.carrier_id

),

final as (

    select
        -- ids
        md5(
            with_policy.exception_type || '|' || with_policy.order_id || '|'
            || coalesce(with_policy.shipment_id, '') || '|' || cast(with_policy.opened_at as varchar)
        ) as exception_id,
        with_policy.order_id,
        with_policy.shipment_id,
        with_policy.tracking_ref,
        with_policy.carrier_id,
        orders.primary_warehouse_id as warehouse_id,

        -- strings
        with_policy.exception_type,
        with_policy.exception_reason,
        with_policy.severity,
        with_policy.mode,
        with_policy.recommended_action,
        orders.channel,
        orders.promise_type,
        orders.source_system,

        -- numerics
        orders.order_total as order_value,
        with_policy.sla_hours,
        round(
            epoch(coalesce(with_policy.resolved_at, clock.as_of) - with_policy.opened_at) / 3600.0, 2
        ) as age_hours,

        -- booleans
        with_policy.resolved_at is null as is_open,
        epoch(coalesce(with_policy.resolved_at, clock.as_of) - with_policy.opened_at) / 3600.0
            > with_policy.sla_hours as is_sla_breached,
        orders.is_delivered as is_order_delivered,

        -- status (see the header)
        case
            when with_policy.resolved_at is not null then 'resolved'
            when epoch(clock.as_of - with_policy.opened_at) / 3600.0 <= with_policy.sla_hours
                then 'within_sla'
            when with_policy.data_through_at
                < with_policy.opened_at + to_microseconds(cast(with_policy.sla_hours * 3600e6 as bigint))
                then 'awaiting_data'
            else 'overdue'
        end as worklist_status,

        -- timestamps
        with_policy.opened_at,
        with_policy.resolved_at,
        cast(timezone('UTC', with_policy.opened_at) as date) as opened_date,
        cast(timezone('UTC', with_policy.resolved_at) as date) as resolved_date,
        orders.order_date,
        with_policy.opened_at + to_microseconds(cast(with_policy.sla_hours * 3600e6 as bigint))
            as sla_due_at,
        with_policy.data_through_at,
        {{ run_started() }} as refreshed_at

    from with_feed as with_policy
    inner join orders on with_policy.order_id = orders.order_id
    cross join clock
    -- a carrier may report the same exception twice at the same moment
    qualify row_number() over (
        partition by exception_id order by with_policy.resolved_at nulls last
    ) = 1

)

select * from final
{{ replaced_keys('final', 'order_id', 'changed') }}
-- clustered by order (point lookups from the tracking page prune row groups)
order by order_id, opened_at
