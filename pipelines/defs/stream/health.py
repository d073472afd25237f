"""The stream consumer's health in Dagster: a sensor every 30 s and an asset check.

``ordertower stream`` runs outside Dagster. The sensor ``stream_consumer_health`` reads its
heartbeats and recorded failures (``pipelines/stream/health.py``: the lake's ``ops`` tables and
the local files under ``$ORDERTOWER_HOME/ops/``) and the queues' depths on the broker, and
reports the asset check ``stream_consumer_healthy`` of ``raw/carrier_events_stream`` as a
runless evaluation: it fails (severity ERROR, red on the asset) when a consumer is dead or
stalled for more than ``STALE_AFTER_S`` seconds while it should be running or messages wait, or
when a permanent lake failure is open; it passes again once the stream commits a batch after
the failure. Heartbeat files are beaten every 10 s, so a dead consumer is flagged at most
``STALE_AFTER_S`` + ``SENSOR_INTERVAL_S`` = 2 minutes after its last beat.
"""

from __future__ import annotations

import json
import time

import dagster as dg

from ordertower.lake import LakeError
from pipelines.defs.resources import LakeResource
from pipelines.defs.stream.assets import carrier_events_stream
from pipelines.stream import health

CHECK_NAME = "stream_consumer_healthy"
SENSOR_INTERVAL_S = 30
#: no beat for this long while a consumer should be running: dead (or stuck in a lake call)
STALE_AFTER_S = 90
#: while unhealthy and unchanged, the failing evaluation is reported again this often
REMIND_EVERY_S = 600


def queue_depths(queues: set[str]) -> dict[str, int | None]:
    """Messages ready per queue, or None where the broker or the queue cannot be reached."""
    from pipelines.stream.broker import connect, queue_depth, reachable

    depths: dict[str, int | None] = dict.fromkeys(queues)
    if not queues or not reachable(timeout=1.0):
        return depths
    try:
        connection = connect(heartbeat=0)
    except Exception:  # noqa: BLE001 - depth is context, not a verdict
        return depths
    try:
        for queue in queues:
            try:
                depths[queue] = queue_depth(connection.channel(), queue)
            except Exception:  # noqa: BLE001 - a queue that does not exist (yet)
                depths[queue] = None
    finally:
        if connection.is_open:
            connection.close()
    return depths


def evaluate(lake: LakeResource) -> health.Verdict:
    """The stream's verdict now (the lake is optional: a broken lake still has its files)."""
    from pipelines.stream.broker import Topology

    try:
        con = lake.connect(read_only=True)
    except LakeError:
        con = None
    try:
        first = health.assess(con, stale_after_s=STALE_AFTER_S)
        queues = set(first.queues) | {Topology.from_env().queue}
        return health.assess(con, stale_after_s=STALE_AFTER_S, queue_depths=queue_depths(queues))
    finally:
        if con is not None:
            con.close()


def check_evaluation(verdict: health.Verdict) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=carrier_events_stream.key,
        check_name=CHECK_NAME,
        passed=verdict.healthy,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=verdict.metadata(),
        description="; ".join(verdict.problems)[:2000] or "the stream consumer is healthy",
    )


@dg.asset_check(
    asset=carrier_events_stream.key,
    name=CHECK_NAME,
    description=(
        "The stream consumer is alive (a heartbeat within 90 s while it runs or messages wait), "
        "not stalled, and no permanent lake failure (disk full, corrupt file, schema mismatch) "
        "is open. Reported every 30 s by the sensor stream_consumer_health."
    ),
)
def stream_consumer_healthy(lake: LakeResource) -> dg.AssetCheckResult:
    verdict = evaluate(lake)
    return dg.AssetCheckResult(
        passed=verdict.healthy, severity=dg.AssetCheckSeverity.ERROR, metadata=verdict.metadata()
    )


@dg.sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 30 s: is `ordertower stream` alive, progressing and free of permanent lake "
        "failures? Reports the asset check stream_consumer_healthy when the verdict changes "
        "(and every 10 minutes while it fails)."
    ),
)
def stream_consumer_health(context: dg.SensorEvaluationContext, lake: LakeResource):
    verdict = evaluate(lake)
    last = json.loads(context.cursor) if context.cursor else {}
    if not verdict.seen and not last and verdict.healthy:
        return dg.SkipReason("no stream consumer has run against this lake")
    now = time.time()
    changed = last.get("signature") != verdict.signature
    remind = not verdict.healthy and now - last.get("reported_at", 0) >= REMIND_EVERY_S
    if not (changed or remind):
        summary = "healthy" if verdict.healthy else "; ".join(verdict.problems)
        return dg.SkipReason(f"unchanged: {summary}"[:1000])
    if not verdict.healthy:
        context.log.error("stream unhealthy: %s", "; ".join(verdict.problems))
    cursor = json.dumps({"signature": verdict.signature, "reported_at": now})
    return dg.SensorResult(asset_events=[check_evaluation(verdict)], cursor=cursor)


__all__ = ["stream_consumer_health", "stream_consumer_healthy"]
