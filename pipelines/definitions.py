"""The one Dagster entry point: every domain's definitions merged, shared resources bound once.

Domains live under ``pipelines/defs/<domain>/``; each exposes a ``defs`` object.
"""

import dagster as dg

from pipelines.defs.dispatch import definitions as dispatch
from pipelines.defs.eta import definitions as eta
from pipelines.defs.ingest import definitions as ingest
from pipelines.defs.resources import LakeResource
from pipelines.defs.risk import definitions as risk
from pipelines.defs.stream import definitions as stream
from pipelines.defs.transform import definitions as transform

defs = dg.Definitions.merge(
    ingest.defs,
    transform.defs,
    risk.defs,
    dispatch.defs,
    eta.defs,
    stream.defs,
    dg.Definitions(resources={"lake": LakeResource()}),
)
