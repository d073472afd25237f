with

source as (

    select * from {{ ref('base_olist__products') }}

),

-- Olist's own lookup of English category names, from the same extract; not every category
-- is in it (pc_gamer), those keep their Portuguese name
categories as (

    select * from {{ ref('base_olist__product_categories') }}

),

renamed as (

    select
        -- ids
        source.product_id,

        -- strings
        coalesce(
            categories.product_category_name_english, source.product_category_name
        ) as category,
        source.product_category_name as category_pt,

        -- numerics (Olist spells length "lenght")
        cast(source.product_name_lenght as integer) as product_name_length,
        cast(source.product_description_lenght as integer) as product_description_length,
        cast(source.product_photos_qty as integer) as photo_count,
        cast(source.product_weight_g as double) / 1000 as weight_kg,
        cast(source.product_length_cm as integer) as length_cm,
        cast(source.product_height_cm as integer) as height_cm,
        cast(source.product_width_cm as integer) as width_cm,
        cast(source.product_length_cm as double)
            * source.product_height_cm
            * source.product_width_cm / 1000 as volume_l,

        -- booleans
        source.product_category_name is not null
            and categories.product_category_name_english is null as is_category_untranslated,

        -- lineage
        source._partition_key as partition_key,
        source._ingested_at as ingested_at

    from source
    left join categories
        on source.product_category_name = categories.product_category_name

)

select * from renamed
