"""Partitions shared by the domains: one per day of source data (UTC)."""

from __future__ import annotations

import dagster as dg

from ordertower.settings import get_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().partition_start,
    # a day's files can land while the day is still running (the stream, late feeds)
    end_offset=1,
)
