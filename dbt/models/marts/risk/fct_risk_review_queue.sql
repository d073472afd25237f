-- The risk analysts' work list: orders the model sent to review that nobody has decided yet,
-- riskiest money first, with the context a reviewer needs (no PII: the customer's id only).
with

risk as (

    select * from {{ ref('fct_order_risk') }}

),

orders as (

    select
        order_id,
        customer_id,
        channel,
        payment_method,
        shipping_country_code
    from {{ ref('fct_orders') }}

),

final as (

    select
        risk.order_id,
        orders.customer_id,
        risk.ordered_at,
        risk.order_total,
        risk.risk_score,
        risk.risk_score * risk.order_total as expected_loss,
        risk.reason_1,
        risk.reason_2,
        risk.reason_3,
        orders.channel,
        orders.payment_method,
        orders.shipping_country_code,
        risk.model_version,
        risk.scored_at,
        row_number() over (order by risk.risk_score * risk.order_total desc, risk.order_id)
            as queue_position
    from risk
    left join orders on risk.order_id = orders.order_id
    where risk.review_status = 'pending'

)

select * from final
