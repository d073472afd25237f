"""Olist, a second source system: the real Brazilian marketplace extract in the landing zone.

The Olist files (CC BY-NC-SA 4.0) live outside the repository, by default in
``../shared/datasets/olist/subset_10k_2017`` beside the checkout. Landing them copies the CSVs,
byte for byte, to ``$ORDERTOWER_HOME/landing/olist/``; from there the ordinary CSV readers,
contracts and quarantine take over (sources ``olist_*`` in :mod:`pipelines.ingest.sources`).
Olist timestamps are São Paulo local time without an offset; the contracts say so
(``defaultTimezone: America/Sao_Paulo``) and ingestion converts them to UTC.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ordertower.settings import SHARED_DATASETS_DIR, get_settings

#: The files of the extract, landed under these same names.
OLIST_FILES = (
    "orders.csv",
    "order_items.csv",
    "customers.csv",
    "products.csv",
    "product_category_name_translation.csv",
)
#: Folder of the landing zone that holds them.
LANDING_FOLDER = "olist"


class OlistError(RuntimeError):
    """The extract cannot be landed (folder or files missing); the message says what to do."""


@dataclass
class LandResult:
    source_dir: Path
    target_dir: Path
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def default_source_dir() -> Path:
    """Where the extract is when the shared data sets sit beside the checkout."""
    return SHARED_DATASETS_DIR / "olist" / "subset_10k_2017"


def land(source_dir: Path | None = None, landing_dir: Path | None = None) -> LandResult:
    """Copy the Olist CSVs unchanged into ``<landing>/olist/``; files already there and equal are
    left alone (idempotent: landing twice changes nothing, not even modification times)."""
    source = Path(source_dir) if source_dir is not None else default_source_dir()
    root = landing_dir or get_settings().landing_dir
    target = root / LANDING_FOLDER
    if target.is_symlink() or (
        target.exists() and not target.resolve().is_relative_to(root.resolve())
    ):
        # the files would be written wherever the link points (and read from there)
        raise OlistError(
            f"refused: {target} is a symbolic link or lies outside the landing zone; nothing landed"
        )
    if not source.is_dir():
        raise OlistError(
            f"no Olist data at {source}: the real-data extract is not part of the repository "
            "(CC BY-NC-SA); put it there or pass --from DIR"
        )
    missing = [name for name in OLIST_FILES if not (source / name).is_file()]
    if missing:
        raise OlistError(f"{source} lacks {', '.join(missing)}: nothing landed")
    result = LandResult(source, target)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in OLIST_FILES:
            if _copy_if_changed(source / name, target / name):
                result.copied.append(name)
            else:
                result.unchanged.append(name)
    except OSError as exc:
        raise OlistError(f"cannot land the Olist files in {target}: {exc}") from exc
    return result


def _copy_if_changed(src: Path, dst: Path) -> bool:
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return False
    # copy beside the target, then rename: a reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
