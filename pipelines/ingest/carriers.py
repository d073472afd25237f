"""Normalise each carrier's native tracking format into the canonical event of raw.carrier_events.

One function per feed format turns one native record into one canonical record (so record
numbers and original text stay aligned for quarantine). Codes are mapped with
``carrier_mappings.yaml``; an unknown code is kept and flagged, never dropped. Values that
cannot be interpreted (a local time that does not parse) are passed through unchanged so that
the contract rejects the record with a precise reason.
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


def _lookup(codes: dict[str, list[Any]], *keys: str | None) -> tuple[str, str | None, bool]:
    for key in keys:
        if key and key in codes:
            code, reason = codes[key]
            return code, reason, False
    return "UNKNOWN", None, True


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _parcel(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    cp = record.get("checkpoint") or {}
    tag, subtag = cp.get("tag"), cp.get("subtag")
    code, reason, unmapped = _lookup(codes, subtag, tag)
    return {
        "event_id": record.get("msg_id"),
        "carrier_id": record.get("carrier") or carrier_id,
        "tracking_ref": record.get("tracking_number"),
        "event_ts": cp.get("checkpoint_time"),
        "event_code": code,
        "exception_reason": reason,
        "event_classifier": "ACT",
        "carrier_status_code": subtag or tag,
        "carrier_status_text": cp.get("message"),
        "is_unmapped": unmapped,
        "mode": mappings()["parcel_webhook_json"]["mode"],
        "location_name": _get(cp, "location", "city"),
        "location_country": _get(cp, "location", "country_iso2"),
        "location_lat": _get(cp, "location", "lat"),
        "location_lon": _get(cp, "location", "lon"),
    }


def _dcsa(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    event_type = record.get("eventType")
    if event_type == "SHIPMENT":
        native = record.get("shipmentEventTypeCode")
        code, reason, unmapped = _lookup(codes, f"SHIPMENT:{native}")
    else:
        native = record.get("transportEventTypeCode") or record.get("equipmentEventTypeCode")
        code, reason, unmapped = _lookup(codes, native)
    refs = record.get("documentReferences") or []
    booking = next(
        (
            r.get("documentReferenceValue")
            for r in refs
            if isinstance(r, dict) and r.get("documentReferenceType") in ("BKG", "TRD")
        ),
        None,
    )
    call = record.get("transportCall") or {}
    unloc = call.get("UNLocationCode") if isinstance(call, dict) else None
    spec = mappings()["dcsa_tnt_json"]
    return {
        "event_id": record.get("eventID"),
        "carrier_id": carrier_id,
        "tracking_ref": booking or record.get("equipmentReference"),
        "event_ts": record.get("eventDateTime"),
        "event_code": code,
        "exception_reason": reason,
        "event_classifier": record.get("eventClassifierCode"),
        "carrier_status_code": f"{event_type}:{native}" if event_type else native,
        "carrier_status_text": call.get("facilityName") if isinstance(call, dict) else None,
        "is_unmapped": unmapped,
        "mode": spec["transport_modes"].get(call.get("modeOfTransport"), spec["mode"])
        if isinstance(call, dict)
        else spec["mode"],
        "location_name": unloc,
        "location_country": unloc[:2] if isinstance(unloc, str) and len(unloc) >= 2 else None,
        "location_lat": None,
        "location_lon": None,
    }


@lru_cache(maxsize=64)
def _zone(country: str) -> ZoneInfo:
    spec = mappings()["rail_csv"]
    return ZoneInfo(spec["station_timezones"].get(country, spec["default_timezone"]))


def rail_local_to_utc(local_time: str | None, station_code: str | None) -> str | None:
    """``DD.MM.YYYY HH:MM`` in the station's zone -> ISO-8601 UTC; unparseable text is returned
    unchanged so the contract reports it. Ambiguous autumn hours resolve to the earlier one."""
    if not local_time:
        return local_time
    try:
        naive = datetime.strptime(local_time.strip(), "%d.%m.%Y %H:%M")
    except ValueError:
        return local_time
    country = (station_code or "")[:2].upper()
    return naive.replace(tzinfo=_zone(country)).isoformat()


def _rail(record: dict[str, Any], carrier_id: str, codes: dict[str, list[Any]]) -> dict[str, Any]:
    native = record.get("status_code")
    code, reason, unmapped = _lookup(codes, native)
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


def normalise(
    feed_format: str, carrier_id: str, records: list[dict[str, Any]], mode: str | None = None
) -> list[dict[str, Any]]:
    """Canonical records, one per native record, in the same order."""
    codes = _codes(feed_format, carrier_id)
    fn = NORMALISERS[feed_format]
    out = []
    for record in records:
        event = fn(record, carrier_id, codes)
        event["feed_format"] = feed_format
        if event["mode"] is None:
            event["mode"] = mode or mappings()[feed_format]["mode"]
        out.append(event)
    return out
