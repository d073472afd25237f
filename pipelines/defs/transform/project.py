"""The dbt project, its Dagster translator, and the manifest (built once, not on every load)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
)
from packaging import version

from ordertower.settings import DBT_PROJECT_DIR, get_settings

#: dbt from this environment, whether or not its bin folder is on PATH
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
#: dbt's saved parse of the project, which the next invocation starts from
PARTIAL_PARSE = "partial_parse.msgpack"


def export_dbt_env() -> None:
    """dbt runs as a subprocess that reads the lake's location from the environment."""
    settings = get_settings()
    os.environ.update(settings.dbt_env())
    # each run's artifacts in a folder of its own under the home's dbt target, which also holds
    # the partial parse they share (dagster-dbt reads DBT_TARGET_PATH for both)
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DBT_TARGET_PATH"] = str(settings.dbt_target_dir)
    _seed_partial_parse(settings.dbt_target_dir)
    # the preparer (dbt parse) finds dbt on PATH
    bin_dir = str(Path(DBT_EXECUTABLE).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


@contextlib.contextmanager
def _project_target_lock(exclusive: bool) -> Iterator[None]:
    """The project's own ``dbt/target``, held while one process prepares it (``exclusive``:
    dbt writes ``manifest.json`` and the partial parse in place, so a second process, a test
    worker or a Dagster run worker, importing this module meanwhile would read half a file) or
    while a process copies from it (shared). The preparer checks staleness inside the lock, so
    whoever waited finds the manifest built."""
    folder = DBT_PROJECT_DIR / "target"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".prepare.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _seed_partial_parse(target: Path) -> None:
    """A lake's first dbt run starts from the project's own parse (``dbt/target``, made by the
    preparer below) instead of parsing every file again: the profile names no lake
    (ordertower/dbt_plugin.py), so that parse is valid for every lake. dbt still checks it
    (versions, file hashes, vars) and parses what changed."""
    own = target / PARTIAL_PARSE
    project = DBT_PROJECT_DIR / "target" / PARTIAL_PARSE
    if own.exists() or not project.exists() or own.parent.resolve() == project.parent.resolve():
        return
    tmp = own.with_name(f".{PARTIAL_PARSE}.{os.getpid()}")
    with _project_target_lock(exclusive=False):
        shutil.copyfile(project, tmp)
    os.replace(tmp, own)


class LakeDbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without the dbt adapter it opens in Dagster's own process.

    Before each dbt command, ``DbtCliResource.cli`` builds a dbt Core adapter in-process (it
    parses every macro of the project: 3-5 s per dbt step) for one use: the optional
    ``fetch_row_counts()`` / ``fetch_column_metadata()`` of the event stream, which read the
    built tables back. The lake's steps use neither (row counts are the data tests' business),
    so the adapter is not built; dbt itself runs as before, in its subprocess.

    Nor does it ask ``dbt --version`` in a subprocess of its own (2-3 s of importing dbt, once
    per run): the dbt it runs is this environment's (``DBT_EXECUTABLE``), so the installed
    dbt-core package's version is the answer."""

    def _initialize_dbt_core_adapter(self, args):  # noqa: ANN001, ANN202 (dagster-dbt's hook)
        return None

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(metadata.version("dbt-core"))


export_dbt_env()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dg dev` re-parses on start; everywhere else the manifest is re-built only when a file of the
# dbt project is newer than it, not on every load of the code location.


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests", "snapshots"):
        sources.extend(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in sources if p.exists())


with _project_target_lock(exclusive=True):
    dbt_project.prepare_if_dev()
    if _manifest_is_stale():
        dbt_project.preparer.prepare(dbt_project)


class LakeTranslator(DagsterDbtTranslator):
    """Asset keys and groups from where a node lives, never from a hand-kept list of names.

    Sources are the raw tables the ingest assets land (``raw/<table>``), so ingestion and dbt
    form one lineage graph; models are keyed ``<layer>/<model>`` by their folder
    (staging, intermediate, marts), which is also their group.
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # tables the platform writes itself (ml scores, ops decisions) name their asset
            key = (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("asset_key")
            if key:
                return dg.AssetKey(key)
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return dg.AssetKey([self._layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return (
                "ingest" if dbt_resource_props.get("source_name") not in ("ml", "ops") else "risk"
            )
        return self._layer(dbt_resource_props)

    @staticmethod
    def _layer(props: Mapping[str, Any]) -> str:
        fqn = props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = LakeTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
