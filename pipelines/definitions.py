"""The one Dagster entry point: every domain's definitions merged, shared resources bound once.

Domains live under ``pipelines/defs/<domain>/``; each exposes a ``defs`` object.
"""

import dagster as dg

from pipelines.defs.ingest.definitions import defs as ingest_defs
from pipelines.defs.resources import LakeResource

defs = dg.Definitions.merge(
    ingest_defs,
    dg.Definitions(resources={"lake": LakeResource()}),
)
