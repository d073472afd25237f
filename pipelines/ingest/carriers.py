"""Normalise each carrier's native tracking format into the canonical event of raw.carrier_events.

One function per feed format turns one native record into one canonical record (so record
numbers and original text stay aligned for quarantine). Codes are mapped with
``carrier_mappings.yaml``; an unknown code is kept and flagged, never dropped. Values that
cannot be interpreted (a local time that does not parse) are passed through unchanged so that
the contract rejects the record with a precise reason.

A normaliser never raises on content. Where the feed has a list, an object or a number where
its format has an object or a single value (``"checkpoint": 5``, ``"transportCall": [..]``,
``"subtag": ["x"]``), the event carries the problem in :data:`PROBLEMS` (``checkpoint: 5 is
not an object``), and the ingestion runner and the stream reject the record with it, before
the contract's own reasons. A record that still makes a normaliser fail is rejected with the
error instead of stopping the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

MAPPINGS_PATH = Path(__file__).with_name("carrier_mappings.yaml")
FEED_FORMATS = ("parcel_webhook_json", "dcsa_tnt_json", "rail_csv")
#: Which file of a carrier's daily folder holds which format (used when the carrier registry
#: does not know the carrier yet).
FILE_FORMATS = {
    "webhooks.jsonl": "parcel_webhook_json",
    "events.jsonl": "dcsa_tnt_json",
    "events.csv": "rail_csv",
}


@lru_cache(maxsize=1)
def mappings() -> dict[str, Any]:
    with open(MAPPINGS_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _codes(feed_format: str, carrier_id: str) -> dict[str, list[Any]]:
    spec = mappings()[feed_format]
    codes = dict(spec["codes"])
    codes.update(((spec.get("carriers") or {}).get(carrier_id) or {}).get("codes") or {})
    return codes


#: The key of a canonical event under which a normaliser lists what is wrong with the record
#: (events are built from scratch, so no feed field can collide with it); callers pop it.
PROBLEMS = "_problems"


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    return {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
    }.get(type(value), f"a {type(value).__name__}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(
    record: dict[str, Any], key: str, problems: list[str], where: str | None = None
) -> dict[str, Any]:
    """``record[key]`` when it is an object (or absent: ``{}``); a problem otherwise."""
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where or key}: {_shown(value)} is {_kind(value)}, not an object")
        return {}
    return value


def _scalar(value: Any, where: str, problems: list[str]) -> Any:
    """A value that must be single (text or a number): a list or object is a problem. The value
    is passed on as it is, so the contract also names the canonical column it would fill."""
    if isinstance(value, dict | list):
        problems.append(f"{where}: {_shown(value)} is {_kind(value)} where a single value belongs")
    return value


def _lookup(codes: dict[str, list[Any]], *keys: Any) -> tuple[str, str | None, bool]:
    for key in keys:
        if isinstance(key, str) and key and key in codes:
            code, reason = codes[key]
            return code, reason, False
    return "UNKNOWN", None, True


def _remark_reason(remark: Any) -> str | None:
    """The exception reason a rail operator's free-text remark names (``remark_reasons``)."""
    if not isinstance(remark, str) or not remark:
        return None
    text = remark.casefold()
    for phrase, reason in (mappings()["rail_csv"].get("remark_reasons") or {}).items():
        if phrase.casefold() in text:
            return reason
    return None


def _parcel(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    problems: list[str] = []
    cp = _object(record, "checkpoint", problems)
    tag = _scalar(cp.get("tag"), "checkpoint.tag", problems)
    subtag = _scalar(cp.get("subtag"), "checkpoint.subtag", problems)
    code, reason, unmapped = _lookup(codes, subtag, tag)
    location = _object(cp, "location", problems, "checkpoint.location")
    event = {
        "event_id": _scalar(record.get("msg_id"), "msg_id", problems),
        "carrier_id": _scalar(record.get("carrier"), "carrier", problems) or carrier_id,
        "tracking_ref": _scalar(record.get("tracking_number"), "tracking_number", problems),
        "event_ts": _scalar(cp.get("checkpoint_time"), "checkpoint.checkpoint_time", problems),
        "event_code": code,
        "exception_reason": reason,
        "event_classifier": "ACT",
        "carrier_status_code": subtag or tag,
        "carrier_status_text": _scalar(cp.get("message"), "checkpoint.message", problems),
        "is_unmapped": unmapped,
        "mode": mappings()["parcel_webhook_json"]["mode"],
        "location_name": _scalar(location.get("city"), "checkpoint.location.city", problems),
        "location_country": _scalar(
            location.get("country_iso2"), "checkpoint.location.country_iso2", problems
        ),
        "location_lat": _scalar(location.get("lat"), "checkpoint.location.lat", problems),
        "location_lon": _scalar(location.get("lon"), "checkpoint.location.lon", problems),
    }
    if problems:
        event[PROBLEMS] = problems
    return event


def _dcsa(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    problems: list[str] = []
    event_type = _scalar(record.get("eventType"), "eventType", problems)
    if event_type == "SHIPMENT":
        native = _scalar(record.get("shipmentEventTypeCode"), "shipmentEventTypeCode", problems)
        code, reason, unmapped = _lookup(codes, f"SHIPMENT:{native}")
    else:
        native = _scalar(
            record.get("transportEventTypeCode") or record.get("equipmentEventTypeCode"),
            "transportEventTypeCode",
            problems,
        )
        code, reason, unmapped = _lookup(codes, native)
    refs = record.get("documentReferences") or []
    if not isinstance(refs, list):
        problems.append(f"documentReferences: {_shown(refs)} is {_kind(refs)}, not a list")
        refs = []
    booking = next(
        (
            r.get("documentReferenceValue")
            for r in refs
            if isinstance(r, dict) and r.get("documentReferenceType") in ("BKG", "TRD")
        ),
        None,
    )
    booking = _scalar(booking, "documentReferences.documentReferenceValue", problems)
    call = _object(record, "transportCall", problems)
    unloc = _scalar(call.get("UNLocationCode"), "transportCall.UNLocationCode", problems)
    transport = _scalar(call.get("modeOfTransport"), "transportCall.modeOfTransport", problems)
    spec = mappings()["dcsa_tnt_json"]
    event = {
        "event_id": _scalar(record.get("eventID"), "eventID", problems),
        "carrier_id": carrier_id,
        "tracking_ref": booking
        or _scalar(record.get("equipmentReference"), "equipmentReference", problems),
        "event_ts": _scalar(record.get("eventDateTime"), "eventDateTime", problems),
        "event_code": code,
        "exception_reason": reason,
        "event_classifier": _scalar(
            record.get("eventClassifierCode"), "eventClassifierCode", problems
        ),
        "carrier_status_code": f"{event_type}:{native}" if event_type else native,
        "carrier_status_text": _scalar(
            call.get("facilityName"), "transportCall.facilityName", problems
        ),
        "is_unmapped": unmapped,
        "mode": spec["transport_modes"].get(transport, spec["mode"])
        if isinstance(transport, str)
        else spec["mode"],
        "location_name": unloc,
        "location_country": unloc[:2] if isinstance(unloc, str) and len(unloc) >= 2 else None,
        "location_lat": None,
        "location_lon": None,
    }
    if problems:
        event[PROBLEMS] = problems
    return event


@lru_cache(maxsize=64)
def _zone(country: str) -> ZoneInfo:
    spec = mappings()["rail_csv"]
    return ZoneInfo(spec["station_timezones"].get(country, spec["default_timezone"]))


def _rail_naive(text: str) -> datetime:
    """``DD.MM.YYYY HH:MM`` as a naive datetime: sliced when it has exactly that shape (strptime
    costs about 17 us a row), strptime's own reading otherwise; both raise ValueError alike."""
    if (
        len(text) == 16
        and text[2] == text[5] == "."
        and text[10] == " "
        and text[13] == ":"
        and text.isascii()
        and (text[:2] + text[3:5] + text[6:10] + text[11:13] + text[14:16]).isdigit()
    ):
        return datetime(
            int(text[6:10]), int(text[3:5]), int(text[:2]), int(text[11:13]), int(text[14:16])
        )
    return datetime.strptime(text, "%d.%m.%Y %H:%M")


def rail_local_to_utc(local_time: str | None, station_code: str | None) -> str | None:
    """``DD.MM.YYYY HH:MM`` in the station's zone -> ISO-8601 UTC; unparseable text is returned
    unchanged so the contract reports it. Ambiguous autumn hours resolve to the earlier one."""
    if not local_time or not isinstance(local_time, str):
        return local_time
    try:
        naive = _rail_naive(local_time.strip())
    except ValueError:
        return local_time
    country = station_code[:2].upper() if isinstance(station_code, str) else ""
    return naive.replace(tzinfo=_zone(country)).isoformat()


def _rail(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    native = record.get("status_code")
    code, reason, unmapped = _lookup(codes, native)
    if code == "EXCEPTION":
        reason = _remark_reason(record.get("remarks")) or reason
    station = record.get("station_code")
    key = "|".join(
        str(record.get(k) or "")
        for k in ("consignment_no", "status_code", "station_code", "local_time")
    )
    return {
        # rail feeds carry no event id: a stable hash makes re-sent rows recognisable duplicates
        "event_id": f"{carrier_id}-{hashlib.sha1(key.encode()).hexdigest()[:20]}",
        "carrier_id": carrier_id,
        "tracking_ref": record.get("consignment_no"),
        "event_ts": rail_local_to_utc(record.get("local_time"), station),
        "event_code": code,
        "exception_reason": reason,
        "event_classifier": "ACT",
        "carrier_status_code": native,
        "carrier_status_text": record.get("remarks"),
        "is_unmapped": unmapped,
        "mode": None,  # filled from the carrier registry (rail or road line-haul)
        "location_name": record.get("station_name"),
        "location_country": station[:2].upper()
        if isinstance(station, str) and len(station) >= 2
        else None,
        "location_lat": None,
        "location_lon": None,
    }


NORMALISERS: dict[str, Callable[[dict[str, Any], str, dict[str, list[Any]]], dict[str, Any]]] = {
    "parcel_webhook_json": _parcel,
    "dcsa_tnt_json": _dcsa,
    "rail_csv": _rail,
}

RAIL_COLUMNS = (
    "consignment_no",
    "status_code",
    "station_code",
    "station_name",
    "local_time",
    "train_no",
    "remarks",
)


def _unreadable(carrier_id: str, exc: Exception) -> dict[str, Any]:
    """The event of a record a normaliser failed on: nothing but the reason it is rejected."""
    event: dict[str, Any] = dict.fromkeys(CANONICAL_COLUMNS)
    event.update(carrier_id=carrier_id, is_unmapped=True)
    event[PROBLEMS] = [f"record: could not be normalised ({type(exc).__name__}: {str(exc)[:160]})"]
    return event


CANONICAL_COLUMNS = (
    "event_id",
    "carrier_id",
    "tracking_ref",
    "event_ts",
    "event_code",
    "exception_reason",
    "event_classifier",
    "carrier_status_code",
    "carrier_status_text",
    "is_unmapped",
    "mode",
    "location_name",
    "location_country",
    "location_lat",
    "location_lon",
)


def normalise(
    feed_format: str, carrier_id: str, records: list[dict[str, Any]], mode: str | None = None
) -> list[dict[str, Any]]:
    """Canonical records, one per native record, in the same order (never raises on content:
    an event whose record has problems lists them under :data:`PROBLEMS`)."""
    codes = _codes(feed_format, carrier_id)
    fn = NORMALISERS[feed_format]
    out = []
    for record in records:
        try:
            if not isinstance(record, dict):
                raise TypeError(f"a {type(record).__name__}, not an object")
            event = fn(record, carrier_id, codes)
        except Exception as exc:  # noqa: BLE001 - one record never stops the feed
            event = _unreadable(carrier_id, exc)
        event["feed_format"] = feed_format
        if event["mode"] is None:
            event["mode"] = mode or mappings()[feed_format]["mode"]
        out.append(event)
    return out
