"""Ingest assets: one multi-asset per landing-zone source, built from the source registry.

Each asset only wires Dagster to :func:`pipelines.ingest.runner.ingest_source` and reports what
happened: metadata per dataset and two checks, conservation (blocking: received must equal
landed + quarantined) and the contract (the quarantine rate within the contract's tolerance,
with every rule's Great Expectations result).
"""

import dagster as dg

from pipelines.contracts import load_contract
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource
from pipelines.ingest.ops import UNPARTITIONED
from pipelines.ingest.runner import DatasetResult, ingest_source
from pipelines.ingest.sources import SOURCES, Source

CONSERVATION = "received_equals_landed_plus_quarantined"
CONTRACT = "contract"


def raw_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", dataset])


def _spec(source: Source, dataset: str) -> dg.AssetSpec:
    contract = load_contract(dataset)
    deps = [raw_key("carriers")] if source.file_format == "carrier" else []
    return dg.AssetSpec(
        raw_key(dataset),
        description=f"{contract.title} {contract.description}".strip(),
        group_name="ingest",
        kinds={"duckdb", "python"},
        owners=[contract.owner] if "@" in contract.owner else [],
        tags={"domain": contract.domain or "none"},
        deps=deps,
        metadata={
            "contract": dg.MetadataValue.path(f"data_contracts/{dataset}.yaml"),
            "contract_version": contract.version,
            "source": source.pattern,
            "table": contract.table,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        c.name,
                        c.duckdb_type,
                        description=c.description or None,
                        constraints=dg.TableColumnConstraints(
                            nullable=not c.required,
                            unique=c.unique or (c.primary_key and len(contract.primary_key) == 1),
                        ),
                        tags={"pii": ""} if c.is_pii else {},
                    )
                    for c in contract.columns
                ]
            ),
        },
    )


def _check_results(dataset: str, result: DatasetResult) -> list[dg.AssetCheckResult]:
    contract = load_contract(dataset)
    key = raw_key(dataset)
    per_partition = {
        k: {"received": s.received, "landed": s.landed, "quarantined": s.quarantined}
        for k, s in result.partitions.items()
    }
    unbalanced = {
        k: v for k, v in per_partition.items() if v["received"] != v["landed"] + v["quarantined"]
    }
    conservation = dg.AssetCheckResult(
        asset_key=key,
        check_name=CONSERVATION,
        passed=not unbalanced,
        metadata={
            "received": result.received,
            "landed": result.landed,
            "quarantined": result.quarantined,
            "unbalanced_partitions": dg.MetadataValue.json(unbalanced),
        },
    )
    failing = {name: r["unexpected_count"] for name, r in result.rules.items() if not r["success"]}
    # table-level error rules (row counts...) quarantine nothing but still fail the contract
    table_failures = [
        name
        for name, r in result.rules.items()
        if not r["success"]
        and r["severity"] == "error"
        and r["column"] is None
        and r["expectation"].startswith("expect_table_")
    ]
    within = result.quarantine_rate <= contract.max_quarantine_rate and not table_failures
    contract_check = dg.AssetCheckResult(
        asset_key=key,
        check_name=CONTRACT,
        passed=within,
        severity=dg.AssetCheckSeverity.ERROR if not within else dg.AssetCheckSeverity.WARN,
        description=f"{len(result.rules)} rules from data_contracts/{dataset}.yaml run by Great Expectations",
        metadata={
            "quarantine_rate": round(result.quarantine_rate, 6),
            "max_quarantine_rate": contract.max_quarantine_rate,
            "rules_evaluated": len(result.rules),
            "failing_rules": dg.MetadataValue.json(failing),
            "top_reasons": dg.MetadataValue.json(
                dict(sorted(result.top_reasons.items(), key=lambda kv: -kv[1])[:10])
            ),
        },
    )
    return [conservation, contract_check]


def build_source_asset(source: Source) -> dg.AssetsDefinition:
    specs = [_spec(source, d) for d in source.datasets]
    checks = [
        dg.AssetCheckSpec(name, asset=raw_key(d), blocking=(name == CONSERVATION), description=desc)
        for d in source.datasets
        for name, desc in (
            (CONSERVATION, "Every received record is landed or quarantined."),
            (CONTRACT, "Records satisfy the data contract; quarantine within tolerance."),
        )
    ]

    @dg.multi_asset(
        name=f"ingest_{source.name}",
        specs=specs,
        check_specs=checks,
        partitions_def=daily_partitions if source.partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if source.partitioned else None,
        pool=LAKE_WRITER_POOL,
        description=source.description,
    )
    def _ingest(context: dg.AssetExecutionContext, lake: LakeResource):
        keys = list(context.partition_keys) if source.partitioned else [UNPARTITIONED]
        con = lake.connect()
        try:
            results = ingest_source(source, keys, con, lake.landing_dir, context.run_id)
        finally:
            con.close()
        for dataset, result in results.items():
            if result.warnings:
                context.log.warning(
                    f"{dataset}: {len(result.warnings)} file warnings, e.g. {result.warnings[:3]}"
                )
            for note in result.notes:
                context.log.info(f"{dataset}: {note} (an optional source not brought in)")
            yield dg.MaterializeResult(
                asset_key=raw_key(dataset),
                metadata={
                    "partitions": len(keys),
                    "received": result.received,
                    "landed": result.landed,
                    "quarantined": result.quarantined,
                    "quarantine_rate": round(result.quarantine_rate, 6),
                    "unknown_carrier_codes": result.unknown_codes,
                    "dagster/row_count": result.landed,
                    "file_warnings": len(result.warnings),
                },
            )
            yield from _check_results(dataset, result)

    return _ingest


ingest_assets = [build_source_asset(s) for s in SOURCES]
partitioned_ingest_keys = [raw_key(d) for s in SOURCES if s.partitioned for d in s.datasets]
reference_ingest_keys = [raw_key(d) for s in SOURCES if not s.partitioned for d in s.datasets]
