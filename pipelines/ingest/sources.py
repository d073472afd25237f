"""The landing-zone sources: where each feed's files are and which datasets they land.

Adding a source is adding an entry here and a contract in ``data_contracts/``; the Dagster
assets, checks and the data-quality page pick it up from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Child:
    """A list nested in each parent record that lands as its own dataset."""

    dataset: str
    field: str  # the parent's list field, e.g. "lines"
    parent_key: str  # copied from the parent into every child row, e.g. "order_id"


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    pattern: str  # glob under the landing zone; {date} is the partition's date
    file_format: str  # "jsonl" | "csv" | "carrier"
    dataset: str  # the contract of the top-level records
    partitioned: bool = True
    delimiter: str = ","
    children: tuple[Child, ...] = field(default_factory=tuple)
    #: keys whose value is an object in every record of a JSON feed (``billing_address``): its
    #: keys land as ``<key>_<its key>`` columns (typed reads rely on it, pipelines/ingest/typed.py)
    objects: tuple[str, ...] = ()
    #: landed only when someone brings its extract in (Olist, ``ordertower olist land``): while
    #: its folder does not exist nothing is expected, and an absent file is a note, not a warning
    optional: bool = False

    @property
    def datasets(self) -> tuple[str, ...]:
        return (self.dataset, *(c.dataset for c in self.children))


SOURCES: tuple[Source, ...] = (
    Source(
        "warehouses",
        "Warehouse network (reference CSV).",
        "reference/warehouses.csv",
        "csv",
        "warehouses",
        partitioned=False,
    ),
    Source(
        "carriers",
        "Carriers and their feed formats (reference CSV).",
        "reference/carriers.csv",
        "csv",
        "carriers",
        partitioned=False,
    ),
    Source(
        "skus",
        "Product catalogue (reference CSV).",
        "reference/skus.csv",
        "csv",
        "skus",
        partitioned=False,
    ),
    Source(
        "ip_ranges",
        "IP geolocation ranges (reference CSV).",
        "reference/ip_ranges.csv",
        "csv",
        "ip_ranges",
        partitioned=False,
    ),
    Source(
        "customers",
        "CRM customer master (JSON lines).",
        "crm/customers.jsonl",
        "jsonl",
        "customers",
        partitioned=False,
        objects=("home_address",),
    ),
    Source(
        "orders",
        "OMS order export (JSON lines, lines nested).",
        "oms/orders/date={date}/*.jsonl",
        "jsonl",
        "orders",
        children=(Child("order_lines", "lines", "order_id"),),
        objects=("billing_address", "shipping_address"),
    ),
    Source(
        "cancellations",
        "OMS cancellations (CSV).",
        "oms/cancellations/date={date}/*.csv",
        "csv",
        "cancellations",
    ),
    Source(
        "inventory",
        "WMS end-of-day inventory snapshots (CSV).",
        "wms/inventory/date={date}/*.csv",
        "csv",
        "inventory_snapshots",
    ),
    Source(
        "shipments",
        "TMS shipments (JSON lines, lines and legs nested).",
        "tms/shipments/date={date}/*.jsonl",
        "jsonl",
        "shipments",
        children=(
            Child("shipment_lines", "lines", "shipment_id"),
            Child("shipment_legs", "legs", "shipment_id"),
        ),
    ),
    Source(
        "carrier_events",
        "Carrier tracking feeds, each in its native format.",
        "carriers/*/date={date}/*",
        "carrier",
        "carrier_events",
    ),
    Source(
        "chargebacks",
        "Payment provider fraud labels (CSV).",
        "payments/chargebacks/date={date}/*.csv",
        "csv",
        "chargebacks",
    ),
    Source(
        "reviews",
        "CRM contacts and reviews (JSON lines).",
        "crm/reviews/date={date}/*.jsonl",
        "jsonl",
        "reviews",
    ),
    # Olist, a second source system: the real Brazilian marketplace extract as its CSVs come
    # (`ordertower olist land`). Full snapshots, optional: without the olist/ folder nothing is
    # expected (a note); a file missing from it lands nothing, with a warning.
    Source(
        "olist_orders",
        "Olist marketplace orders (real data, CSV, Sao Paulo local times).",
        "olist/orders.csv",
        "csv",
        "olist_orders",
        partitioned=False,
        optional=True,
    ),
    Source(
        "olist_order_items",
        "Olist order items, one row per unit sold (real data, CSV).",
        "olist/order_items.csv",
        "csv",
        "olist_order_items",
        partitioned=False,
        optional=True,
    ),
    Source(
        "olist_customers",
        "Olist customers, one per order (real data, CSV).",
        "olist/customers.csv",
        "csv",
        "olist_customers",
        partitioned=False,
        optional=True,
    ),
    Source(
        "olist_products",
        "Olist product catalogue (real data, CSV).",
        "olist/products.csv",
        "csv",
        "olist_products",
        partitioned=False,
        optional=True,
    ),
    Source(
        "olist_product_categories",
        "Olist product category names, Portuguese to English (real data, CSV).",
        "olist/product_category_name_translation.csv",
        "csv",
        "olist_product_categories",
        partitioned=False,
        optional=True,
    ),
)

SOURCES_BY_NAME = {s.name: s for s in SOURCES}
