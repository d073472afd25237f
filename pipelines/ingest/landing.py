"""What may be read from the landing zone: regular files inside it, reached without a link.

A landing zone is written by other systems (SFTP drops, sync jobs, the simulator). A symbolic
link in it, to a file or to a folder, would let whoever writes there make ingestion read any
file the pipeline's account can read (``/etc/passwd``, another tenant's drop, the secrets
folder) and land it in the lake. So a file is read only when neither it nor any folder between
the landing root and it is a symbolic link, and its resolved path lies inside the resolved
landing root. Anything else is refused with the reason, and the reason is recorded where every
unreadable file is (``quarantine.rejected_records``, one row for the file); the run carries on
with the other files.
"""

from __future__ import annotations

from pathlib import Path


def refusal(path: Path, root: Path) -> str | None:
    """Why ``path`` must not be read as a landing file of ``root``, or None when it may be."""
    path, root = Path(path), Path(root)
    try:
        relative = path.relative_to(root)
    except ValueError:
        return "refused: the file is outside the landing zone"
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            what = "the file" if current == path else f"its folder {current.relative_to(root)}"
            return f"refused: {what} is a symbolic link (landing files must be regular files)"
    try:
        resolved = path.resolve(strict=True)
        inside = resolved.is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError) as exc:  # vanished meanwhile, or a link loop
        return f"refused: the file cannot be resolved ({type(exc).__name__})"
    if not inside:
        return "refused: the file resolves outside the landing zone"
    if not resolved.is_file():
        return "refused: not a regular file"
    return None


def is_candidate(path: Path) -> bool:
    """A path a glob found that ingestion must either read or refuse (files, and links of any
    kind, broken ones included, so that a link is reported instead of skipped in silence)."""
    return path.is_symlink() or path.is_file()
