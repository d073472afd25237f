-- One row per exception alert raised on the live stream: what happened, how bad, the impact,
-- the recommended action with its priced alternatives, and where the customer message is.
-- worklist_status as in fct_order_exceptions: resolved (delivered since), within_sla (the
-- lake's clock has not passed act_by), awaiting_data (it has, but the carrier's feed has not
-- reported that far: the delivery may simply not be here yet), overdue (the feed reported
-- beyond act_by and the shipment is still not delivered).
with

alerts as (

    select * from {{ ref('stg_ops__exception_alerts') }}

),

messages as (

    select * from {{ ref('stg_ops__crm_outbox') }}

),

delivered as (

    -- resolved = the shipment has been delivered since (any leg's DELIVERED scan)
    select shipment_id, min(event_at) as delivered_at
    from {{ ref('fct_tracking_events') }}
    where event_code = 'DELIVERED'
    group by 1

),

clock as (

    select * from {{ ref('int_lake_clock') }}

),

feeds as (

    -- how far each carrier's feed has reported (fct_order_exceptions' rule)
    select carrier_id, max(event_at) as feed_through_at
    from {{ ref('fct_tracking_events') }}
    where is_actual and event_at <= ingested_at + interval 1 hour
    group by 1

)

select
    -- ids
    alerts.alert_id,
    alerts.shipment_id,
    alerts.order_id,
    alerts.customer_id,
    alerts.tracking_ref,
    alerts.carrier_id,
    alerts.trigger_event_id,
    messages.message_id,

    -- strings
    alerts.rule,
    alerts.reason,
    alerts.sub_reason,
    alerts.severity,
    alerts.mode,
    alerts.service_level,
    alerts.recommended_option,
    alerts.recommended_action,
    alerts.alternatives_json,
    coalesce(messages.delivery_status, 'none') as message_status,

    -- numerics
    alerts.sla_minutes,
    alerts.hours_late,
    alerts.order_value_eur,
    coalesce(messages.attempts, 0) as message_attempts,
    cast(
        epoch(alerts.detected_at) - epoch(alerts.published_at) as double
    ) as detection_seconds,

    -- booleans
    alerts.promise_at_risk,
    delivered.delivered_at is not null as is_resolved,

    -- status (see the header)
    case
        when delivered.delivered_at is not null then 'resolved'
        when clock.as_of <= alerts.clock_at + to_minutes(alerts.sla_minutes) then 'within_sla'
        when coalesce(least(feeds.feed_through_at, clock.as_of), clock.data_through_at, clock.as_of)
            < alerts.clock_at + to_minutes(alerts.sla_minutes)
            then 'awaiting_data'
        else 'overdue'
    end as worklist_status,

    -- dates
    alerts.promised_delivery_date,

    -- timestamps
    alerts.event_at,
    alerts.published_at,
    alerts.detected_at,
    alerts.clock_at,
    alerts.clock_at + to_minutes(alerts.sla_minutes) as act_by,
    alerts.eta_at,
    messages.sent_at as message_sent_at,
    delivered.delivered_at,
    coalesce(least(feeds.feed_through_at, clock.as_of), clock.data_through_at, clock.as_of)
        as data_through_at

from alerts
left join messages on messages.alert_id = alerts.alert_id
left join delivered on delivered.shipment_id = alerts.shipment_id
cross join clock
left join feeds on feeds.carrier_id = alerts.carrier_id
-- clustered by order (point lookups from the tracking page prune row groups)
order by alerts.order_id, alerts.detected_at
