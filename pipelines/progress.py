"""What ``ordertower materialize`` tells a person watching it: one line per stage (a Dagster run)
with what it built, the records landed and quarantined, and the time it took; on a terminal, a
progress bar while a long stage runs. Dagster's own console log stays at warning level unless
``ORDERTOWER_LOG_LEVEL`` asks for more.

The lines come from a Dagster logger (:data:`progress_logger`) that the materialisation's runs
carry beside the console logger: it sees every event of the run (assets materialised, steps
failed) as they happen, in the same process (the in-process executor).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

import dagster as dg

from ordertower.redact import redact

#: metadata keys of an ingestion asset's materialisation (pipelines/defs/ingest/assets.py)
_LANDED, _QUARANTINED = "landed", "quarantined"


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


@dataclass
class StageProgress:
    """One stage of a materialisation as it runs: assets done out of the stage's total."""

    index: int
    stages: int
    title: str
    total: int
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    done: int = 0
    landed: int = 0
    quarantined: int = 0
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=lambda: time.monotonic())
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shown: int = -1
    _keys: set[str] = field(default_factory=set)
    #: asset key -> (landed, quarantined) of its materialisation. A run over a partition range
    #: reports one event per partition, each with the range's totals: counted once per asset.
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the latest message of a running step, and when one was last written (off a terminal)
    _note: str = ""
    _noted_at: float = field(default_factory=lambda: time.monotonic())

    @property
    def prefix(self) -> str:
        return f"[{self.index}/{self.stages}] {self.title}"

    def begin(self) -> None:
        self._write(f"{self.prefix}: {self.total} assets ...", end="\n")

    def asset(self, key: str, metadata: dict[str, Any]) -> None:
        """An asset (or one partition of it) was materialised."""
        with self._lock:
            self._keys.add(key)
            self.done = len(self._keys)
            if _LANDED in metadata:
                self._counts[key] = (
                    int(_value(metadata[_LANDED]) or 0),
                    int(_value(metadata.get(_QUARANTINED)) or 0),
                )
                self.landed = sum(landed for landed, _ in self._counts.values())
                self.quarantined = sum(q for _, q in self._counts.values())
            self._bar()

    def note(self, step: str, message: str) -> None:
        """A running step said something (a wave planned, a chunk of features stored): on a
        terminal it follows the bar; elsewhere a line, at most one per :data:`NOTE_SECONDS`, so
        a long stage never sits silent."""
        # the raw message of the step's log call: masked here like every log record
        text = redact(_DIRECTORIES.sub("", " ".join(str(message).split())))
        if not text or _DBT_CHATTER.match(text):
            return
        with self._lock:
            self._note = f"{step}: {text}"
            if self._tty():
                self._bar()
            elif time.monotonic() - self._noted_at >= NOTE_SECONDS:
                self._noted_at = time.monotonic()
                self._write(f"  {self._clip(self._note, 110)} ({self.elapsed()})", end="\n")

    @staticmethod
    def _clip(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    def step_failed(self, step: str) -> None:
        with self._lock:
            self.failed.append(step)

    def _bar(self) -> None:
        """A bar redrawn in place on a terminal; elsewhere a line at each quarter."""
        share = self.done / self.total if self.total else 1.0
        if self._tty():
            width = 30
            filled = int(width * min(share, 1.0))
            elapsed = time.monotonic() - self.started
            note = f"  {self._clip(self._note, 70)}" if self._note else ""
            self._write(
                f"\r  [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"assets, {elapsed:.0f} s{note}\x1b[K",
                end="",
            )
        else:
            quarter = int(min(share, 1.0) * 4)
            if quarter > self._shown and 0 < quarter < 4:
                self._shown = quarter
                self._write(f"  {self.done}/{self.total} assets, {self.elapsed()}", end="\n")

    def elapsed(self) -> str:
        seconds = time.monotonic() - self.started
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    def finish(self, success: bool) -> str:
        """The stage's closing line."""
        if self._tty() and (self.done or self._note):
            self._write("\r\x1b[K", end="")
        parts = [f"{self.done}/{self.total} assets"]
        if self.landed or self.quarantined:
            parts.append(f"{self.landed:,} records landed, {self.quarantined:,} quarantined")
        state = "done" if success else "FAILED"
        if self.failed:
            parts.append("failed: " + ", ".join(self.failed[:3]))
        line = f"{self.prefix}: {state} in {self.elapsed()} ({'; '.join(parts)})"
        self._write(line, end="\n")
        return line

    def _tty(self) -> bool:
        return bool(getattr(self.out, "isatty", lambda: False)())

    def _write(self, text: str, end: str) -> None:
        self.out.write(text + end)
        self.out.flush()


#: the directories of absolute paths in a step's message (a note shows the file's name only)
_DIRECTORIES = re.compile(r"(?<![\w:/])(?:/[\w.+-]+)+/(?=[\w.+-])")

#: dagster-dbt's own messages about the command it runs (its arguments, a partial parse copied,
#: the selection it overrides): not what the step is doing for the person watching; the dbt
#: steps' progress is the count of their models built
_DBT_CHATTER = re.compile(
    r"^(?:Running dbt command|Finished dbt command|Copying `|A dbt subsetted execution"
    r"|Overriding default `DBT_)"
)

#: off a terminal, a running step's messages are shown at most once per this many seconds
NOTE_SECONDS = 30.0

#: the stage being materialised in this process (the logger below reports into it)
_current: StageProgress | None = None


def follow(stage: StageProgress | None) -> None:
    """Report the events of the runs that follow into ``stage`` (None: stop reporting)."""
    global _current
    _current = stage


class _EventHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        stage = _current
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if stage is None:
            return
        if event is None:
            # a step's own log line (context.log.info): what a long step is doing now
            if meta.get("step_key") and record.levelno >= logging.INFO:
                stage.note(meta["step_key"], meta.get("orig_message") or "")
            return
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            stage.asset(
                materialization.asset_key.to_user_string(), dict(materialization.metadata or {})
            )
        elif kind == "STEP_FAILURE":
            stage.step_failed(event.step_key or "?")


@dg.logger(description="One line per stage and a progress bar (pipelines/progress.py)")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("ordertower.progress", level=logging.DEBUG)
    log.addHandler(_EventHandler(level=logging.DEBUG))
    return log
