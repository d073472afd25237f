"""dbt Labs' project rules (pipelines/dbt_rules.py): the project passes them, and each rule fails
on the mistake it exists for.

Every rule is checked on a small manifest that passes all of them, then broken in one place:
only that rule (and no other) must report it. The project itself is parsed by dbt (nothing read
from the lake) and must pass with only the exceptions dbt/project_rules.yml gives reasons for.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines import dbt_rules
from pipelines.dbt_rules import RULES, Config, evaluate, hard_coded_tables

PKG = "shop"


def _model(
    name: str,
    folder: str,
    parents: list[str],
    materialized: str = "view",
    access: str = "protected",
    contract: bool = False,
    sql: str = "select 1 as id",
) -> dict[str, Any]:
    parts = folder.split("/")
    return {
        "unique_id": f"model.{PKG}.{name}",
        "name": name,
        "resource_type": "model",
        "package_name": PKG,
        "fqn": [PKG, *parts, name],
        "original_file_path": f"models/{folder}/{name}.sql",
        "config": {
            "materialized": materialized,
            "enabled": True,
            "contract": {"enforced": contract},
        },
        "access": access,
        "description": f"{name}, documented.",
        "columns": {"id": {"name": "id", "description": "The key.", "constraints": []}},
        "depends_on": {"nodes": parents},
        "raw_code": sql,
    }


def _source(source: str, table: str, folder: str | None = None) -> dict[str, Any]:
    return {
        "unique_id": f"source.{PKG}.{source}.{table}",
        "name": table,
        "source_name": source,
        "resource_type": "source",
        "package_name": PKG,
        "original_file_path": f"models/{folder or f'staging/{source}'}/_{source}__sources.yml",
        "database": "lake",
        "schema": "raw",
        "identifier": table,
        "description": f"{table}, documented.",
        "source_description": f"{source}, documented.",
        "freshness": {"warn_after": {"count": 1, "period": "day"}, "error_after": {}},
    }


def _pk_tests(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    folder = str(Path(model["original_file_path"]).parent)
    tests = {}
    for kind in ("unique", "not_null"):
        uid = f"test.{PKG}.{kind}_{model['name']}_id"
        tests[uid] = {
            "unique_id": uid,
            "name": f"{kind}_{model['name']}_id",
            "resource_type": "test",
            "package_name": PKG,
            "attached_node": model["unique_id"],
            "column_name": "id",
            "test_metadata": {"name": kind, "kwargs": {"column_name": "id"}},
            "original_file_path": f"{folder}/_models.yml",
            "depends_on": {"nodes": [model["unique_id"]]},
        }
    return tests


def clean_manifest() -> dict[str, Any]:
    """Two sources, a staging model each, an intermediate join, a public mart an exposure reads."""
    sources = [_source("shop", "orders"), _source("shop", "customers")]
    s = {x["unique_id"]: x for x in sources}
    stg_orders = _model("stg_shop__orders", "staging/shop", [f"source.{PKG}.shop.orders"])
    stg_customers = _model("stg_shop__customers", "staging/shop", [f"source.{PKG}.shop.customers"])
    joined = _model(
        "int_orders_joined", "intermediate", [stg_orders["unique_id"], stg_customers["unique_id"]]
    )
    mart = _model(
        "fct_orders", "marts", [joined["unique_id"]], "table", access="public", contract=True
    )
    models = [stg_orders, stg_customers, joined, mart]
    nodes: dict[str, Any] = {m["unique_id"]: m for m in models}
    for m in models:
        nodes.update(_pk_tests(m))
    exposure = {
        "unique_id": f"exposure.{PKG}.orders_page",
        "name": "orders_page",
        "package_name": PKG,
        "depends_on": {"nodes": [mart["unique_id"]]},
    }
    return {
        "metadata": {"project_name": PKG},
        "nodes": nodes,
        "sources": s,
        "exposures": {exposure["unique_id"]: exposure},
    }


def _id(name: str) -> str:
    return f"model.{PKG}.{name}"


def _add(m: dict[str, Any], model: dict[str, Any], tested: bool = True) -> dict[str, Any]:
    m["nodes"][model["unique_id"]] = model
    if tested:
        m["nodes"].update(_pk_tests(model))
    return m


def _node(m: dict[str, Any], name: str) -> dict[str, Any]:
    return m["nodes"][_id(name)]


def _set(m: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    _node(m, name).update(changes)
    return m


def _drop_test(m: dict[str, Any], model: str, kind: str) -> dict[str, Any]:
    del m["nodes"][f"test.{PKG}.{kind}_{model}_id"]
    return m


def _join_eight(m: dict[str, Any]) -> dict[str, Any]:
    """int_orders_joined joins eight staging models (each on its own source)."""
    parents = []
    for i in range(8):
        m["sources"][f"source.{PKG}.shop.p{i}"] = _source("shop", f"p{i}")
        stg = _model(f"stg_shop__p{i}", "staging/shop", [f"source.{PKG}.shop.p{i}"])
        _add(m, stg)
        parents.append(stg["unique_id"])
    return _set(m, "int_orders_joined", depends_on={"nodes": parents})


STG_ORDERS, SRC_ORDERS = _id("stg_shop__orders"), f"source.{PKG}.shop.orders"
# One mistake per rule: the manifest it makes from the clean one, and the node reported.
BREAKS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "direct_join_to_source": (
        lambda m: _add(m, _model("stg_shop__orders_x", "staging/shop", [SRC_ORDERS, STG_ORDERS])),
        "stg_shop__orders_x",
    ),
    "marts_or_intermediate_dependent_on_source": (
        lambda m: _add(m, _model("int_raw_orders", "intermediate", [SRC_ORDERS])),
        "int_raw_orders",
    ),
    "multiple_sources_joined": (
        lambda m: (
            _set(m, "stg_shop__orders", depends_on={"nodes": [SRC_ORDERS, f"source.{PKG}.shop.c2"]})
            | {"sources": m["sources"] | {f"source.{PKG}.shop.c2": _source("shop", "c2")}}
        ),
        "stg_shop__orders",
    ),
    "source_fanout": (
        lambda m: _add(
            _set(m, "int_orders_joined", depends_on={"nodes": [STG_ORDERS]}),
            _model("stg_shop__orders_again", "staging/shop", [f"source.{PKG}.shop.customers"]),
        ),
        "shop.customers",
    ),
    "staging_dependent_on_staging": (
        lambda m: _add(m, _model("stg_shop__orders_v2", "staging/shop", [STG_ORDERS])),
        "stg_shop__orders_v2",
    ),
    "staging_dependent_on_marts_or_intermediate": (
        lambda m: _add(m, _model("stg_shop__late", "staging/shop", [_id("int_orders_joined")])),
        "stg_shop__late",
    ),
    "rejoining_of_upstream_concepts": (
        # fct_orders reads stg_shop__orders and int_orders_joined, which reads it and feeds only fct
        lambda m: _set(
            m, "fct_orders", depends_on={"nodes": [_id("int_orders_joined"), STG_ORDERS]}
        ),
        "fct_orders",
    ),
    "model_fanout": (
        lambda m: [
            _add(m, _model(f"fct_leaf_{i}", "marts", [_id("fct_orders")], "table"))
            for i in range(4)
        ][-1],
        "fct_orders",
    ),
    "root_models": (
        lambda m: _add(m, _model("fct_constants", "marts", [], "table")),
        "fct_constants",
    ),
    "unused_sources": (
        lambda m: (
            m | {"sources": m["sources"] | {f"source.{PKG}.shop.old": _source("shop", "old")}}
        ),
        "shop.old",
    ),
    "duplicate_sources": (
        lambda m: (
            m
            | {
                "sources": m["sources"]
                | {
                    f"source.{PKG}.shop.orders2": _source("shop", "orders2")
                    | {"identifier": "orders"}
                }
            }
        ),
        "shop.orders2",
    ),
    "hard_coded_references": (
        lambda m: _set(m, "int_orders_joined", raw_code="select * from raw.orders"),
        "int_orders_joined",
    ),
    "too_many_joins": (lambda m: _join_eight(m), "int_orders_joined"),
    "missing_primary_key_tests": (
        lambda m: _drop_test(m, "int_orders_joined", "not_null"),
        "int_orders_joined",
    ),
    "sources_without_freshness": (
        lambda m: (
            m["sources"][SRC_ORDERS].update(freshness={"warn_after": {}, "error_after": {}}) or m
        ),
        "shop.orders",
    ),
    "test_coverage": (
        lambda m: _drop_test(
            _drop_test(m, "int_orders_joined", "not_null"), "int_orders_joined", "unique"
        ),
        "project",
    ),
    "documentation_coverage": (lambda m: _set(m, "int_orders_joined", description=""), "project"),
    "undocumented_models": (
        lambda m: _set(m, "int_orders_joined", description=" "),
        "int_orders_joined",
    ),
    "undocumented_source_tables": (
        lambda m: m["sources"][SRC_ORDERS].update(description="") or m,
        "shop.orders",
    ),
    "undocumented_sources": (
        lambda m: [s.update(source_description="") for s in m["sources"].values()] and m,
        "shop",
    ),
    "model_naming_conventions": (
        lambda m: _add(m, _model("orders_report", "marts", [_id("fct_orders")], "table")),
        "orders_report",
    ),
    "model_directories": (
        lambda m: _set(
            m, "stg_shop__orders", original_file_path="models/staging/misc/stg_shop__orders.sql"
        ),
        "stg_shop__orders",
    ),
    "source_directories": (
        lambda m: m["sources"][SRC_ORDERS].update(original_file_path="models/sources.yml") or m,
        "shop.orders",
    ),
    "test_directories": (
        lambda m: (
            m["nodes"][f"test.{PKG}.unique_fct_orders_id"].update(
                original_file_path="models/staging/shop/_models.yml"
            )
            or m
        ),
        "fct_orders",
    ),
    "chained_views_dependencies": (
        lambda m: (
            [
                _add(
                    m,
                    _model(
                        f"int_step_{i}",
                        "intermediate",
                        [_id(f"int_step_{i - 1}") if i else _id("int_orders_joined")],
                    ),
                )
                for i in range(4)
            ][-1]
            and _add(m, _model("fct_far", "marts", [_id("int_step_3")], "table"))
        ),
        "fct_far",
    ),
    "exposure_parents_materializations": (
        lambda m: (
            m["exposures"][f"exposure.{PKG}.orders_page"]["depends_on"].update(
                nodes=[_id("fct_orders"), SRC_ORDERS]
            )
            or m
        ),
        "orders_page",
    ),
    "public_models_without_contract": (
        lambda m: _set(
            m, "fct_orders", config={"materialized": "table", "contract": {"enforced": False}}
        ),
        "fct_orders",
    ),
    "undocumented_public_models": (
        lambda m: _node(m, "fct_orders")["columns"]["id"].update(description="") or m,
        "fct_orders",
    ),
    "exposures_dependent_on_private_models": (
        lambda m: _set(m, "fct_orders", access="protected"),
        "orders_page",
    ),
}


def test_the_clean_manifest_passes_every_rule() -> None:
    report = evaluate(clean_manifest(), Config())
    assert report.ok, list(report.lines())


def test_every_rule_has_a_mistake_it_catches() -> None:
    assert set(BREAKS) == set(RULES)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_rule_reports_the_mistake_it_exists_for(rule: str) -> None:
    broken, node = BREAKS[rule]
    report = evaluate(broken(copy.deepcopy(clean_manifest())), Config())
    fired = {(f.rule, f.node) for f in report.findings}
    assert (rule, node) in fired, (rule, sorted(fired))


def test_exceptions_need_a_reason_and_go_stale_when_the_finding_goes(tmp_path: Path) -> None:
    config_file = tmp_path / "rules.yml"
    config_file.write_text("exceptions:\n  - {rule: root_models, node: fct_constants}\n")
    with pytest.raises(ValueError, match="reason"):
        Config.load(config_file)

    config_file.write_text(
        "exceptions:\n  - {rule: root_models, node: fct_constants, reason: a calendar}\n"
    )
    config = Config.load(config_file)
    broken = BREAKS["root_models"][0](copy.deepcopy(clean_manifest()))
    report = evaluate(broken, config)
    assert report.ok and [f.node for f, _ in report.excepted] == ["fct_constants"]

    report = evaluate(clean_manifest(), config)  # the finding went: its exception is stale
    assert not report.ok and report.stale_exceptions == config.exceptions

    for text, why in (("thresholds: {model_fanout: 3}\n", "unknown thresholds"), ("a: [", "YAML")):
        config_file.write_text(text)
        with pytest.raises(ValueError, match=why):
            Config.load(config_file)

    config_file.write_text("exceptions:\n  - {rule: no_such_rule, node: x, reason: y}\n")
    with pytest.raises(ValueError, match="unknown rules"):
        evaluate(clean_manifest(), Config.load(config_file))


def test_hard_coded_references_ignore_jinja_comments_and_strings() -> None:
    sql = """
    {# from raw.orders in a Jinja comment #}
    -- from raw.orders in a SQL comment
    select 'from raw.orders' as text, {{ "x.y" }}
    from {{ ref('stg_shop__orders') }} as orders
    left join {{ source('shop', 'customers') }} using (id)
    cross join unnest(orders.lines) as line
    where orders.tier is distinct from line.tier or orders.x IS NOT DISTINCT
        FROM line.x
    """
    assert hard_coded_tables(sql) == []
    assert hard_coded_tables('select * from raw.orders join "lake"."marts"."x" using (id)') == [
        "raw.orders",
        '"lake"."marts"."x"',
    ]


def test_the_project_passes_with_only_reasoned_exceptions(tmp_path: Path) -> None:
    """dbt parses the project (no lake needed); every finding is an exception with its reason."""
    manifest = dbt_rules.parse_project(tmp_path / "target")
    report = evaluate(manifest)
    assert report.ok, "\n".join(report.lines())
    assert all(len(why) > 40 for _, why in report.excepted)
    # what the issue asks by name
    graph = dbt_rules.Graph(manifest)
    exposed = {p for e in graph.exposures.values() for p in e["depends_on"]["nodes"]}
    assert exposed and all(
        graph.models[p]["access"] == "public" for p in exposed if p in graph.models
    )
    # the PII guard of the staging schema runs after every staging view
    guard = next(
        n for n in manifest["nodes"].values() if n["name"] == "assert_no_pii_columns_in_staging"
    )
    views = {m for m, n in graph.models.items() if graph.layer(m) == "staging"}
    views = {m for m in views if graph.materialized(m) != "ephemeral"}
    views = {m for m in views if not m.split(".")[-1].startswith("stg_ml__")}
    assert set(guard["depends_on"]["nodes"]) == views
    assert all(
        node.get("freshness", {}).get("warn_after", {}).get("count")
        for node in graph.sources.values()
    )


def test_the_command_fails_on_a_finding_and_says_which(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(BREAKS["root_models"][0](clean_manifest())))
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dbt-rules", "--manifest", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    assert "root_models: fct_constants" in run.stdout
    assert "1 finding(s)" in run.stderr

    for text, why in (("{", "is not JSON"), ('{"metadata": {}}', "is not a dbt manifest")):
        manifest.write_text(text)
        run = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "dbt-rules", "--manifest", str(manifest)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 1 and why in run.stderr and "Traceback" not in run.stderr
