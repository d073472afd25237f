-- Every scored order's risk verdict: the model's score, decision and three reasons, and where
-- an analyst reviewed it, the analyst's decision (which is final).
with

scores as (

    select * from {{ ref('stg_ml__order_risk_scores') }}

),

decisions as (

    select * from {{ ref('int_risk_review_decisions__latest') }}

),

final as (

    select
        scores.order_id,
        scores.ordered_at,
        scores.partition_key,
        scores.order_total,
        scores.risk_score,
        scores.decision as model_decision,
        scores.reason_1,
        scores.reason_2,
        scores.reason_3,
        scores.reason_1_feature,
        scores.reason_2_feature,
        scores.reason_3_feature,
        scores.model_version,
        scores.scored_at,
        case
            when decisions.decision = 'approve' then 'approved'
            when decisions.decision = 'reject' then 'rejected'
            when scores.decision = 'review' then 'pending'
            else 'not_required'
        end as review_status,
        decisions.reviewer as reviewed_by,
        decisions.decided_at as reviewed_at,
        decisions.note as review_note,
        coalesce(decisions.decision, scores.decision) as final_decision
    from scores
    left join decisions on scores.order_id = decisions.order_id

)

select * from final
