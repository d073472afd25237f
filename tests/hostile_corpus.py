"""A corpus of hostile input: every kind of bad line or message a feed can send, with the
outcome each one must have (landed, quarantined / dead-lettered, a duplicate) and a piece of
the reason it must be refused with.

The same corpus runs through batch ingestion (as lines of landing files, between valid ones)
and through the live stream on the real broker (as message bodies with headers):
tests/test_hostile.py. Times are built around ``day`` (the landing partition, a few days
before now) and ``now`` (the stream's receipt), so the corpus keeps its meaning as the clock
moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

LANDED, QUARANTINED, DUPLICATE, IGNORED, NOT_APPLICABLE = (
    "landed",
    "quarantined",
    "duplicate",
    "ignored",
    "n/a",
)
#: batch only: a line break splits the row in two physical lines; the first is a complete row
#: (it lands, its last field cut), the rest is quarantined
SPLIT = "split"

PARCEL, DCSA, RAIL, ORDERS = "parcel_webhook_json", "dcsa_tnt_json", "rail_csv", "orders"
#: the carriers of tests/landing_factory.reference() and their feed formats
CARRIER = {PARCEL: "SWIFTPARCEL", DCSA: "BLUEWAVE", RAIL: "EURORAIL"}
RAIL_HEADER = "consignment_no;status_code;station_code;station_name;local_time;train_no;remarks"


@dataclass(frozen=True)
class Case:
    """One hostile line / message body and what must become of it."""

    kind: str
    feed: str  # the feed (file) it belongs to: a carrier format or the OMS orders
    body: bytes
    batch: str  # outcome in batch ingestion
    stream: str  # outcome in the stream (quarantined = dead-lettered); n/a for orders
    reason: str = ""  # a piece of the (first) reason, case-insensitive
    #: physical lines the body makes in a file (a CR/LF inside a row makes two records)
    batch_records: int = 1
    carrier_id: str | None = field(default=None)  # stream header; default: the feed's carrier
    feed_header: str | None = field(default=None)  # stream header; default: the feed
    headers: bool = True  # False: publish without carrier_id / feed_format headers
    stream_reason: str | None = None  # when the stream's reason differs from the batch's

    @property
    def live_reason(self) -> str:
        return self.reason if self.stream_reason is None else self.stream_reason

    @property
    def stream_carrier(self) -> str | None:
        return self.carrier_id if self.carrier_id is not None else CARRIER.get(self.feed)

    @property
    def stream_feed(self) -> str:
        return self.feed_header if self.feed_header is not None else self.feed


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook(n: int, when: str, **over) -> dict:
    cp = {
        "tag": "InTransit",
        "subtag": "InTransit_PickedUp",
        "message": "Picked up",
        "checkpoint_time": when,
        "location": {"city": "Berlin", "country_iso2": "DE", "lat": 52.5, "lon": 13.4},
    }
    cp.update(over.pop("checkpoint", {}))
    record = {
        "msg_id": f"h-{n:04d}",
        "event": "tracking_update",
        "carrier": "SWIFTPARCEL",
        "tracking_number": f"SPH{n:04d}",
        "checkpoint": cp,
    }
    record.update(over)
    return record


def dcsa(n: int, when: str, **over) -> dict:
    record = {
        "eventID": f"hd-{n:04d}",
        "eventType": "TRANSPORT",
        "eventClassifierCode": "ACT",
        "eventDateTime": when,
        "transportEventTypeCode": "DEPA",
        "transportCall": {
            "UNLocationCode": "DEHAM",
            "modeOfTransport": "VESSEL",
            "facilityName": "Hamburg",
        },
        "documentReferences": [
            {"documentReferenceType": "BKG", "documentReferenceValue": f"BWH{n}"}
        ],
    }
    record.update(over)
    return record


def rail(n: int, local_time: str, **over) -> str:
    cells = {
        "consignment_no": f"ERH{n:04d}",
        "status_code": "AB",
        "station_code": "DEHBF",
        "station_name": "Hamburg Hbf",
        "local_time": local_time,
        "train_no": "T100",
        "remarks": "",
    }
    cells.update(over)
    return ";".join(cells.values())


def order_line(n: int, day: date, **over) -> dict:
    import landing_factory as lf

    record = lf.order(
        900_000 + n,
        order_ts=f"{day.isoformat()}T10:15:00+02:00",
        promised_delivery_date=(day + timedelta(days=1)).isoformat(),
    )
    record.update(over)
    return record


def _j(obj) -> bytes:
    return json.dumps(obj).encode()


def _nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month, 31 if month in (3, 10) else 30)
    return d - timedelta(days=(d.weekday() + 1) % 7)


def valid_records(feed: str, day: date, count: int, start: int = 0) -> list[bytes]:
    """Clean records of ``feed`` (unique ids) to interleave with the hostile ones."""
    when = _iso(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC))
    out = []
    for i in range(start, start + count):
        if feed == PARCEL:
            out.append(_j(webhook(5000 + i, when)))
        elif feed == DCSA:
            out.append(_j(dcsa(5000 + i, when)))
        elif feed == RAIL:
            out.append(rail(5000 + i, f"{day:%d.%m.%Y} 11:{i % 60:02d}").encode())
        else:
            out.append(_j(order_line(5000 + i, day)))
    return out


def corpus(day: date, now: datetime, cap: int) -> list[Case]:
    """Every hostile case. ``day``: the landing partition (and the day of the events), a few
    days before ``now``; ``cap``: the record size cap in bytes."""
    t = _iso(datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC))
    ahead = _iso(
        max(now, datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
        + timedelta(hours=3)
    )
    far_future = "2099-01-01T00:00:00Z"
    epoch = "1970-01-01T00:00:00Z"
    too_old = _iso(datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=3700))
    dst_end = _last_sunday(day.year if day.month > 10 else day.year - 1, 10)
    dst_start = _last_sunday(day.year if day.month > 3 else day.year - 1, 3)
    big = "x" * (cap + 1000)
    Q, L, D, Ig, NA = QUARANTINED, LANDED, DUPLICATE, IGNORED, NOT_APPLICABLE
    first = webhook(1, t)
    cases = [
        # ---------------------------------------------------------------- nesting and shape
        Case(
            "deep_nesting_100k",
            PARCEL,
            f'{{"msg_id":"h-0002","checkpoint":{_nested(100_000)}}}'.encode(),
            Q,
            Q,
            "nested deeper",
        ),
        Case(
            "nesting_over_limit",
            PARCEL,
            _j(webhook(3, t, checkpoint={"location": json.loads(_nested(60))})),
            Q,
            Q,
            "nested deeper",
        ),
        Case(
            "checkpoint_is_number",
            PARCEL,
            _j(webhook(4, t) | {"checkpoint": 5}),
            Q,
            Q,
            "checkpoint: 5 is a number, not an object",
        ),
        Case(
            "checkpoint_is_list",
            PARCEL,
            _j(webhook(5, t) | {"checkpoint": [1, 2]}),
            Q,
            Q,
            "checkpoint: [1, 2] is a list",
        ),
        Case(
            "status_code_is_list",
            PARCEL,
            _j(webhook(6, t, checkpoint={"subtag": ["InTransit_PickedUp"]})),
            Q,
            Q,
            "checkpoint.subtag",
        ),
        Case(
            "status_code_is_object",
            PARCEL,
            _j(webhook(7, t, checkpoint={"tag": {"a": 1}, "subtag": None})),
            Q,
            Q,
            "checkpoint.tag",
        ),
        Case(
            "location_is_list",
            PARCEL,
            _j(webhook(8, t, checkpoint={"location": [52.5, 13.4]})),
            Q,
            Q,
            "checkpoint.location",
        ),
        Case(
            "tracking_number_is_number",
            PARCEL,
            _j(webhook(9, t) | {"tracking_number": 123456}),
            L,
            L,
        ),
        Case(
            "tracking_number_is_bool",
            PARCEL,
            _j(webhook(10, t) | {"tracking_number": True}),
            Q,
            Q,
            "is a boolean, not text",
        ),
        Case(
            "tracking_number_is_null",
            PARCEL,
            _j(webhook(11, t) | {"tracking_number": None}),
            Q,
            Q,
            "tracking_ref: required value is missing",
        ),
        Case(
            "msg_id_is_object", PARCEL, _j(webhook(12, t) | {"msg_id": {"id": 12}}), Q, Q, "msg_id"
        ),
        Case(
            "latitude_is_text",
            PARCEL,
            _j(webhook(13, t, checkpoint={"location": {"lat": "north", "lon": 13.4}})),
            Q,
            Q,
            "location_lat: 'north' is not a number",
        ),
        Case(
            "latitude_is_list",
            PARCEL,
            _j(webhook(14, t, checkpoint={"location": {"lat": [1, 2], "lon": 13.4}})),
            Q,
            Q,
            "checkpoint.location.lat",
        ),
        Case("json_array_not_object", PARCEL, b"[1, 2, 3]", Q, Q, "not a JSON object but an array"),
        Case(
            "json_string_not_object",
            PARCEL,
            b'"tracking_update"',
            Q,
            Q,
            "not a JSON object but a string",
        ),
        Case("json_null", PARCEL, b"null", Q, Q, "not a JSON object but null"),
        # ---------------------------------------------------------------- encodings
        Case(
            "invalid_utf8",
            PARCEL,
            _j(webhook(15, t)).replace(b"Picked up", b"Picked \xff\xfe up"),
            Q,
            Q,
            "not valid UTF-8",
        ),
        Case(
            "utf16_encoded",
            PARCEL,
            json.dumps(webhook(16, t)).encode("utf-16"),
            Q,
            Q,
            "not valid UTF-8",
        ),
        Case("utf8_bom", PARCEL, b"\xef\xbb\xbf" + _j(webhook(17, t)), L, L),
        Case(
            "nul_escaped_in_string",
            PARCEL,
            _j(webhook(18, t) | {"tracking_number": "SP\u0000H18"}),
            Q,
            Q,
            "NUL character",
        ),
        Case(
            "nul_raw_byte",
            PARCEL,
            _j(webhook(19, t)).replace(b'"event"', b'\x00"event"'),
            Q,
            Q,
            "invalid JSON",
        ),
        # ---------------------------------------------------------------- sizes
        Case(
            "overlong_field",
            PARCEL,
            _j(webhook(20, t) | {"tracking_number": "SP" + "9" * 20_000}),
            Q,
            Q,
            "tracking_ref: ",
        ),
        Case(
            "over_size_cap", PARCEL, _j(webhook(21, t) | {"padding": big}), Q, Q, "record too large"
        ),
        Case("empty_body", PARCEL, b"", Ig, Q, "empty message body"),
        Case("whitespace_body", PARCEL, b"   \t ", Ig, Q, "empty message body"),
        Case("truncated_json", PARCEL, _j(webhook(22, t))[:60], Q, Q, "invalid JSON"),
        # ---------------------------------------------------------------- numbers
        Case(
            "nan_number",
            PARCEL,
            _j(webhook(23, t)).replace(b'"lat": 52.5', b'"lat": NaN'),
            Q,
            Q,
            "NaN is not a JSON number",
        ),
        Case(
            "infinity_number",
            PARCEL,
            _j(webhook(24, t)).replace(b'"lon": 13.4', b'"lon": -Infinity'),
            Q,
            Q,
            "-Infinity is not a JSON number",
        ),
        Case(
            "overflowing_float",
            PARCEL,
            _j(webhook(25, t)).replace(b'"lat": 52.5', b'"lat": 1e400'),
            Q,
            Q,
            "is not a finite number",
        ),
        Case(
            "huge_integer",
            PARCEL,
            _j(webhook(26, t)).replace(b'"lat": 52.5', b'"lat": ' + b"9" * 40),
            Q,
            Q,
            "is outside [-90, 90]",
        ),
        Case(
            "integer_over_4300_digits",
            PARCEL,
            _j(webhook(27, t)).replace(b'"lat": 52.5', b'"lat": ' + b"1" * 5000),
            Q,
            Q,
            "invalid JSON",
        ),
        # ---------------------------------------------------------------- keys and copies
        Case(
            "duplicate_keys",
            PARCEL,
            _j(webhook(28, t)).replace(
                b'"msg_id": "h-0028"', b'"msg_id": "h-0028", "msg_id": "h-9028"'
            ),
            Q,
            Q,
            "duplicate key 'msg_id'",
        ),
        Case("duplicate_message_original", PARCEL, _j(first), L, L),
        Case("duplicate_message_copy", PARCEL, _j(first), L, D),
        # ---------------------------------------------------------------- injection text
        Case(
            "sql_injection",
            PARCEL,
            _j(webhook(29, t, checkpoint={"message": "x'); DROP TABLE raw.orders; --"})),
            L,
            L,
        ),
        Case(
            "html_injection",
            PARCEL,
            _j(
                webhook(
                    30,
                    t,
                    checkpoint={
                        "message": "<script>alert('x')</script><img src=x onerror=alert(1)>"
                    },
                )
            ),
            L,
            L,
        ),
        # ---------------------------------------------------------------- times
        Case("time_far_future", PARCEL, _j(webhook(31, far_future)), Q, Q, "after its receipt"),
        Case(
            "time_hours_ahead",
            PARCEL,
            _j(webhook(32, ahead)),
            Q,
            Q,
            "more than 1 h after its receipt",
        ),
        Case("time_epoch_zero", PARCEL, _j(webhook(33, epoch)), Q, Q, "below the minimum"),
        Case(
            "time_over_ten_years_old", PARCEL, _j(webhook(34, too_old)), Q, Q, "before its receipt"
        ),
        Case(
            "time_unparseable",
            PARCEL,
            _j(webhook(35, "yesterday")),
            Q,
            Q,
            "is not an ISO-8601 timestamp",
        ),
        Case(
            "time_without_offset",
            PARCEL,
            _j(webhook(36, t.replace("Z", ""))),
            Q,
            Q,
            "has no time zone offset",
        ),
        Case(
            "time_is_number",
            PARCEL,
            _j(webhook(37, t) | {"checkpoint": {"checkpoint_time": 1767225600}}),
            Q,
            Q,
            "event_ts",
        ),
        # ---------------------------------------------------------------- DCSA
        Case(
            "dcsa_transport_call_is_list",
            DCSA,
            _j(dcsa(1, t, transportCall=[{"UNLocationCode": "DEHAM"}])),
            Q,
            Q,
            "transportCall: ",
        ),
        Case(
            "dcsa_event_type_is_list",
            DCSA,
            _j(dcsa(2, t, eventType=["TRANSPORT"])),
            Q,
            Q,
            "eventType: ",
        ),
        Case(
            "dcsa_code_is_list",
            DCSA,
            _j(dcsa(3, t, transportEventTypeCode=["DEPA"])),
            Q,
            Q,
            "transportEventTypeCode",
        ),
        Case(
            "dcsa_references_not_list",
            DCSA,
            _j(dcsa(4, t, documentReferences={"BKG": "x"})),
            Q,
            Q,
            "documentReferences",
        ),
        Case("dcsa_unknown_code", DCSA, _j(dcsa(5, t, transportEventTypeCode="ZZZZ")), L, L),
        Case(
            "dcsa_estimate_weeks_ahead",
            DCSA,
            _j(
                dcsa(
                    6,
                    _iso(now + timedelta(days=30)),
                    eventClassifierCode="EST",
                    transportEventTypeCode="ARRI",
                )
            ),
            L,
            L,
        ),
        Case(
            "dcsa_estimate_years_ahead",
            DCSA,
            _j(dcsa(7, far_future, eventClassifierCode="EST", transportEventTypeCode="ARRI")),
            Q,
            Q,
            "after its receipt",
        ),
        # ---------------------------------------------------------------- rail CSV rows
        Case(
            "rail_crlf_inside_row",
            RAIL,
            rail(1, f"{day:%d.%m.%Y} 10:00", station_name="Ham\r\nburg").encode(),
            Q,
            Q,
            "expected 7 fields, found 4",  # the first of the two short lines
            batch_records=2,
            stream_reason="line break (CR/LF) inside the row",
        ),
        Case(
            "rail_lf_inside_row",
            RAIL,
            rail(2, f"{day:%d.%m.%Y} 10:00", remarks="late\nagain").encode(),
            SPLIT,
            Q,
            "expected 7 fields, found 1",
            batch_records=2,
            stream_reason="line break (CR/LF) inside the row",
        ),
        Case("rail_too_few_fields", RAIL, b"ERH0003;AB;DEHBF", Q, Q, "expected 7"),
        Case(
            "rail_too_many_fields",
            RAIL,
            (rail(4, f"{day:%d.%m.%Y} 10:00") + ";extra;more").encode(),
            Q,
            Q,
            "expected 7",
        ),
        Case(
            "rail_wrong_delimiter",
            RAIL,
            rail(5, f"{day:%d.%m.%Y} 10:00").replace(";", ",").encode(),
            Q,
            Q,
            "expected 7",
        ),
        Case(
            "rail_unclosed_quote",
            RAIL,
            rail(6, f"{day:%d.%m.%Y} 10:00", station_name='"Hamburg Hbf').encode(),
            Q,
            Q,
            "",
        ),
        Case(
            "rail_nul",
            RAIL,
            rail(7, f"{day:%d.%m.%Y} 10:00", remarks="a\x00b").encode(),
            Q,
            Q,
            "NUL character",
        ),
        Case(
            "rail_time_unparseable",
            RAIL,
            rail(8, "32.13.2026 25:99").encode(),
            Q,
            Q,
            "is not an ISO-8601 timestamp",
        ),
        Case(
            "rail_time_ambiguous_autumn_hour",
            RAIL,
            rail(9, f"{dst_end:%d.%m.%Y} 02:30").encode(),
            L,
            L,
        ),
        Case(
            "rail_time_missing_spring_hour",
            RAIL,
            rail(10, f"{dst_start:%d.%m.%Y} 02:30").encode(),
            L,
            L,
        ),
        Case(
            "rail_time_far_future",
            RAIL,
            rail(11, "01.01.2099 10:00").encode(),
            Q,
            Q,
            "after its receipt",
        ),
        # ---------------------------------------------------------------- headers (stream only)
        Case(
            "unknown_feed_format_header",
            PARCEL,
            _j(webhook(38, t)),
            NA,
            Q,
            "is not a known feed format",
            feed_header="fax_xml",
        ),
        Case(
            "unknown_carrier_unknown_format",
            PARCEL,
            _j(webhook(39, t)),
            NA,
            Q,
            "is not a known feed format",
            carrier_id="GHOSTCARRIER",
            feed_header="",
        ),
        Case(
            "missing_headers",
            PARCEL,
            _j(webhook(40, t)),
            NA,
            Q,
            "no carrier_id header",
            headers=False,
        ),
        # ---------------------------------------------------------------- OMS orders (batch only)
        Case(
            "order_deep_nesting",
            ORDERS,
            f'{{"order_id":"ORD-00990001","lines":[{_nested(50_000)}]}}'.encode(),
            Q,
            NA,
            "nested deeper",
        ),
        Case("order_lines_not_list", ORDERS, _j(order_line(2, day, lines=5)), L, NA),
        Case(
            "order_address_is_list",
            ORDERS,
            _j(order_line(3, day, billing_address=["Hauptstr. 1", "Berlin"])),
            Q,
            NA,
            "billing_address",
        ),
        Case(
            "order_total_is_list",
            ORDERS,
            _j(order_line(4, day, order_total=[24.9])),
            Q,
            NA,
            "order_total",
        ),
        Case(
            "order_total_nan",
            ORDERS,
            _j(order_line(5, day)).replace(b'"order_total": 24.9', b'"order_total": NaN'),
            Q,
            NA,
            "NaN is not a JSON number",
        ),
        Case("order_id_is_bool", ORDERS, _j(order_line(6, day, order_id=True)), Q, NA, "order_id"),
        Case(
            "order_duplicate_key_id",
            ORDERS,
            _j(order_line(7, day)).replace(
                b'"channel": "web"', b'"channel": "web", "channel": "fax"'
            ),
            Q,
            NA,
            "duplicate key 'channel'",
        ),
        Case("order_duplicate_order", ORDERS, _j(order_line(8, day)), L, NA),
        Case("order_duplicate_order_copy", ORDERS, _j(order_line(8, day)), Q, NA, "duplicate key"),
        Case(
            "order_over_size_cap",
            ORDERS,
            _j(order_line(9, day, promo_code=big)),
            Q,
            NA,
            "record too large",
        ),
        Case("order_not_object", ORDERS, b"[]", Q, NA, "not a JSON object"),
        Case("order_truncated", ORDERS, _j(order_line(10, day))[:100], Q, NA, "invalid JSON"),
        Case(
            "order_sql_injection",
            ORDERS,
            _j(order_line(11, day, promo_code="'; DELETE FROM raw.orders; --")),
            L,
            NA,
        ),
        Case(
            "order_many_keys",
            ORDERS,
            _j(order_line(12, day) | {f"k{i}": i for i in range(20_000)}),
            L,
            NA,
        ),
    ]
    kinds = [c.kind for c in cases]
    assert len(kinds) == len(set(kinds)), "every case has its own kind"
    return cases
