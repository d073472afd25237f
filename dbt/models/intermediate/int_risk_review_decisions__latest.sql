-- The decision that stands for each reviewed order: an analyst's latest (a later decision on
-- the same order supersedes an earlier one; the table itself is append-only).
with

decisions as (

    select * from {{ ref('stg_ops__risk_review_decisions') }}

)

select *
from decisions
qualify row_number() over (partition by order_id order by decided_at desc, decision_id desc) = 1
