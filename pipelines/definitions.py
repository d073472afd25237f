"""The one Dagster entry point: every domain's definitions merged, shared resources bound once.

Domains live under ``pipelines/defs/<domain>/``; each exposes a ``defs`` object. ``daily`` is
the nightly job across them: one new day end to end.
"""

import dagster as dg

from ordertower.redact import install_log_redaction
from pipelines.defs.daily import definitions as daily
from pipelines.defs.dispatch import definitions as dispatch
from pipelines.defs.eta import definitions as eta
from pipelines.defs.ingest import definitions as ingest
from pipelines.defs.maintenance import definitions as maintenance
from pipelines.defs.resources import LakeResource
from pipelines.defs.risk import definitions as risk
from pipelines.defs.stream import definitions as stream
from pipelines.defs.transform import definitions as transform

# every process that loads the code location (dg dev, its run workers, ordertower materialize)
# logs no password of a DSN or URL
install_log_redaction()

defs = dg.Definitions.merge(
    ingest.defs,
    transform.defs,
    risk.defs,
    dispatch.defs,
    eta.defs,
    stream.defs,
    maintenance.defs,
    daily.defs,
    dg.Definitions(resources={"lake": LakeResource()}),
)
