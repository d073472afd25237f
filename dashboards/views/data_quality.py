"""Data quality: is what the sources delivered complete, conserved, fresh and contract-compliant?

For data stewards and engineers. Per dataset and daily partition it shows what was received,
landed and quarantined (and why), whether every received record is accounted for
(received = landed + quarantined), whether each dataset is within its freshness SLA, which
contract rules fail, and the quarantined records themselves so a steward can take them back to
the source owner. All numbers come from the ops tables written by ingestion, through
:mod:`dashboards.data`; this module only lays them out.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboards import auth, data
from dashboards import components as ui
from ordertower.access import Identity

#: Default date window: the latest two weeks of partitions, enough to see a trend, small enough
#: to read.
DEFAULT_WINDOW_DAYS = 14
#: Drill-down rows shown (and downloadable) per partition.
DRILL_LIMIT = 500


def _sidebar_filters(
    datasets: pd.DataFrame,
) -> tuple[tuple[str, ...], dt.date | None, dt.date | None]:
    """Dataset multiselect (all by default) and partition date range (latest two weeks)."""
    bounds = data.partition_date_bounds()
    first, last = bounds.at[0, "first_date"], bounds.at[0, "last_date"]
    options = datasets["dataset"].tolist()
    with st.sidebar:
        st.header("Filters")
        chosen = st.multiselect(
            "Datasets",
            options,
            default=options,
            key="dq_datasets",
            help="Datasets registered in the lake or ingested at least once.",
        )
        start = end = None
        if not pd.isna(first) and not pd.isna(last):
            first, last = pd.Timestamp(first).date(), pd.Timestamp(last).date()
            default_start = max(first, last - dt.timedelta(days=DEFAULT_WINDOW_DAYS - 1))
            picked = st.date_input(
                "Partition dates",
                value=(default_start, last),
                min_value=first,
                max_value=last,
                key="dq_dates",
                help="Daily partitions (the day the source produced the file). "
                "Unpartitioned reference snapshots are always included.",
            )
            dates = tuple(picked) if isinstance(picked, list | tuple) else (picked,)
            if dates:
                start, end = dates[0], dates[-1]
        st.caption(f"Figures are cached for {data.CACHE_TTL_SECONDS} s.")
    return tuple(chosen), start, end


def _headline(datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None) -> None:
    """The four numbers a steward checks first, plus the alarms that need action now."""
    head = data.headline_metrics(datasets, start, end).iloc[0]
    cols = st.columns(4)
    cols[0].metric(
        "Datasets",
        ui.fmt_count(head["datasets"]),
        border=True,
        help="Selected datasets with at least one partition in the date range.",
    )
    cols[1].metric(
        "Records received",
        ui.fmt_count(head["received"]),
        border=True,
        help=f"{ui.fmt_count(head['partitions'])} partitions, "
        f"{ui.fmt_count(head['landed'])} records landed.",
    )
    cols[2].metric(
        "Quarantine rate",
        ui.fmt_rate(head["quarantine_rate"]),
        border=True,
        help=f"{ui.fmt_count(head['quarantined'])} records quarantined.",
    )
    cols[3].metric(
        "Datasets breaching SLA",
        ui.fmt_count(head["sla_breaches"]),
        border=True,
        help="Last finished ingestion older than the dataset's freshness SLA.",
    )
    if head["conservation_breaks"]:
        st.warning(
            f"**Conservation broken** in {ui.fmt_count(head['conservation_breaks'])} "
            "partition(s): received ≠ landed + quarantined, records were lost or double "
            "counted. They are highlighted in red below.",
            icon=":material/error:",
        )


def _volume_chart(datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None) -> None:
    """Received vs quarantined per day; quarantined on its own axis so small counts show."""
    daily = data.daily_volumes(datasets, start, end)
    st.subheader("Received vs quarantined per day")
    if daily.empty:
        st.caption("No daily partitions in the selection.")
        return
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=daily["partition_date"],
            y=daily["received"],
            name="Received",
            marker_color=ui.COLOR_OK,
            opacity=0.75,
            hovertemplate="%{x|%Y-%m-%d}<br>received %{y:,}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=daily["partition_date"],
            y=daily["quarantined"],
            name="Quarantined",
            mode="lines+markers",
            line={"color": ui.COLOR_BAD, "width": 2},
            customdata=daily["quarantine_rate"],
            hovertemplate="%{x|%Y-%m-%d}<br>quarantined %{y:,} (%{customdata:.2%})<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        bargap=0.25,
    )
    fig.update_yaxes(title_text="received", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(
        title_text="quarantined",
        secondary_y=True,
        rangemode="tozero",
        showgrid=False,
        color=ui.COLOR_BAD,
        tickmode="auto",
        nticks=6,
        tickformat=",d",
    )
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _freshness(datasets: tuple[str, ...]) -> None:
    """Age of each dataset's last ingestion against its SLA, late datasets first."""
    st.subheader("Freshness")
    fresh = data.dataset_freshness(datasets)
    if fresh.empty:
        st.caption("No datasets selected.")
        return
    # Formatted as text up front: Streamlit renders null cells as "None" whatever a Styler says.
    view = fresh.assign(
        age_hours=fresh["age_hours"].map(ui.fmt_hours),
        freshness_sla_hours=fresh["freshness_sla_hours"].map(
            lambda h: "no SLA" if pd.isna(h) else ui.fmt_hours(h)
        ),
        last_finished_at=fresh["last_finished_at"].map(
            lambda t: "never" if pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%d %H:%M %Z")
        ),
    )[["status", "dataset", "owner", "age_hours", "freshness_sla_hours", "last_finished_at"]]
    styled = view.style.map(ui.status_css, subset=["status"])
    st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        column_config={
            "status": st.column_config.TextColumn("Status", width="small"),
            "dataset": "Dataset",
            "owner": "Owner",
            "age_hours": st.column_config.TextColumn(
                "Age", width="small", help="Now minus the latest finished ingestion run."
            ),
            "freshness_sla_hours": st.column_config.TextColumn("SLA", width="small"),
            "last_finished_at": st.column_config.TextColumn("Last ingestion"),
        },
    )


def _reasons(datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None) -> None:
    """The most frequent quarantine reasons: where to look first."""
    st.subheader("Top quarantine reasons")
    reasons = data.top_quarantine_reasons(datasets, start, end, limit=10)
    if reasons.empty:
        st.caption("Nothing quarantined in the selection.")
        return
    st.dataframe(
        reasons,
        hide_index=True,
        width="stretch",
        column_config={
            "dataset": "Dataset",
            "reason": st.column_config.TextColumn("Reason", width="large"),
            "records": st.column_config.NumberColumn("Records", format="localized"),
            "partitions": st.column_config.NumberColumn("Partitions"),
        },
    )


def _partitions(parts: pd.DataFrame) -> None:
    """Per dataset and partition volumes; conservation breaks painted red and listed first."""
    st.subheader("Partitions")
    if parts.empty:
        st.caption("No partitions in the selection.")
        return
    view = parts.assign(top_reasons=parts["top_reasons"].fillna(""))[
        [
            "dataset",
            "partition_key",
            "files",
            "received",
            "landed",
            "quarantined",
            "quarantine_rate",
            "conserved",
            "rules_failed",
            "unknown_codes",
            "top_reasons",
        ]
    ]
    styled = view.style.apply(ui.row_styles(~parts["conserved"].astype(bool)), axis=None).format(
        {
            "received": ui.fmt_count,
            "landed": ui.fmt_count,
            "quarantined": ui.fmt_count,
            "quarantine_rate": ui.fmt_rate,
            "unknown_codes": ui.fmt_count,
        }
    )
    st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(view), 420),
        column_config={
            "dataset": "Dataset",
            "partition_key": st.column_config.TextColumn(
                "Partition", help="Daily partition, or __all__ for unpartitioned snapshots."
            ),
            "files": "Files",
            "received": "Received",
            "landed": "Landed",
            "quarantined": "Quarantined",
            "quarantine_rate": "Quarantine rate",
            "conserved": st.column_config.CheckboxColumn(
                "Conserved", help="received = landed + quarantined"
            ),
            "rules_failed": st.column_config.NumberColumn(
                "Rules failed", help="Contract rules that failed on this partition."
            ),
            "unknown_codes": st.column_config.TextColumn(
                "Unknown codes", help="Source codes with no mapping yet (kept, not rejected)."
            ),
            "top_reasons": st.column_config.TextColumn("Top quarantine reasons", width="large"),
        },
    )


def _contract_rules(datasets: tuple[str, ...], start: dt.date | None, end: dt.date | None) -> None:
    """Contract rule outcomes over the selected partitions, failing rules first."""
    st.subheader("Contract rules")
    rules = data.contract_rule_results(datasets, start, end)
    if rules.empty:
        st.caption("No contract results for the selection.")
        return
    failing = int((~rules["passed"].astype(bool)).sum())
    st.caption(f"{failing} of {len(rules)} rules failed on at least one partition.")
    view = rules.assign(
        result=rules["passed"].map({True: "PASS", False: "FAIL"}),
        column_name=rules["column_name"].fillna("(table)"),
        failing_partitions=rules["failing_partitions"].fillna(""),
    )[
        [
            "result",
            "dataset",
            "rule",
            "column_name",
            "expectation",
            "partitions_failed",
            "partitions_checked",
            "unexpected_count",
            "unexpected_rate",
            "failing_partitions",
        ]
    ]
    styled = view.style.map(ui.status_css, subset=["result"]).format(
        {"unexpected_count": ui.fmt_count, "unexpected_rate": ui.fmt_rate}
    )
    st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(view), 420),
        column_config={
            "result": st.column_config.TextColumn("Result", width="small"),
            "dataset": "Dataset",
            "rule": "Rule",
            "column_name": "Column",
            "expectation": "Expectation",
            "partitions_failed": "Failed partitions",
            "partitions_checked": "Checked",
            "unexpected_count": "Unexpected rows",
            "unexpected_rate": "Unexpected rate",
            "failing_partitions": st.column_config.TextColumn("Failing partitions"),
        },
    )


def _drill_down(parts: pd.DataFrame, registry: pd.DataFrame, who: Identity) -> None:
    """Quarantined records of one dataset partition, PII masked, to hand back to the source."""
    st.subheader("Quarantined records")
    with_rejects = parts[parts["quarantined"] > 0]
    if with_rejects.empty:
        st.success("Nothing quarantined in the selection.", icon=":material/check_circle:")
        return
    # Worst dataset first so the default selection is the one most worth looking at.
    order = with_rejects.groupby("dataset")["quarantined"].sum().sort_values(ascending=False)
    left, right = st.columns(2)
    dataset = left.selectbox("Dataset", order.index.tolist(), key="dq_drill_dataset")
    counts = (
        with_rejects[with_rejects["dataset"] == dataset]
        .set_index("partition_key")["quarantined"]
        .sort_index(ascending=False)
    )
    partition = right.selectbox(
        "Partition",
        counts.index.tolist(),
        key="dq_drill_partition",
        format_func=lambda key: f"{key} ({ui.fmt_count(counts.get(key))} quarantined)",
    )
    pii = registry.loc[registry["dataset"] == dataset, "pii_columns"]
    pii_columns = list(pii.iloc[0]) if len(pii) and pii.iloc[0] is not None else []
    reveal = False
    if who.may("quarantine.raw"):
        reveal = st.toggle(
            "Show the original text (personal data; the access is audited)",
            key="dq_reveal_raw",
        )
    shown = data.quarantined_records(dataset, partition, limit=DRILL_LIMIT, reveal=reveal)
    if reveal:
        auth.audit_read(f"quarantine:{dataset}/{partition}", f"{len(shown)} original record(s)")
    total = int(counts.get(partition, len(shown)))
    note = f"Showing {len(shown):,} of {total:,} quarantined records"
    if reveal:
        note += "; original text as delivered"
    elif pii_columns:
        note += f"; personal data masked ({', '.join(pii_columns)})"
    st.caption(note + ".")
    # Keyed by dataset and partition so a row selected in one partition does not carry over.
    table = st.dataframe(
        shown[["record_no", "source_file", "reasons", "raw_record", "quarantined_at"]],
        hide_index=True,
        width="stretch",
        key=f"dq_drill_table_{dataset}_{partition}",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "record_no": st.column_config.NumberColumn("Record #", format="plain"),
            "source_file": st.column_config.TextColumn("Source file", width="medium"),
            "reasons": st.column_config.ListColumn("Reasons", width="large"),
            "raw_record": st.column_config.TextColumn("Original record", width="large"),
            "quarantined_at": st.column_config.DatetimeColumn(
                "Quarantined at", format="YYYY-MM-DD HH:mm"
            ),
        },
    )
    _record_detail(shown, table.selection.rows if table is not None else [])
    st.download_button(
        "Download as CSV",
        shown.to_csv(index=False).encode("utf-8"),
        file_name=f"quarantine_{dataset}_{partition}.csv",
        mime="text/csv",
        icon=":material/download:",
        key="dq_drill_download",
    )


def _record_detail(records: pd.DataFrame, selected_rows: list[int]) -> None:
    """The whole original record of the selected row: the table truncates long records."""
    if not selected_rows:
        st.caption("Select a row to see its whole original record.")
        return
    row = records.iloc[selected_rows[0]]
    st.markdown(f"**Record {row['record_no']}** of `{row['source_file']}`")
    for reason in row["reasons"]:
        st.markdown(f"- `{reason}`")
    raw = row["raw_record"]
    try:
        st.json(json.loads(raw), expanded=True)
    except (TypeError, ValueError):
        st.code(raw if raw is not None else "(no original text kept)", language=None)


def _marts() -> None:
    """The governed marts against their contracts: built, populated and fresh."""
    st.subheader("Marts: contracts and freshness")
    health = data.mart_health()
    if health.empty:
        st.caption("No mart contracts found.")
        return
    problems = health[health["status"].isin(["MISSING", "LATE"])]
    if not problems.empty:
        st.warning(
            f"{len(problems)} mart(s) missing or older than their contract's SLA: "
            + ", ".join(problems["mart"]),
            icon=":material/schedule:",
        )
    st.dataframe(
        health.style.map(ui.status_css, subset=["status"]),
        hide_index=True,
        width="stretch",
        column_config={
            "status": st.column_config.TextColumn("Status", width="small"),
            "sla_hours": st.column_config.NumberColumn("SLA h", format="%.2f"),
            "age_hours": st.column_config.NumberColumn("Age h", format="%.1f"),
            "rows": st.column_config.NumberColumn("Rows", format="localized"),
            "last_built_at": st.column_config.DatetimeColumn("Last built (UTC)"),
        },
    )
    st.caption(
        "Contracts: `data_contracts/marts/*.yaml` (owners edit them; `ordertower contracts drift` "
        "keeps them equal to dbt's enforced model contracts). Every build runs the marts' dbt "
        "data tests as Dagster asset checks; a failing test fails the build."
    )


def render() -> None:
    """Lay out the page; any missing lake or table ends it with a hint, never a traceback."""
    who = auth.require_page("quality", "Data quality")
    st.title("Data quality")
    st.caption(
        "Per dataset and partition: what the sources delivered, what landed, what was "
        "quarantined and why, freshness against SLA and contract rule results."
    )
    try:
        registry = data.list_datasets()
        if registry.empty:
            ui.show_unavailable(f"Nothing has been ingested yet. {data.DEMO_HINT}")
            return
        datasets, start, end = _sidebar_filters(registry)
        if not datasets:
            ui.show_unavailable("Select at least one dataset in the sidebar.")
            return
        _headline(datasets, start, end)
        _volume_chart(datasets, start, end)
        left, right = st.columns(2)
        with left:
            _freshness(datasets)
        with right:
            _reasons(datasets, start, end)
        parts = data.partition_quality(datasets, start, end)
        _partitions(parts)
        _contract_rules(datasets, start, end)
        _drill_down(parts, registry, who)
        _marts()
    except data.DataUnavailable as exc:
        ui.show_unavailable(str(exc))


render()
