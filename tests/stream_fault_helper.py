"""Run ``ordertower stream`` with a fault injected inside a batch's lake transaction.

    python tests/stream_fault_helper.py --block-at N --marker PATH -- <ordertower stream args>

The real CLI runs (the live hooks too, unless ``--no-live``); one more hook is appended after
them, so it runs inside the transaction once the events, ETAs, alerts and CRM outbox rows are
written and before the commit. On the N-th batch it writes ``PATH`` and blocks: the test then
kills the process with SIGKILL, mid-transaction, with the batch unacknowledged.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.cli import main
from pipelines.stream.consumer import StreamConsumer


class BlockInTransaction:
    def __init__(self, block_at: int, marker: Path) -> None:
        self.block_at = block_at
        self.marker = marker
        self.batches = 0

    def __call__(self, con, landed, result) -> None:  # noqa: ARG002 - the Hook signature
        self.batches += 1
        if self.batches == self.block_at:
            self.marker.write_text(f"{result.batch_id} {len(landed)} {result.messages}\n")
            time.sleep(3600)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-at", type=int, required=True)
    parser.add_argument("--marker", type=Path, required=True)
    args, rest = parser.parse_known_args(argv)
    rest = rest[1:] if rest[:1] == ["--"] else rest
    blocker = BlockInTransaction(args.block_at, args.marker)
    original = StreamConsumer._lake

    def lake_with_blocker(self):
        lander = original(self)
        if blocker not in lander.hooks:
            lander.hooks.append(blocker)
        return lander

    StreamConsumer._lake = lake_with_blocker
    return main(rest)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
