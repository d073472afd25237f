-- One row per OMS order that has a fraud verdict, with the moment the verdict became known:
-- fraud when the payment provider confirmed it, when a chargeback carries a fraud reason
-- (card-scheme codes 10.x) or when an analyst rejected the order; legitimate when an analyst
-- approved it and no fraud evidence followed. Service disputes (13.x: not received, not as
-- described) are friendly fraud or service failures, not fraud, and are no verdict at all.
with

chargebacks as (

    select * from {{ ref('stg_payments__chargebacks') }}

),

decisions as (

    select * from {{ ref('int_risk_review_decisions__latest') }}

),

evidence as (

    select
        order_id,
        true as is_fraud,
        case when is_confirmed_fraud then 'confirmed_fraud' else 'fraud_chargeback' end
            as label_source,
        reported_at as known_at
    from chargebacks
    where is_confirmed_fraud or reason_code like '10.%'

    union all

    select
        order_id,
        is_rejected,
        case when is_rejected then 'analyst_reject' else 'analyst_approve' end,
        decided_at
    from decisions

),

final as (

    select
        order_id,
        bool_or(is_fraud) as is_fraud,
        -- the first fraud evidence, or (never fraud) the analyst's approval
        arg_min(label_source, (not is_fraud, known_at)) as label_source,
        min(known_at) filter (where is_fraud) as fraud_known_at,
        min(known_at) as first_known_at
    from evidence
    group by order_id

)

select * from final
