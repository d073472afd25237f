-- One row per way to look an order up on the tracking page: its order id, its customer's id
-- and each carrier tracking reference of its legs. Sorted by the term, so an exact lookup reads
-- one row group instead of scanning the orders and legs marts (which are clustered by order).
with

orders as (

    select order_id, customer_id from {{ ref('fct_orders') }}

),

legs as (

    -- a leg whose order is not (yet) in fct_orders finds nothing: its order has no page
    select distinct l.tracking_ref, l.order_id
    from {{ ref('fct_shipment_legs') }} l
    semi join orders o on o.order_id = l.order_id
    where l.tracking_ref is not null

),

terms as (

    select order_id as search_term, order_id, 'order id' as matched_on from orders
    union all
    select tracking_ref, order_id, 'tracking ref' from legs
    union all
    select customer_id, order_id, 'customer' from orders
    where customer_id is not null

)

select search_term, order_id, matched_on
from terms
order by search_term, order_id
