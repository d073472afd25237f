"""Build small, hand-checked landing zones for ingestion tests (clean and deliberately broken).

The simulator makes realistic worlds; these files are tiny so that every expected count can be
written down in the test.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

DAY = "2026-08-20"


def swiftparcel_webhook(msg_id: str, ref: str, tag: str, subtag: str, at: datetime) -> str:
    """One Swift Parcel tracking webhook (a JSON line of its landing file)."""
    return json.dumps(
        {
            "msg_id": msg_id,
            "event": "tracking_update",
            "carrier": "swiftparcel",
            "tracking_number": ref,
            "checkpoint": {
                "tag": tag,
                "subtag": subtag,
                "message": "late test event",
                "checkpoint_time": at.isoformat(),
                "location": {"city": "Lyon", "country_iso2": "FR", "lat": 45.76, "lon": 4.84},
            },
        }
    )


def order(n: int, **over) -> dict:
    base = {
        "order_id": f"ORD-{n:08d}",
        "customer_id": "CUS-0000001",
        "order_ts": "2026-08-20T10:15:00+02:00",
        "channel": "web",
        "payment_method": "card",
        "payment_instrument_id": "pi_1",
        "device_id": "d1",
        "ip_address": "10.0.0.1",
        "user_agent": "Mozilla/5.0",
        "currency": "EUR",
        "promise_type": "next_day",
        "promised_delivery_date": "2026-08-21",
        "promo_code": None,
        "billing_address": {
            "street": "Hauptstr. 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country_code": "DE",
            "latitude": 52.5,
            "longitude": 13.4,
        },
        "shipping_address": {
            "street": "Hauptstr. 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country_code": "DE",
            "latitude": 52.5,
            "longitude": 13.4,
        },
        "order_total": 24.9,
        "shipping_fee": 4.9,
        "lines": [
            {"line_no": 1, "sku_id": "SKU-0001", "quantity": 2, "unit_price": 10.0, "discount": 0.0}
        ],
    }
    base.update(over)
    return base


def write_jsonl(path: Path, objs: list, tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs) + tail
    path.write_text(text, encoding="utf-8")


def write_text(path: Path, text: str, bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def reference(landing: Path) -> None:
    write_text(
        landing / "reference/warehouses.csv",
        "warehouse_id,name,warehouse_type,city,country_code,latitude,longitude,timezone,"
        "outbound_capacity_per_day,opened_on\n"
        "WH-BER,Berlin Central,central,Berlin,DE,52.52,13.40,Europe/Berlin,20000,2019-01-01\n"
        "WH-MUC,Munich Forward,forward,Munich,DE,48.14,11.58,Europe/Berlin,5000,2021-03-01\n",
    )
    write_text(
        landing / "reference/carriers.csv",
        "carrier_id,name,carrier_type,feed_format,modes,country_code\n"
        "SWIFTPARCEL,Swift Parcel,parcel,parcel_webhook_json,last_mile,DE\n"
        "BLUEWAVE,Blue Wave Lines,ocean,dcsa_tnt_json,sea,DK\n"
        "EURORAIL,Euro Rail Cargo,rail,rail_csv,rail,DE\n",
    )
    write_text(
        landing / "reference/skus.csv",
        "sku_id,name,category,weight_kg,volume_l,unit_price,currency,risk_class,launched_on\n"
        "SKU-0001,Kettle,home,1.2,3.0,10.0,EUR,low,2020-01-01\n"
        "SKU-0002,Phone,electronics,0.3,0.8,499.0,EUR,high,2024-05-01\n",
    )
    write_text(
        landing / "reference/ip_ranges.csv",
        "ip_from,ip_to,country_code,city,latitude,longitude\n"
        "167772160,167772415,DE,Berlin,52.52,13.40\n",
    )
    write_jsonl(
        landing / "crm/customers.jsonl",
        [
            {
                "customer_id": "CUS-0000001",
                "full_name": "Ada Example",
                "email": "ada@example.org",
                "phone": "+49 30 1234",
                "home_address": {
                    "street": "Hauptstr. 1",
                    "city": "Berlin",
                    "postal_code": "10115",
                    "country_code": "DE",
                    "latitude": 52.5,
                    "longitude": 13.4,
                },
                "tier": "gold",
                "language": "de",
                "signup_at": "2021-05-01T09:00:00+02:00",
                "marketing_opt_in": True,
                "devices": ["d1"],
                "ip_addresses": ["10.0.0.1"],
            }
        ],
    )


def clean_day(landing: Path, day: str = DAY, n_orders: int = 3) -> None:
    d = f"date={day}"
    write_jsonl(
        landing / f"oms/orders/{d}/orders.jsonl", [order(i) for i in range(1, n_orders + 1)]
    )
    write_text(
        landing / f"oms/cancellations/{d}/cancellations.csv",
        "order_id,cancelled_at,reason\nORD-00000001,2026-08-20T12:00:00Z,customer_request\n",
    )
    write_text(
        landing / f"wms/inventory/{d}/inventory_snapshot.csv",
        "snapshot_date,warehouse_id,sku_id,on_hand,reserved,inbound,replenished_qty\n"
        f"{day},WH-BER,SKU-0001,100,4,0,0\n{day},WH-BER,SKU-0002,0,0,50,0\n",
    )
    write_jsonl(
        landing / f"tms/shipments/{d}/shipments.jsonl",
        [
            {
                "shipment_id": "SHP-00000001",
                "order_id": "ORD-00000001",
                "warehouse_id": "WH-BER",
                "created_at": "2026-08-20T11:00:00+02:00",
                "service_level": "next_day",
                "total_weight_kg": 2.4,
                "promised_delivery_date": "2026-08-21",
                "lines": [{"line_no": 1, "sku_id": "SKU-0001", "quantity": 2}],
                "legs": [
                    {
                        "leg_no": 1,
                        "mode": "last_mile",
                        "carrier_id": "SWIFTPARCEL",
                        "tracking_ref": "SP1",
                        "vehicle_class": "van_diesel_average",
                        "origin_name": "WH-BER",
                        "origin_lat": 52.52,
                        "origin_lon": 13.4,
                        "origin_country": "DE",
                        "destination_name": "Berlin",
                        "destination_lat": 52.5,
                        "destination_lon": 13.4,
                        "destination_country": "DE",
                        "distance_km": 8.5,
                        "planned_departure_at": "2026-08-20T16:00:00+02:00",
                        "planned_arrival_at": "2026-08-21T12:00:00+02:00",
                    }
                ],
            }
        ],
    )
    write_jsonl(
        landing / f"carriers/SWIFTPARCEL/{d}/webhooks.jsonl",
        [
            {
                "msg_id": "m1",
                "event": "tracking_update",
                "carrier": "SWIFTPARCEL",
                "tracking_number": "SP1",
                "checkpoint": {
                    "tag": "InTransit",
                    "subtag": "InTransit_PickedUp",
                    "message": "Picked up",
                    "checkpoint_time": "2026-08-20T17:00:00+02:00",
                    "location": {"city": "Berlin", "country_iso2": "DE", "lat": 52.5, "lon": 13.4},
                },
            },
            {
                "msg_id": "m2",
                "event": "tracking_update",
                "carrier": "SWIFTPARCEL",
                "tracking_number": "SP1",
                "checkpoint": {
                    "tag": "Exception",
                    "subtag": "Exception_004",
                    "message": "Address issue",
                    "checkpoint_time": "2026-08-20T19:00:00+02:00",
                    "location": {},
                },
            },
        ],
    )
    write_jsonl(
        landing / f"carriers/BLUEWAVE/{d}/events.jsonl",
        [
            {
                "eventID": "e-1",
                "eventType": "TRANSPORT",
                "eventClassifierCode": "ACT",
                "eventDateTime": "2026-08-20T03:00:00Z",
                "transportEventTypeCode": "DEPA",
                "transportCall": {
                    "UNLocationCode": "DEHAM",
                    "modeOfTransport": "VESSEL",
                    "facilityName": "Hamburg",
                },
                "documentReferences": [
                    {"documentReferenceType": "BKG", "documentReferenceValue": "BW1"}
                ],
            }
        ],
    )
    write_text(
        landing / f"carriers/EURORAIL/{d}/events.csv",
        "consignment_no;status_code;station_code;station_name;local_time;train_no;remarks\n"
        "ER1;AB;DEHBF;Hamburg Hbf;20.08.2026 14:30;T100;\n"
        "ER1;XX;PLWAW;Warszawa;20.08.2026 23:10;T100;new code\n",
    )
    write_text(
        landing / f"payments/chargebacks/{d}/chargebacks.csv",
        "label_id,order_id,label_type,reported_at,amount,reason_code\n"
        "CB-1,ORD-00000002,chargeback,2026-08-20T08:00:00Z,24.9,10.4\n",
    )
    write_jsonl(
        landing / f"crm/reviews/{d}/reviews.jsonl",
        [
            {
                "review_id": "R-1",
                "order_id": "ORD-00000001",
                "customer_id": "CUS-0000001",
                "created_at": "2026-08-20T20:00:00+02:00",
                "contact_channel": "survey",
                "contact_reason": "review",
                "rating": 5,
                "comment": "Schnell!\nDanke.",
            }
        ],
    )


def broken_day(landing: Path, day: str = "2026-08-21") -> dict[str, int]:
    """A day whose files carry every kind of defect; returns the expected quarantine counts."""
    d = f"date={day}"
    orders = [
        order(10),  # good
        order(10),  # duplicate key
        order(11, order_id=None),  # null key
        order(12, channel="teleshopping"),  # unknown enum
        order(13, order_total=-5),  # out of range
        order(14, order_ts="2026-08-21 10:00:00"),  # no time zone
        order(15, order_ts="2026-08-21T09:00:00-03:00"),  # good, other time zone
        order(16, order_ts="not a time"),  # malformed timestamp
        order(
            17,
            lines=[
                {"line_no": 1, "sku_id": "SKU-0001", "quantity": -1, "unit_price": 1, "discount": 0}
            ],
        ),
        "{not json at all",  # bad JSON
    ]
    write_jsonl(
        landing / f"oms/orders/{d}/orders.jsonl", orders, tail='{"order_id": "ORD-0000000'
    )  # truncated
    # BOM + missing column (reserved) in the WMS file
    write_text(
        landing / f"wms/inventory/{d}/inventory_snapshot.csv",
        "snapshot_date,warehouse_id,sku_id,on_hand,inbound,replenished_qty\n"
        f"{day},WH-BER,SKU-0001,90,0,0\n",
        bom=True,
    )
    # wrong delimiter
    write_text(
        landing / f"oms/cancellations/{d}/cancellations.csv",
        "order_id;cancelled_at;reason\nORD-00000010;2026-08-21T12:00:00Z;customer_request\n",
    )
    # truncated CSV line
    write_text(
        landing / f"payments/chargebacks/{d}/chargebacks.csv",
        "label_id,order_id,label_type,reported_at,amount,reason_code\n"
        "CB-2,ORD-00000010,chargeback,2026-08-21T08:00:00Z,24.9,10.4\nCB-3,ORD-0000",
    )
    return {
        "orders": 8,
        "order_lines_parent_rejected": 5,
        "inventory_snapshots": 1,
        "cancellations": 1,
        "chargebacks": 1,
    }
