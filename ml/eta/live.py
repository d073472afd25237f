"""ETAs while the events come in: the champion, loaded once, predicting a few shipments at a time.

The stream consumer calls :meth:`EtaScorer.predict` with the tracking references of a batch of
events it has just stored. The shipments owning them are read from the dbt staging views
(``stg_tms__shipments``, ``stg_tms__shipment_legs``, ``stg_carriers__carrier_events``): views,
so an event committed a moment ago counts even though no mart has been rebuilt since. Features
come from the same query as training (:func:`ml.eta.features.feature_sql`), only for those
shipments, so a few hundred references take a fraction of a second.

::

    scorer = EtaScorer.load()          # None until a champion exists
    if scorer is not None:
        etas = scorer.predict(con, ["SWP0000100003", "CR0000100031"])
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ml.eta.features import STAGING, Sources, build_features
from ml.eta.model import EtaModel

#: the columns of :meth:`EtaScorer.predict`
ETA_COLUMNS = (
    "shipment_id", "order_id", "tracking_ref", "as_of", "predicted_delivery_at",
    "remaining_hours", "planned_delivery_at", "model_version",
)  # fmt: skip


def live_points(sources: Sources = STAGING) -> str:
    """The shipments owning ``$refs`` at ``$as_of`` (null: at each one's latest scan); the
    reference reported per shipment is the one of its latest leg among those asked for."""
    return f"""
    select
        shipment_id,
        cast($as_of as timestamptz) as as_of,
        arg_max(tracking_ref, leg_no) as tracking_ref
    from {sources.legs}
    where tracking_ref in (select unnest(cast($refs as varchar[])))
    group by shipment_id
    """


def open_points(sources: Sources = STAGING) -> str:
    """Every shipment open at ``$as_of``: created in the ``$open_days`` before it, not delivered
    (the last leg's DELIVERED scan), reported lost or returned by then."""
    return f"""
    with
    recent as (
        select shipment_id
        from {sources.shipments}
        where created_at <= $as_of and created_at > $as_of - to_days(cast($open_days as integer))
    ),
    legs as (
        select legs.shipment_id, legs.leg_no, legs.tracking_ref,
            legs.leg_no = max(legs.leg_no) over (partition by legs.shipment_id) as is_last
        from {sources.legs} as legs
        inner join recent on legs.shipment_id = recent.shipment_id
    ),
    closed as (
        select distinct legs.shipment_id
        from {sources.events} as e
        inner join legs on e.tracking_ref = legs.tracking_ref
        where e.is_actual and e.event_at <= $as_of and (
            (e.event_code = 'DELIVERED' and legs.is_last)
            or e.exception_reason = 'LOST'
            or e.event_code = 'RETURNED'
        )
    )
    select recent.shipment_id, cast($as_of as timestamptz) as as_of
    from recent
    where recent.shipment_id not in (select shipment_id from closed)
    """


def _utc(value: datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def eta_frame(features: pd.DataFrame, model: EtaModel, version: str) -> pd.DataFrame:
    """Predictions for a feature frame: the ETA columns (UTC) plus what the baseline said."""
    out = pd.DataFrame(
        {
            "shipment_id": features["shipment_id"].astype(str),
            "order_id": features["order_id"].astype(str),
            "as_of": pd.to_datetime(features["as_of"], utc=True),
            "planned_delivery_at": pd.to_datetime(features["planned_delivery_at"], utc=True),
        }
    )
    remaining = model.predict_remaining_hours(features)
    known = pd.to_datetime(features["known_delivered_at"], utc=True)
    predicted = (out["as_of"] + pd.to_timedelta(remaining, unit="h")).dt.ceil("s")
    out["predicted_delivery_at"] = known.where(known.notna(), predicted)
    out["remaining_hours"] = remaining.astype(float)
    out["planned_remaining_hours"] = features["planned_remaining_hours"].to_numpy(dtype=float)
    out["model_version"] = str(version)
    return out


class EtaScorer:
    """The champion ETA model, loaded once, for the live consumer."""

    def __init__(self, model: EtaModel, version: str, sources: Sources = STAGING) -> None:
        self.model = model
        self.version = str(version)
        self.sources = sources

    @classmethod
    def load(cls) -> EtaScorer | None:
        """The registry's champion (``shipment_eta@champion``); None when there is none yet."""
        from ml.eta import registry

        current = registry.champion()
        if current is None:
            return None
        version, model = current
        return cls(model, version)

    def predict(
        self,
        con: duckdb.DuckDBPyConnection,
        tracking_refs: list[str],
        as_of: datetime | None = None,
    ) -> pd.DataFrame:
        """One row per shipment owning one of ``tracking_refs`` (unknown references are
        ignored), with :data:`ETA_COLUMNS`.

        ``as_of`` is the moment the ETA is for; None means each shipment's latest scan (or its
        creation before any), which is "now" for a consumer that calls this as the scans
        arrive, and stays right when a past day is replayed. Only events up to ``as_of`` count.
        A delivered shipment's ETA is its delivery, with 0 hours remaining.
        """
        refs = sorted({str(r) for r in tracking_refs if r})
        if not refs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ETA_COLUMNS})
        features = build_features(
            con,
            live_points(self.sources),
            {"refs": refs, "as_of": _utc(as_of)},
            passthrough=("tracking_ref",),
            sources=self.sources,
            respect_receipt=False,
        )
        out = eta_frame(features, self.model, self.version)
        out["tracking_ref"] = features["tracking_ref"].astype(str).to_numpy()
        return out[list(ETA_COLUMNS)].reset_index(drop=True)
