"""dbt Labs' project rules (the checks of ``dbt-project-evaluator``), run on dbt's manifest.

The evaluator itself is a dbt package from the hub: it would need ``dbt deps`` (a download) and
builds its findings as models in the warehouse. The platform runs offline, so the same rules are
evaluated here in Python over ``target/manifest.json`` (what the package reads through its
graph macros), with the package's names, defaults and semantics:

========================================  =====================================================
rule (the evaluator's model, minus fct_)  flags
========================================  =====================================================
direct_join_to_source                     a model reading a source and a model
marts_or_intermediate_dependent_on_source an intermediate or marts model reading a source
multiple_sources_joined                   a model reading more than one source
source_fanout                             a source read by more than one model
staging_dependent_on_staging              a staging model reading another staging model
staging_dependent_on_marts_or_intermediate  a staging model reading a later layer
rejoining_of_upstream_concepts            P -> A -> C and P -> C, where A feeds only C
model_fanout                              a model with more than 3 direct leaf children
root_models                               a model with no parent at all
unused_sources                            a source nothing reads
duplicate_sources                         two source entries for one table
hard_coded_references                     ``from schema.table`` instead of ref()/source()
too_many_joins                            a model with more than 7 direct parents
missing_primary_key_tests                 a model without unique + not_null on one column
                                          (or a not_null constraint) or a combination test
sources_without_freshness                 a source table without a freshness threshold
test_coverage / documentation_coverage    below the target share of models (100 %)
undocumented_models / _source_tables /    no description
undocumented_sources
model_naming_conventions                  a prefix that is not its layer's
model_directories                         a model outside its layer's folder, a staging
                                          model outside ``staging/<source>/``
source_directories                        sources not declared in ``staging/<source>/``
test_directories                          a model's tests declared in another folder
chained_views_dependencies                more than 4 views or ephemerals in a row
exposure_parents_materializations         an exposure reading a source, a view or an ephemeral
public_models_without_contract            ``access: public`` without an enforced contract
undocumented_public_models                a public model or one of its columns undocumented
exposures_dependent_on_private_models     an exposure reading a model that is not public
========================================  =====================================================

Thresholds, prefixes and the accepted exceptions (each with its reason, as the evaluator's
``dbt_project_evaluator_exceptions`` seed has them) live in ``dbt/project_rules.yml``. An
exception that no longer matches a finding is itself reported, so the list cannot rot.
``ordertower dbt-rules`` (and ``make lint``) runs them; ``tests/test_dbt_rules.py`` keeps the
project passing and each rule able to fail.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ordertower.settings import DBT_PROJECT_DIR

RULES_FILE = DBT_PROJECT_DIR / "project_rules.yml"
LAYERS = ("base", "staging", "intermediate", "marts")


@dataclass(frozen=True)
class Finding:
    rule: str
    node: str  # the model, source ("source_name.table") or exposure it is about
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.node}: {self.detail}"


@dataclass
class Config:
    models_fanout: int = 3
    too_many_joins: int = 7
    chained_views: int = 4
    test_coverage: float = 100.0
    documentation_coverage: float = 100.0
    prefixes: dict[str, list[str]] = field(
        default_factory=lambda: {
            "base": ["base_"],
            "staging": ["stg_"],
            "intermediate": ["int_"],
            "marts": ["fct_", "dim_"],
            "other": ["rpt_"],
        }
    )
    #: each entry a set of generic tests that together test a primary key
    primary_key_tests: list[list[str]] = field(
        default_factory=lambda: [["unique", "not_null"], ["unique_combination_of_columns"]]
    )
    exceptions: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Config:
        try:
            raw = (yaml.safe_load(path.read_text()) if path.exists() else {}) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path.name} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path.name} must be a mapping of thresholds, prefixes, exceptions")
        thresholds = raw.get("thresholds") or {}
        known = {f.name for f in fields(cls)} - {"prefixes", "primary_key_tests", "exceptions"}
        unknown = sorted(set(thresholds) - known)
        if unknown:
            raise ValueError(f"{path.name}: unknown thresholds {unknown} (known: {sorted(known)})")
        config = cls(**thresholds)
        if "prefixes" in raw:
            config.prefixes = {k: list(v) for k, v in raw["prefixes"].items()}
        if "primary_key_tests" in raw:
            config.primary_key_tests = [list(group) for group in raw["primary_key_tests"]]
        config.exceptions = list(raw.get("exceptions") or [])
        for entry in config.exceptions:
            missing = {"rule", "node", "reason"} - set(entry)
            if missing or not str(entry.get("reason", "")).strip():
                raise ValueError(
                    f"{path.name}: an exception needs rule, node and a reason: {entry}"
                )
        return config


# ------------------------------------------------------------------------------------------
# The graph as the evaluator sees it
# ------------------------------------------------------------------------------------------


class Graph:
    def __init__(self, manifest: dict[str, Any], package: str | None = None) -> None:
        self.package = package or manifest["metadata"].get("project_name")
        own = (lambda n: n.get("package_name") == self.package) if self.package else bool
        self.nodes = {k: v for k, v in manifest["nodes"].items() if own(v)}
        self.models = {
            k: v
            for k, v in self.nodes.items()
            if v["resource_type"] == "model" and v.get("config", {}).get("enabled", True)
        }
        self.sources = {k: v for k, v in manifest["sources"].items() if own(v)}
        self.exposures = {k: v for k, v in manifest.get("exposures", {}).items() if own(v)}
        self.tests = {k: v for k, v in self.nodes.items() if v["resource_type"] == "test"}
        self.parents: dict[str, list[str]] = {
            k: list(dict.fromkeys(v["depends_on"]["nodes"])) for k, v in self.models.items()
        }
        self.children: dict[str, list[str]] = defaultdict(list)
        for child, parents in self.parents.items():
            for parent in parents:
                self.children[parent].append(child)
        #: what an exposure reads counts as a child (the evaluator's DAG holds exposures too): a
        #: model a dashboard reads is no leaf, and no single-use step between two models
        self.used_by_exposures: dict[str, list[str]] = defaultdict(list)
        for e, node in self.exposures.items():
            for parent in node["depends_on"]["nodes"]:
                self.used_by_exposures[parent].append(e)

    def name(self, unique_id: str) -> str:
        if unique_id in self.sources:
            s = self.sources[unique_id]
            return f"{s['source_name']}.{s['name']}"
        node = (
            self.models.get(unique_id) or self.exposures.get(unique_id) or self.nodes.get(unique_id)
        )
        return node["name"] if node else unique_id

    def layer(self, model_id: str) -> str:
        """The model's type from its folders, as the evaluator reads ``fqn``."""
        folders = self.models[model_id]["fqn"][1:-1]
        for layer in ("base", "staging", "intermediate", "marts"):  # the innermost wins: base
            if layer in folders:
                return layer
        return "other"

    def model_parents(self, model_id: str) -> list[str]:
        return [p for p in self.parents.get(model_id, []) if p in self.models]

    def source_parents(self, model_id: str) -> list[str]:
        return [p for p in self.parents.get(model_id, []) if p in self.sources]

    def model_children(self, node_id: str) -> list[str]:
        return [c for c in self.children.get(node_id, []) if c in self.models]

    def downstream(self, node_id: str) -> list[str]:
        """Models and exposures reading ``node_id`` directly."""
        return self.model_children(node_id) + self.used_by_exposures.get(node_id, [])

    def materialized(self, model_id: str) -> str:
        return self.models[model_id].get("config", {}).get("materialized", "view")


# ------------------------------------------------------------------------------------------
# The rules
# ------------------------------------------------------------------------------------------

Rule = Callable[[Graph, Config], Iterator[Finding]]
RULES: dict[str, Rule] = {}


def rule(fn: Rule) -> Rule:
    RULES[fn.__name__] = fn
    return fn


@rule
def direct_join_to_source(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        sources, models = g.source_parents(m), g.model_parents(m)
        if sources and models:
            yield Finding(
                "direct_join_to_source",
                g.name(m),
                f"reads source {', '.join(map(g.name, sources))} beside models "
                f"{', '.join(map(g.name, models))}",
            )


@rule
def marts_or_intermediate_dependent_on_source(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        if g.layer(m) in ("intermediate", "marts") and g.source_parents(m):
            yield Finding(
                "marts_or_intermediate_dependent_on_source",
                g.name(m),
                f"a {g.layer(m)} model reads source {', '.join(map(g.name, g.source_parents(m)))}",
            )


@rule
def multiple_sources_joined(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        if len(g.source_parents(m)) > 1:
            yield Finding(
                "multiple_sources_joined",
                g.name(m),
                f"reads {len(g.source_parents(m))} sources: "
                f"{', '.join(map(g.name, g.source_parents(m)))}",
            )


@rule
def source_fanout(g: Graph, c: Config) -> Iterator[Finding]:
    for s in g.sources:
        children = g.model_children(s)
        if len(children) > 1:
            yield Finding(
                "source_fanout",
                g.name(s),
                f"read by {len(children)} models: " + ", ".join(sorted(map(g.name, children))),
            )


@rule
def staging_dependent_on_staging(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        if g.layer(m) == "staging":
            for p in g.model_parents(m):
                if g.layer(p) == "staging":
                    yield Finding("staging_dependent_on_staging", g.name(m), f"reads {g.name(p)}")


@rule
def staging_dependent_on_marts_or_intermediate(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        if g.layer(m) in ("base", "staging"):
            for p in g.model_parents(m):
                if g.layer(p) in ("intermediate", "marts"):
                    yield Finding(
                        "staging_dependent_on_marts_or_intermediate",
                        g.name(m),
                        f"reads the {g.layer(p)} model {g.name(p)}",
                    )


@rule
def rejoining_of_upstream_concepts(g: Graph, c: Config) -> Iterator[Finding]:
    for parent in list(g.models) + list(g.sources):
        direct = set(g.model_children(parent))
        for between in direct:
            onward = g.downstream(between)
            if len(onward) == 1 and onward[0] in direct:
                yield Finding(
                    "rejoining_of_upstream_concepts",
                    g.name(onward[0]),
                    f"reads {g.name(parent)} and {g.name(between)}, which reads {g.name(parent)} "
                    f"and feeds nothing else: fold {g.name(between)} into it",
                )


@rule
def model_fanout(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        leaves = [ch for ch in g.model_children(m) if not g.downstream(ch)]
        if len(leaves) > c.models_fanout:
            yield Finding(
                "model_fanout",
                g.name(m),
                f"{len(leaves)} direct leaf children (more than {c.models_fanout}): "
                + ", ".join(sorted(map(g.name, leaves))),
            )


@rule
def root_models(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        if not g.parents.get(m):
            yield Finding(
                "root_models", g.name(m), "no ref() or source(): where does it read from?"
            )


@rule
def unused_sources(g: Graph, c: Config) -> Iterator[Finding]:
    for s in g.sources:
        if not g.model_children(s):
            yield Finding("unused_sources", g.name(s), "no model reads it")


@rule
def duplicate_sources(g: Graph, c: Config) -> Iterator[Finding]:
    tables: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for s, node in g.sources.items():
        key = tuple(str(node.get(k) or "").lower() for k in ("database", "schema", "identifier"))
        tables[key].append(s)
    for key, ids in tables.items():
        if len(ids) > 1:
            for s in ids:
                yield Finding(
                    "duplicate_sources", g.name(s), f"{'.'.join(key)} is declared {len(ids)} times"
                )


_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r"'(?:[^']|'')*'")
#: ``a is [not] distinct from b``: a comparison, not a relation read
_DISTINCT_FROM = re.compile(r"\bis\s+(?:not\s+)?distinct\s+from\b", re.I)
_HARD_CODED = re.compile(
    r"\b(?:from|join)\s+((?:\"[^\"]+\"|`[^`]+`|[a-z_][\w$]*)(?:\.(?:\"[^\"]+\"|`[^`]+`|[a-z_][\w$]*))+)",
    re.I,
)


def hard_coded_tables(sql: str) -> list[str]:
    """``schema.table`` (or ``db.schema.table``) after FROM or JOIN, outside Jinja, comments and
    string literals (``is distinct from`` compares): a relation dbt does not know about."""
    text = _STRING.sub("''", _COMMENT.sub(" ", _JINJA.sub(" ", sql)))
    text = _DISTINCT_FROM.sub(" <> ", text)
    return [m.group(1) for m in _HARD_CODED.finditer(text)]


@rule
def hard_coded_references(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        found = hard_coded_tables(node.get("raw_code", ""))
        if found:
            yield Finding(
                "hard_coded_references", g.name(m), f"reads {', '.join(sorted(set(found)))}"
            )


@rule
def too_many_joins(g: Graph, c: Config) -> Iterator[Finding]:
    for m in g.models:
        parents = g.parents.get(m, [])
        if len(parents) > c.too_many_joins:
            yield Finding(
                "too_many_joins",
                g.name(m),
                f"{len(parents)} direct parents (more than {c.too_many_joins})",
            )


def _tests_of(g: Graph) -> dict[str, list[dict[str, Any]]]:
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in g.tests.values():
        attached = t.get("attached_node")
        targets = [attached] if attached else t["depends_on"]["nodes"]
        for target in targets:
            by_model[target].append(t)
    return by_model


def _testable(g: Graph, m: str) -> bool:
    return g.materialized(m) != "ephemeral"  # dbt cannot test an ephemeral model


@rule
def missing_primary_key_tests(g: Graph, c: Config) -> Iterator[Finding]:
    tests = _tests_of(g)
    for m, node in g.models.items():
        if not _testable(g, m):
            continue
        per_column: dict[str, set[str]] = defaultdict(set)
        model_level: set[str] = set()
        for t in tests.get(m, []):
            name = (t.get("test_metadata") or {}).get("name")
            if not name:
                continue
            column = t.get("column_name")
            (per_column[column] if column else model_level).add(name)
        for column, meta in node.get("columns", {}).items():
            if any(k.get("type") == "not_null" for k in meta.get("constraints") or []):
                per_column[column].add("not_null")
        groups = [set(group) for group in c.primary_key_tests]
        ok = any(group <= names for group in groups for names in per_column.values()) or any(
            group <= model_level for group in groups
        )
        if not ok:
            yield Finding(
                "missing_primary_key_tests",
                g.name(m),
                "no column with both unique and not_null, and no "
                + " / ".join("+".join(group) for group in c.primary_key_tests[1:] or [[""]]),
            )


@rule
def sources_without_freshness(g: Graph, c: Config) -> Iterator[Finding]:
    for s, node in g.sources.items():
        freshness = node.get("freshness") or {}
        thresholds = [freshness.get("warn_after") or {}, freshness.get("error_after") or {}]
        if not any(t.get("count") and t.get("period") for t in thresholds):
            yield Finding("sources_without_freshness", g.name(s), "no warn_after or error_after")


def _coverage(g: Graph, has: Callable[[str], bool]) -> tuple[float, list[str]]:
    models = sorted(g.models)
    missing = [g.name(m) for m in models if not has(m)]
    share = 100.0 * (len(models) - len(missing)) / len(models) if models else 100.0
    return share, missing


@rule
def test_coverage(g: Graph, c: Config) -> Iterator[Finding]:
    tests = _tests_of(g)
    share, missing = _coverage(g, lambda m: not _testable(g, m) or bool(tests.get(m)))
    if share < c.test_coverage:
        yield Finding(
            "test_coverage",
            "project",
            f"{share:.1f} % of models tested (target {c.test_coverage:g} %); untested: "
            + ", ".join(missing),
        )


def _described(node: dict[str, Any], key: str = "description") -> bool:
    return bool(str(node.get(key) or "").strip())


@rule
def documentation_coverage(g: Graph, c: Config) -> Iterator[Finding]:
    share, missing = _coverage(g, lambda m: _described(g.models[m]))
    if share < c.documentation_coverage:
        yield Finding(
            "documentation_coverage",
            "project",
            f"{share:.1f} % of models documented (target {c.documentation_coverage:g} %); "
            "undocumented: " + ", ".join(missing),
        )


@rule
def undocumented_models(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        if not _described(node):
            yield Finding("undocumented_models", g.name(m), "no description")


@rule
def undocumented_source_tables(g: Graph, c: Config) -> Iterator[Finding]:
    for s, node in g.sources.items():
        if not _described(node):
            yield Finding("undocumented_source_tables", g.name(s), "no description")


@rule
def undocumented_sources(g: Graph, c: Config) -> Iterator[Finding]:
    seen: set[str] = set()
    for node in g.sources.values():
        if node["source_name"] not in seen and not _described(node, "source_description"):
            seen.add(node["source_name"])
            yield Finding("undocumented_sources", node["source_name"], "no source description")


@rule
def model_naming_conventions(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        layer = g.layer(m)
        allowed = c.prefixes.get(layer, [])
        if allowed and not node["name"].startswith(tuple(allowed)):
            yield Finding(
                "model_naming_conventions",
                node["name"],
                f"a {layer} model's name starts with {' or '.join(allowed)}",
            )


def _layer_of_prefix(c: Config, name: str) -> str | None:
    for layer, prefixes in c.prefixes.items():
        if name.startswith(tuple(prefixes)):
            return layer
    return None


@rule
def model_directories(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        by_prefix = _layer_of_prefix(c, node["name"])
        if by_prefix and by_prefix != "other" and by_prefix != g.layer(m):
            yield Finding(
                "model_directories",
                node["name"],
                f"named as a {by_prefix} model but lives in {node['original_file_path']}",
            )
        sources = {g.sources[s]["source_name"] for s in g.source_parents(m)}
        if g.layer(m) in ("staging", "base") and sources:
            folders = PurePosixPath(node["original_file_path"]).parts[:-1]
            if not sources & set(folders):
                yield Finding(
                    "model_directories",
                    node["name"],
                    f"reads source {', '.join(sorted(sources))} but is not in a folder of that "
                    f"name ({node['original_file_path']})",
                )


@rule
def source_directories(g: Graph, c: Config) -> Iterator[Finding]:
    for s, node in g.sources.items():
        folders = PurePosixPath(node["original_file_path"]).parts[:-1]
        if "staging" not in folders or node["source_name"] not in folders:
            yield Finding(
                "source_directories",
                g.name(s),
                f"declared in {node['original_file_path']}, not in a "
                f"staging/{node['source_name']}/ folder",
            )


@rule
def test_directories(g: Graph, c: Config) -> Iterator[Finding]:
    for t in g.tests.values():
        attached = t.get("attached_node")
        if attached not in g.models or not t.get("test_metadata"):
            continue  # a singular test lives in tests/
        test_dir = PurePosixPath(t["original_file_path"]).parent
        model_dir = PurePosixPath(g.models[attached]["original_file_path"]).parent
        if test_dir != model_dir:
            yield Finding(
                "test_directories",
                g.name(attached),
                f"test {t['name']} is declared in {test_dir}, the model lives in {model_dir}",
            )


@rule
def chained_views_dependencies(g: Graph, c: Config) -> Iterator[Finding]:
    chain: dict[str, int] = {}

    def views_up_to(m: str) -> int:  # consecutive views/ephemerals ending at m (m included)
        if m not in chain:
            chain[m] = 0  # a cycle cannot happen in dbt; this guards the recursion anyway
            if g.materialized(m) in ("view", "ephemeral"):
                chain[m] = 1 + max((views_up_to(p) for p in g.model_parents(m)), default=0)
        return chain[m]

    for m in g.models:
        depth = max((views_up_to(p) for p in g.model_parents(m)), default=0)
        if depth > c.chained_views:
            yield Finding(
                "chained_views_dependencies",
                g.name(m),
                f"reads a chain of {depth} views or ephemerals (more than {c.chained_views})",
            )


@rule
def exposure_parents_materializations(g: Graph, c: Config) -> Iterator[Finding]:
    for node in g.exposures.values():
        for p in node["depends_on"]["nodes"]:
            if p in g.sources:
                yield Finding(
                    "exposure_parents_materializations", node["name"], f"reads source {g.name(p)}"
                )
            elif p in g.models and g.materialized(p) in ("view", "ephemeral"):
                yield Finding(
                    "exposure_parents_materializations",
                    node["name"],
                    f"reads {g.name(p)}, a {g.materialized(p)}",
                )


def _public(g: Graph, m: str) -> bool:
    return g.models[m].get("access") == "public"


@rule
def public_models_without_contract(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        if _public(g, m) and not node.get("config", {}).get("contract", {}).get("enforced"):
            yield Finding("public_models_without_contract", node["name"], "no enforced contract")


@rule
def undocumented_public_models(g: Graph, c: Config) -> Iterator[Finding]:
    for m, node in g.models.items():
        if not _public(g, m):
            continue
        bare = [name for name, col in node.get("columns", {}).items() if not _described(col)]
        if not _described(node) or bare or not node.get("columns"):
            yield Finding(
                "undocumented_public_models",
                node["name"],
                "undocumented columns: " + ", ".join(bare) if bare else "no description",
            )


@rule
def exposures_dependent_on_private_models(g: Graph, c: Config) -> Iterator[Finding]:
    for node in g.exposures.values():
        for p in node["depends_on"]["nodes"]:
            if p in g.models and not _public(g, p):
                access = g.models[p].get("access") or "protected"
                yield Finding(
                    "exposures_dependent_on_private_models",
                    node["name"],
                    f"reads {g.name(p)} ({access})",
                )


# ------------------------------------------------------------------------------------------
# Running them
# ------------------------------------------------------------------------------------------


@dataclass
class Report:
    findings: list[Finding]  # not excepted
    excepted: list[tuple[Finding, str]]  # with the exception's reason
    stale_exceptions: list[dict[str, str]]  # exceptions that match nothing any more
    rules: int

    @property
    def ok(self) -> bool:
        return not self.findings and not self.stale_exceptions

    def lines(self) -> Iterable[str]:
        yield from (str(f) for f in self.findings)
        for entry in self.stale_exceptions:
            yield (
                f"stale exception: {entry['rule']}: {entry['node']}: nothing to except any more; "
                f"remove it from {RULES_FILE.name}"
            )


def evaluate(manifest: dict[str, Any], config: Config | None = None) -> Report:
    config = config or Config.load()
    unknown = {e["rule"] for e in config.exceptions} - set(RULES)
    if unknown:
        raise ValueError(f"{RULES_FILE.name}: unknown rules in exceptions: {sorted(unknown)}")
    graph = Graph(manifest)
    findings = [f for check in RULES.values() for f in check(graph, config)]
    excepted, kept, used = [], [], set()
    for f in findings:
        match = next(
            (
                i
                for i, e in enumerate(config.exceptions)
                if (e["rule"], e["node"]) == (f.rule, f.node)
            ),
            None,
        )
        if match is None:
            kept.append(f)
        else:
            used.add(match)
            excepted.append((f, config.exceptions[match]["reason"]))
    stale = [e for i, e in enumerate(config.exceptions) if i not in used]
    return Report(kept, excepted, stale, len(RULES))


def load_manifest(path: Path) -> dict[str, Any]:
    """dbt's ``manifest.json``, or ValueError saying why the file is not one."""
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    missing = [
        k
        for k in ("metadata", "nodes", "sources")
        if not isinstance(manifest, dict) or k not in manifest
    ]
    if missing:
        raise ValueError(f"{path} is not a dbt manifest (no {', '.join(missing)})")
    return manifest


def parse_project(target: Path) -> dict[str, Any]:
    """``dbt parse`` of the project into ``target`` (nothing is read from the lake) and the
    manifest it wrote. Raises RuntimeError with dbt's own message when the project does not
    parse."""
    import os
    import subprocess
    import sys

    from ordertower.settings import get_settings

    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **get_settings().dbt_env(), "DBT_TARGET_PATH": str(target)}
    dbt = Path(sys.executable).parent / "dbt"
    run = subprocess.run(
        [str(dbt), "parse", "--profiles-dir", str(DBT_PROJECT_DIR), "--no-partial-parse", "-q"],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"dbt parse failed: {(run.stdout + run.stderr).strip()[-2000:]}")
    return load_manifest(target / "manifest.json")
