"""The ``ordertower`` command line.

Every command exits 0 on success and non-zero with one clear message (never a traceback) on
bad input; ``contracts diff`` exits 1 when a change is breaking. Heavy libraries (Dagster,
Great Expectations) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from exc
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


# ------------------------------------------------------------------------------- commands


def cmd_simulate(args: argparse.Namespace) -> int:
    from ordertower.settings import get_settings
    from pipelines.simulator import simulate

    out = Path(args.out) if args.out else get_settings().landing_dir
    if args.live and (out / "carriers").is_dir():
        return _publish_live(out, args)
    try:
        summary = simulate(
            out,
            orders=args.orders,
            days=args.days,
            seed=args.seed,
            start=args.start,
            dirty_rate=args.dirty_rate,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    data = summary.as_dict()
    print(json.dumps(data, indent=2, default=str) if args.json else _simulate_text(out, data))
    return _publish_live(out, args) if args.live else 0


def _publish_live(landing: Path, args: argparse.Namespace) -> int:
    """``simulate --live``: publish the landing zone's carrier feeds to the broker."""
    import logging

    from pipelines.stream.broker import BrokerError, Topology, redact
    from pipelines.stream.publish import landed_days, publish, read_messages

    days = landed_days(landing)
    if not days:
        raise CliError(f"no carrier feeds under {landing / 'carriers'}: simulate a world first")
    day_from = args.live_from or days[-1]
    day_to = args.live_to or days[-1]
    if day_to < day_from:
        raise CliError(f"--live-to {day_to} is before --live-from {day_from}")
    messages = read_messages(landing, day_from, day_to)
    if not messages:
        raise CliError(f"no carrier events between {day_from} and {day_to} in {landing}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    topology = Topology.from_env()
    pace = f"{args.rate:g} messages/s" if args.rate else f"{args.speed:g}x real time"
    from ordertower.settings import get_settings

    print(
        f"publishing {len(messages):,} carrier events of {day_from}..{day_to} to "
        f"{redact(get_settings().broker_url)} exchange {topology.exchange} at {pace}",
        flush=True,
    )

    def progress(stats) -> None:
        print(f"  {stats.published:,} published in {stats.seconds:.0f} s", flush=True)

    try:
        stats = publish(messages, topology, speed=args.speed, rate=args.rate, on_progress=progress)
    except BrokerError as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(stats.as_dict(), indent=2))
    return 0


def _drain_outbox(timeout: float, lock) -> None:
    """Give the CRM sender up to ``timeout`` seconds to deliver what is due before stopping."""
    import time

    from ordertower import lake
    from pipelines.crm.outbox import outbox_counts

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with lock:  # the sender thread writes the lake in this process
                con = lake.connect(read_only=True)
                try:
                    pending = outbox_counts(con).get("pending", 0)
                finally:
                    con.close()
        except Exception:  # noqa: BLE001 - best effort: the outbox keeps what is not sent
            return
        if not pending:
            return
        time.sleep(0.5)


def cmd_live_demo(args: argparse.Namespace) -> int:
    """The live path end to end on the current lake (make live, the end of make demo)."""
    from pipelines.stream.demo import LiveDemoError, run_live_demo

    try:
        result = run_live_demo(rate=args.rate, days=args.days)
    except LiveDemoError as exc:
        if args.if_broker and "no message broker" in str(exc):
            print(f"live part skipped: {exc} (start RabbitMQ, then `make live`)")
            return 0
        raise CliError(str(exc)) from exc
    print(json.dumps(result, indent=2))
    from pipelines.status import lake_status

    print("\n".join(line for line in lake_status().splitlines()[-6:]))
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    """Consume the live carrier events: land, predict ETAs, raise alerts, fill the CRM outbox."""
    import logging
    import threading

    from ordertower.settings import get_settings
    from pipelines.stream import health
    from pipelines.stream.broker import Topology, reachable, redact
    from pipelines.stream.consumer import StreamConsumer, requeue_lake_failures

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    url = get_settings().broker_url
    if not reachable(url, timeout=2.0):
        raise CliError(
            f"no message broker at {redact(url)}: start RabbitMQ or set ORDERTOWER_BROKER_URL"
        )
    if args.requeue_lake_failures:
        moved = requeue_lake_failures(Topology.from_env(), url)
        print(f"re-published {moved} messages dead-lettered by a lake failure")
        return 0
    if args.migrate_queue:
        from pipelines.stream.broker import BrokerError, migrate_queue

        try:
            moved = migrate_queue(Topology.from_env(), url)
        except BrokerError as exc:
            raise CliError(str(exc)) from exc
        print(f"queue {Topology.from_env().queue} declared with its limits; {moved} messages kept")
        return 0

    def hooks(con):
        if args.no_live:
            return []
        from pipelines.stream.live import LiveHook

        return [LiveHook(con, eta=not args.no_eta, alerts=not args.no_alerts)]

    consumer = StreamConsumer(
        Topology.from_env(),
        batch_size=args.batch_size,
        max_wait=args.max_wait,
        make_hooks=hooks,
        retry=health.RetryPolicy(
            attempts=args.lake_retries,
            seconds=args.lake_retry_seconds,
            locked_seconds=args.lake_lock_seconds,
        ),
        heartbeat=health.Heartbeat(
            Topology.from_env().queue,
            file_every_s=args.heartbeat_every,
            lake_every_s=args.lake_heartbeat,
        ),
    )
    consumer.install_signal_handlers()
    sender, sender_stop = None, threading.Event()
    if not args.no_crm_sender and not args.no_live:
        from pipelines.crm.outbox import run_sender

        # a thread sharing the consumer's lake lock: two lake writers in one process must take
        # turns on the SQLite catalog (the POSTs themselves run outside the lock)
        sender = threading.Thread(
            target=run_sender,
            args=(sender_stop,),
            kwargs={
                "interval": 2.0,
                "lock": consumer.lake_lock,
                "wake": consumer.messages_committed,
            },
            name="crm-sender",
            daemon=True,
        )
        sender.start()
    print(f"consuming {consumer.topology.queue} on {redact(url)} (Ctrl-C to stop)", flush=True)
    from pipelines.stream.broker import TopologyMismatch

    try:
        stats = consumer.run(idle_timeout=args.idle_exit, max_messages=args.max_messages)
    except TopologyMismatch as exc:  # an old queue: the message says what to run
        raise CliError(str(exc)) from exc
    finally:
        if sender is not None:
            if consumer.failure is None:  # a failed lake cannot mark messages sent: no wait
                _drain_outbox(timeout=30.0, lock=consumer.lake_lock)
            sender_stop.set()
            consumer.messages_committed.set()  # a sender waiting for work sees the stop
            sender.join(timeout=30)
    print(json.dumps(stats.as_dict(), indent=2))
    if consumer.failure is not None:
        print(
            f"ordertower stream: stopped on a permanent lake failure: {consumer.failure.reason} "
            "(the batch is in the dead-letter queue; fix, then `ordertower stream "
            "--requeue-lake-failures`)",
            file=sys.stderr,
        )
        return health.EXIT_LAKE_FAILURE
    return 0


def _simulate_text(out: Path, data: dict) -> str:
    rows = data.get("rows") or {}
    lines = [f"simulated world written to {out}"]
    lines += [f"  {name:28s} {count:>12,}" for name, count in rows.items()]
    if "seconds" in data:
        lines.append(f"  in {data['seconds']:.1f} s")
    return "\n".join(lines)


def cmd_materialize(args: argparse.Namespace) -> int:
    from pipelines.materialize import MaterializeError, materialize, parse_recent

    try:
        summary = materialize(
            select=args.select,
            partition=args.partition,
            dbt_tests=not args.no_dbt_tests,
            rebuild_damaged=args.rebuild_damaged,
            recent=parse_recent(args.recent),
        )
    except MaterializeError as exc:
        raise CliError(str(exc)) from exc
    window = (
        f" over {summary.partition_range[0]}..{summary.partition_range[1]}"
        if summary.partition_range
        else ""
    )
    print(
        f"materialised {len(summary.assets)} assets{window} in {len(summary.runs)} run(s): "
        + ", ".join(summary.runs)
    )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from ordertower.lake import LakeError, connect, sandbox

    try:
        con = connect(read_only=True)
    except LakeError as exc:
        raise CliError(str(exc)) from exc
    try:
        sandbox(con)  # the lake only: no other file, no ATTACH, INSTALL, LOAD or SET
        frame = con.execute(args.query).df()
    except duckdb.Error as exc:
        raise CliError(f"query failed: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(frame.to_json(orient="records", date_format="iso", indent=2))
    else:
        import pandas as pd

        with pd.option_context(
            "display.max_rows", 200, "display.max_columns", 50, "display.width", 200
        ):
            print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0


def cmd_contracts_lint(args: argparse.Namespace) -> int:
    from ordertower.settings import CONTRACTS_DIR
    from pipelines.contracts.lint import lint_paths

    paths = [Path(p) for p in args.paths] or [CONTRACTS_DIR]
    findings = lint_paths(paths)
    for f in findings:
        print(f)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_dbt_rules(args: argparse.Namespace) -> int:
    """dbt Labs' project rules (dbt-project-evaluator's checks) on the dbt project."""
    import tempfile

    from pipelines import dbt_rules

    try:
        if args.manifest:
            manifest = dbt_rules.load_manifest(Path(args.manifest))
        else:
            with tempfile.TemporaryDirectory(prefix="ordertower-dbt-rules-") as target:
                manifest = dbt_rules.parse_project(Path(target))
        report = dbt_rules.evaluate(manifest)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(
            json.dumps(
                {
                    "rules": report.rules,
                    "findings": [vars(f) for f in report.findings],
                    "excepted": [vars(f) | {"reason": why} for f, why in report.excepted],
                    "stale_exceptions": report.stale_exceptions,
                },
                indent=2,
            )
        )
    else:
        for line in report.lines():
            print(line)
        if args.verbose:
            for finding, why in report.excepted:
                print(f"excepted: {finding} -- {why}")
    print(
        f"{report.rules} rules: {len(report.findings)} finding(s), "
        f"{len(report.excepted)} excepted with a reason, "
        f"{len(report.stale_exceptions)} stale exception(s)",
        file=sys.stderr,
    )
    return 0 if report.ok else 1


def cmd_contracts_diff(args: argparse.Namespace) -> int:
    from pipelines.contracts.diff import diff_contracts
    from pipelines.contracts.model import ContractError, load_contract

    try:
        old, new = load_contract(Path(args.old)), load_contract(Path(args.new))
    except ContractError as exc:
        raise CliError(str(exc)) from exc
    changes = diff_contracts(old, new)
    for change in changes:
        print(change)
    breaking = sum(c.breaking for c in changes)
    print(f"{len(changes)} change(s), {breaking} breaking", file=sys.stderr)
    return 1 if breaking else 0


def cmd_contracts_scaffold(args: argparse.Namespace) -> int:
    from pipelines.contracts.marts import write_scaffold

    try:
        path = write_scaffold(args.model, force=args.force)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {path}: complete its owner, purpose and SLA, then `ordertower contracts lint`")
    return 0


def cmd_contracts_drift(args: argparse.Namespace) -> int:
    from pipelines.contracts.marts import dbt_models, drift, mart_contracts
    from pipelines.contracts.model import ContractError

    try:
        contracts = mart_contracts()
    except ContractError as exc:
        raise CliError(str(exc)) from exc
    models = {n: m for n, m in dbt_models().items() if m.enforced}
    problems = [
        f"{n}: enforced dbt contract has no ODCS contract" for n in models.keys() - contracts.keys()
    ]
    problems += [f"{n}: ODCS contract has no dbt mart" for n in contracts.keys() - models.keys()]
    for name in sorted(contracts.keys() & models.keys()):
        problems += drift(contracts[name], models[name])
    for p in problems:
        print(p)
    print(f"{len(contracts)} mart contract(s), {len(problems)} disagreement(s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.lake_files import describe, find_damage
    from pipelines.status import lake_status

    damage = find_damage()  # the catalog's counts would hide a damaged file: check them first
    if damage:
        for d in damage:
            print(f"damaged: {d.table}: {d.path}: {d.problem}")
        raise CliError(describe(damage))
    try:
        print(lake_status())
    except (RuntimeError, duckdb.Error) as exc:
        raise CliError(str(exc).strip().splitlines()[0]) from exc
    return 0


def cmd_olist_land(args: argparse.Namespace) -> int:
    from pipelines.ingest.olist import OlistError, land

    try:
        result = land(Path(args.source_dir) if args.source_dir else None)
    except OlistError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"Olist landed in {result.target_dir} from {result.source_dir}: "
        f"{len(result.copied)} file(s) copied, {len(result.unchanged)} unchanged"
    )
    return 0


def cmd_pii_scan(args: argparse.Namespace) -> int:
    """Scan every surface outside the raw layer for personal data; exit 1 when any is found."""
    from ordertower.lake import LakeError
    from pipelines.pii_scan import format_report, report_json, scan

    try:
        report = scan()
    except LakeError as exc:
        raise CliError(str(exc)) from exc
    print(report_json(report) if args.format == "json" else format_report(report))
    return 0 if report.clean else 1


def cmd_lake_maintain(args: argparse.Namespace) -> int:
    """Lake upkeep by hand: expire, thin, merge, clean up (docs/lake.md, "Lake upkeep")."""
    import json

    from pipelines.maintenance import MaintenanceError, maintain

    try:
        report = maintain(mode=args.mode, dry_run=args.dry_run)
    except MaintenanceError as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipelines.bench import run_bench

    try:
        path = run_bench(scales=args.scale, days=args.days)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"results written to {path} and BENCHMARKS.md")
    return 0


#: dbt commands that open the lake (``ls``, ``parse`` and the like do not)
DBT_LAKE_COMMANDS = frozenset(
    {"build", "run", "test", "seed", "compile", "docs", "show", "snapshot", "source",
     "run-operation", "retry"}
)  # fmt: skip


def cmd_dbt(args: argparse.Namespace) -> int:
    """Run dbt on the lake's project, with the lake's location exported (e.g. ``docs generate``)."""
    import os
    import subprocess

    from ordertower.lake import exists as lake_exists
    from ordertower.settings import DBT_PROJECT_DIR, get_settings

    dbt = Path(sys.executable).parent / "dbt"
    if not dbt.exists():
        raise CliError(f"dbt is not installed in this environment ({dbt}); run `make install`")
    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["--"]:
        dbt_args = dbt_args[1:]
    if not dbt_args:
        raise CliError(
            "give dbt arguments, e.g. `ordertower dbt build` or `ordertower dbt docs generate`"
        )
    settings = get_settings()
    command = next((a for a in dbt_args if not a.startswith("-")), "")
    if command in DBT_LAKE_COMMANDS and not lake_exists(settings):
        # dbt would open the lake's catalog and end in a traceback
        raise CliError(
            f"no lake at {settings.catalog}: run `make demo` (or `ordertower materialize`) "
            f"before `ordertower dbt {command}`"
        )
    if command in DBT_LAKE_COMMANDS and settings.catalog_kind == "postgres":
        # a PostgreSQL catalog exists until connecting says otherwise: say it in one line,
        # where dbt would end in a traceback
        from ordertower.lake import LakeError, connect

        try:
            connect(read_only=True, settings=settings, retries=0).close()
        except LakeError as exc:
            reason = " ".join(str(exc).split())  # libpq's message spans lines
            raise CliError(
                f"{reason}; `ordertower dbt {command}` needs the lake's catalog"
            ) from exc
    env = {**os.environ, **settings.dbt_env()}
    cmd = [str(dbt), *dbt_args]
    if "--profiles-dir" not in dbt_args:
        cmd += ["--profiles-dir", str(DBT_PROJECT_DIR)]
    return subprocess.call(cmd, cwd=DBT_PROJECT_DIR, env=env)


def cmd_risk_catalogue(args: argparse.Namespace) -> int:
    """Write the generated feature catalogue (docs/risk_features.md)."""
    from ml.risk.features import catalogue, catalogue_markdown
    from ordertower.settings import PROJECT_ROOT

    path = Path(args.out) if args.out else PROJECT_ROOT / "docs" / "risk_features.md"
    path.write_text(catalogue_markdown())
    print(f"{len(catalogue())} features written to {path}")
    return 0


def _actor(args: argparse.Namespace, permission: str, what: str):
    """The named identity a write verb acts as (``--as``, else ``ORDERTOWER_ACTOR``), checked
    against the roles file like a signed-in user; a denial is audited and ends the command."""
    from ordertower import audit
    from ordertower.access import AccessDenied, RolesFileError, named, require
    from ordertower.settings import get_settings

    try:
        who = named(args.actor or get_settings().actor or "")
        return require(who, permission, what)
    except RolesFileError as exc:
        raise CliError(str(exc)) from exc
    except AccessDenied as exc:
        if args.actor or get_settings().actor:
            audit.append(named(args.actor or get_settings().actor), "access_denied",
                         f"cli:{args.command}", "denied", detail=str(exc))  # fmt: skip
        raise CliError(str(exc)) from exc


def cmd_risk_decide(args: argparse.Namespace) -> int:
    """An analyst's decision on a held order, through the one audited write path."""
    from ml.risk.store import ReviewError, decide
    from ordertower.access import AccessDenied
    from ordertower.audit import AuditError
    from ordertower.lake import LakeError

    who = _actor(args, "risk.decide", "risk review decisions")
    try:
        record = decide(who, args.order_id, args.decision, args.note or "")
    except (ReviewError, AccessDenied, AuditError, LakeError) as exc:
        raise CliError(str(exc)) from exc
    print(
        f"{record['decision']} {record['order_id']} by {record['reviewer']} at "
        f"{record['decided_at']:%Y-%m-%d %H:%M:%S} UTC (decision {record['decision_id']}); "
        "it becomes a label at the next training"
    )
    return 0


def cmd_risk_fraud_data(args: argparse.Namespace) -> int:
    """The same features and training on the public Fraud_Data set; prints the report."""
    import json

    from ml.risk.fraud_ecommerce import FraudDataError, run_report

    try:
        report = run_report(Path(args.source_dir) if args.source_dir else None)
    except FraudDataError as exc:
        raise CliError(str(exc)) from exc
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(report, indent=1, default=str))
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Route one VRPTW instance (Solomon .txt or VRPLIB .vrp); prints one JSON object."""
    from ml.dispatch.routing import InstanceError, read_instance, solve

    if not 0 < args.time_limit < float("inf"):
        raise CliError(
            f"--time-limit must be a positive number of seconds, got {args.time_limit:g}"
        )
    try:
        instance = read_instance(Path(args.instance))
    except InstanceError as exc:
        raise CliError(str(exc)) from exc
    solution = solve(instance, engine=args.engine, time_limit=args.time_limit, seed=args.seed)
    print(json.dumps(solution.as_dict()))
    return 0


def cmd_crm_serve(args: argparse.Namespace) -> int:
    """Run the local CRM receiver (a stand-in for a real CRM's inbound-message API)."""
    import contextlib

    from ordertower.settings import get_settings
    from pipelines.crm.receiver import CrmReceiver, ReceiverError

    db = Path(args.db) if args.db else get_settings().home / "crm" / "receiver.sqlite"
    try:
        crm = CrmReceiver(db, host=args.host, port=args.port)
    except ReceiverError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"local CRM listening on {crm.url} (messages kept in {db}; requests need the bearer "
        f"token in {get_settings().crm_token_file}; Ctrl-C to stop)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        crm.serve_forever()
    return 0


def cmd_crm_send(args: argparse.Namespace) -> int:
    """Deliver the CRM outbox: one pass (``--once``) or until Ctrl-C / SIGTERM."""
    import logging
    import signal
    import threading
    from urllib.parse import urlparse

    import duckdb

    from ordertower.lake import LakeError, connect
    from ordertower.redact import redact
    from ordertower.settings import get_settings
    from pipelines.crm.outbox import Sender, SendStats, run_sender

    url = args.url or get_settings().crm_url
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise CliError(
            f"not an http(s) URL for the CRM: {redact(url)!r} (--url or ORDERTOWER_CRM_URL)"
        )
    try:
        connect(read_only=True).close()  # a sender never creates a lake
    except LakeError as exc:
        raise CliError(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sender = Sender(url=url)
    if args.once:
        totals = SendStats()
        try:
            con = connect()
            try:
                while True:  # every due message, a batch at a time
                    stats = sender.send_pending(con, batch=args.batch)
                    totals.add(stats)
                    if stats.due < args.batch:
                        break
            finally:
                con.close()
        except (duckdb.Error, LakeError) as exc:
            raise CliError(f"the lake is unavailable: {str(exc).splitlines()[0]}") from exc
    else:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"delivering the CRM outbox to {redact(url)} every {args.interval:g} s (Ctrl-C to stop)"
        )
        totals = run_sender(stop, interval=args.interval, batch=args.batch, sender=sender)
    print(json.dumps(totals.as_dict(), indent=2))
    return 0


def cmd_crm_status(args: argparse.Namespace) -> int:
    """Messages per delivery status, and the dead ones with their last error."""
    from ordertower.lake import LakeError, connect, table_exists
    from pipelines.crm.outbox import OUTBOX_TABLE, outbox_counts

    try:
        con = connect(read_only=True)
    except LakeError as exc:
        raise CliError(str(exc)) from exc
    try:
        counts = outbox_counts(con)
        dead = []
        if table_exists(con, "ops", "crm_outbox"):
            dead = con.execute(
                f"select message_id, alert_id, attempts, last_error from {OUTBOX_TABLE} "
                "where status = 'dead' order by created_at desc limit 20"
            ).fetchall()
    finally:
        con.close()
    print(", ".join(f"{status}: {n:,}" for status, n in counts.items()))
    for message_id, alert_id, attempts, error in dead:
        print(f"  dead {message_id} (alert {alert_id}) after {attempts} attempt(s): {error}")
    return 0


def cmd_crm_requeue(args: argparse.Namespace) -> int:
    """Give dead messages a fresh set of attempts (after the CRM problem is fixed)."""
    import duckdb

    from ordertower import audit
    from ordertower.lake import LakeError, connect
    from pipelines.crm.outbox import requeue_dead

    who = _actor(args, "crm.operate", "the CRM outbox")
    try:
        connect(read_only=True).close()
    except LakeError as exc:
        raise CliError(str(exc)) from exc

    def requeue(con) -> int:
        n = requeue_dead(con, args.message_ids or None)
        audit.record(con, who, "crm_requeue", target=",".join(args.message_ids) or "(all dead)",
                     before={"status": "dead"}, after={"status": "pending", "messages": n})  # fmt: skip
        return n

    try:
        n = audit.write(requeue)
    except (audit.AuditError, duckdb.Error) as exc:
        raise CliError(f"the lake is unavailable: {str(exc).splitlines()[0]}") from exc
    print(f"{n} dead message(s) pending again (by {who.label})")
    return 0


def cmd_crm_check(args: argparse.Namespace) -> int:
    """Validate the customer-message templates (ml/alerts/messages.yaml)."""
    from ml.alerts.messages import TemplateError, load_templates

    try:
        templates = load_templates(Path(args.path) if args.path else None)
    except TemplateError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"templates valid: {len(templates.languages)} languages ({', '.join(templates.languages)})"
    )
    return 0


def cmd_alerts_quality(args: argparse.Namespace) -> int:
    """Alert precision and recall per rule against the simulated world's truth, before and after
    issue 18 (ml/alerts/baseline_rules.yaml vs ml/alerts/rules.yaml)."""
    from pipelines.stream.quality import run_quality

    world = {k: v for k, v in (("orders", args.orders), ("days", args.days)) if v}
    if args.seed is not None:
        world["seed"] = args.seed
    data = run_quality(Path(args.home) if args.home else None, world, args.batch_size)
    for label in ("before", "after", "before_one_future_event", "after_one_future_event"):
        r = data[label]
        m = r["messages"]
        print(
            f"{label}: clock {r['clock']} (max lead {r['clock_max_lead_hours']} h); "
            f"{m['messages']} messages for {m['orders_truly_affected']} truly affected orders "
            f"({m['messages_per_affected_order']} per order; goal <= 1.1)"
        )
        for rule, q in r["rules"].items():
            print(
                f"  {rule:<20} alerts {q['alerts']:>6}  precision {q.get('precision')}  "
                f"recall {q.get('recall')}  suppressed {q['suppressed']}"
            )
    print(data.get("path", ""))
    return 0


def cmd_access_lint(args: argparse.Namespace) -> int:
    """Validate the roles file (roles, permissions, assignments)."""
    from ordertower.access import RolesFileError, load_policy, roles_file

    path = Path(args.path) if args.path else roles_file()
    try:
        policy = load_policy(path)
    except RolesFileError as exc:
        raise CliError(str(exc)) from exc
    people = len(policy.by_email) + len(policy.by_subject)
    print(
        f"{path}: valid; {len(policy.role_permissions)} roles, {people} identities and "
        f"{len(policy.by_group)} groups assigned"
    )
    return 0


def cmd_access_whois(args: argparse.Namespace) -> int:
    """The roles and permissions the roles file gives an identity."""
    from ordertower.access import RolesFileError, named

    try:
        who = named(args.identity)
    except RolesFileError as exc:
        raise CliError(str(exc)) from exc
    print(f"{who.label}: roles {who.roles_text}; may {', '.join(sorted(who.permissions)) or '-'}")
    return 0


def cmd_auth_provider(args: argparse.Namespace) -> int:
    """Run the local OpenID Connect provider (development and demo sign-in) in the foreground."""
    import subprocess

    from ordertower import devauth

    command = devauth.provider_command(args.port, args.host)
    print(
        f"local OpenID Connect provider on http://{args.host}:{args.port} with the demo "
        f"identities: {', '.join(str(u['email']) for u in devauth.DEMO_USERS.values())}",
        flush=True,
    )
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def cmd_auth_local_secrets(args: argparse.Namespace) -> int:
    """Write the Streamlit secrets that point st.login at the local provider; print the path."""
    from ordertower import devauth

    path = devauth.write_secrets(
        Path(args.out) if args.out else devauth.local_secrets_path(), args.app_url, args.issuer
    )
    print(path)
    return 0


# ------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordertower", description="Order Control Tower command line."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a seeded, simulated world to the landing zone")
    p.add_argument("--orders", type=_positive, default=200_000)
    p.add_argument("--days", type=_positive, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--start", type=_date, default=date(2026, 8, 20), help="first day (YYYY-MM-DD)")
    p.add_argument("--out", help="landing zone folder (default: $ORDERTOWER_HOME/landing)")
    p.add_argument(
        "--dirty-rate",
        type=float,
        default=0.0005,
        help="share of records given real-world defects (0 for clean files)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--live",
        action="store_true",
        help="publish the world's carrier events to the message broker in (accelerated) real "
        "time; an existing landing zone is replayed, otherwise the world is simulated first",
    )
    p.add_argument("--live-from", type=_date, help="first day to publish (default: the last day)")
    p.add_argument("--live-to", type=_date, help="last day to publish (default: the last day)")
    p.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="world seconds per wall second when publishing (default 3600: an hour a second)",
    )
    p.add_argument("--rate", type=float, help="publish at a fixed rate (messages/s) instead")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "stream",
        help="consume live carrier events from the broker: store, ETAs, alerts, CRM messages",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=5000,
        help="most messages per micro-batch (a batch takes what arrived while the last one landed)",
    )
    p.add_argument(
        "--max-wait", type=float, default=0.5, help="seconds a micro-batch waits to fill"
    )
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without a message")
    p.add_argument("--max-messages", type=_positive, help="stop after this many messages")
    p.add_argument("--no-eta", action="store_true", help="do not predict ETAs")
    p.add_argument("--no-alerts", action="store_true", help="do not run the exception rules")
    p.add_argument("--no-live", action="store_true", help="only store events (no ETA, alerts, CRM)")
    p.add_argument(
        "--no-crm-sender", action="store_true", help="fill the outbox but do not send it"
    )
    p.add_argument(
        "--lake-retries",
        type=_positive,
        default=8,
        help="tries of a lake write failing with a transient error (a write conflict, a lost "
        "catalog connection) before the batch is dead-lettered and the stream stops with exit "
        "code 3",
    )
    p.add_argument(
        "--lake-retry-seconds",
        type=float,
        default=60.0,
        help="and at most this many seconds of retries",
    )
    p.add_argument(
        "--lake-lock-seconds",
        type=_positive_seconds,
        default=1800.0,
        help="how long a catalog another writer holds (a materialisation) is waited out, "
        "whatever the number of tries; the broker keeps the messages meanwhile",
    )
    p.add_argument(
        "--heartbeat-every",
        type=float,
        default=10.0,
        help="seconds between beats of the heartbeat file under $ORDERTOWER_HOME/ops/",
    )
    p.add_argument(
        "--lake-heartbeat",
        type=float,
        default=60.0,
        help="seconds between heartbeat rows in ops.stream_heartbeat while no batch commits "
        "(0: at start and stop only)",
    )
    p.add_argument(
        "--requeue-lake-failures",
        action="store_true",
        help="re-publish the messages a permanent lake failure dead-lettered, then exit",
    )
    p.add_argument(
        "--migrate-queue",
        action="store_true",
        help="re-declare the live queue with this version's limits (x-max-length, overflow to "
        "the dead-letter exchange), keeping its messages, then exit; stop consumers first",
    )
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser(
        "live-demo",
        help="the live path end to end: CRM receiver, stream consumer, the last day published, "
        "tracking marts refreshed",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    p.add_argument("--days", type=_positive, default=1, help="the last N days of carrier feeds")
    p.add_argument(
        "--if-broker", action="store_true", help="skip (exit 0) when no broker is reachable"
    )
    p.set_defaults(func=cmd_live_demo)

    p = sub.add_parser(
        "materialize", help="materialise assets in-process (default: all, every landed day)"
    )
    p.add_argument(
        "--select", help="Dagster asset selection, e.g. 'key:raw/orders' or 'group:ingest'"
    )
    p.add_argument("--partition", help="a day (YYYY-MM-DD) or a range START...END")
    p.add_argument(
        "--no-dbt-tests",
        action="store_true",
        help="build the dbt models without their data tests (about half the time; the "
        "platform's own checks still run): a quick re-build the next full run tests",
    )
    p.add_argument(
        "--rebuild-damaged",
        action="store_true",
        help="drop the tables whose data files are damaged (see `ordertower status`) and "
        "rebuild them in this run (raw from the landing zone, marts with dbt)",
    )
    p.add_argument(
        "--recent",
        action="append",
        metavar="GROUP=DAYS",
        help="materialise the daily assets of GROUP over the last DAYS days of the window only "
        "(repeatable; the demo plans the last 30 days' dispatch waves: --recent dispatch=30)",
    )
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser("sql", help="read-only SQL on the lake")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("status", help="what the lake holds: tables, row counts, quarantine")
    p.set_defaults(func=cmd_status)

    contracts = sub.add_parser("contracts", help="lint and diff data contracts").add_subparsers(
        dest="contracts_command", required=True
    )
    p = contracts.add_parser("lint", help="validate contracts (default: data_contracts/)")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=cmd_contracts_lint)
    p = contracts.add_parser(
        "diff", help="classify the changes from OLD to NEW; exit 1 if breaking"
    )
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(func=cmd_contracts_diff)
    p = contracts.add_parser(
        "scaffold", help="write a first ODCS contract for a dbt mart from its model yml"
    )
    p.add_argument("model")
    p.add_argument("--force", action="store_true", help="overwrite an existing contract")
    p.set_defaults(func=cmd_contracts_scaffold)
    p = contracts.add_parser(
        "drift", help="check the marts' ODCS contracts against dbt's model contracts"
    )
    p.set_defaults(func=cmd_contracts_drift)

    p = sub.add_parser(
        "dbt-rules",
        help="dbt Labs' project rules (dbt-project-evaluator's checks) on the dbt project",
    )
    p.add_argument("--manifest", help="a manifest.json to check (default: parse the project)")
    p.add_argument("--json", action="store_true", help="the findings as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="also list excepted findings")
    p.set_defaults(func=cmd_dbt_rules)

    p = sub.add_parser(
        "dbt",
        help="run dbt on the lake's project (e.g. `ordertower dbt docs generate`)",
        prefix_chars="\0",  # everything after `dbt` belongs to dbt
    )
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dbt)

    olist = sub.add_parser(
        "olist", help="the real Olist marketplace extract, a second source system"
    ).add_subparsers(dest="olist_command", required=True)
    p = olist.add_parser(
        "land", help="copy the Olist CSVs, unchanged, to $ORDERTOWER_HOME/landing/olist/"
    )
    p.add_argument(
        "--from",
        dest="source_dir",
        metavar="DIR",
        help="folder of the extract (default: ../shared/datasets/olist/subset_10k_2017 beside the project)",
    )
    p.set_defaults(func=cmd_olist_land)

    risk = sub.add_parser(
        "risk", help="the order risk model: catalogue, review decisions"
    ).add_subparsers(dest="risk_command", required=True)
    p = risk.add_parser("catalogue", help="write the feature catalogue (docs/risk_features.md)")
    p.add_argument("--out", help="write elsewhere")
    p.set_defaults(func=cmd_risk_catalogue)
    p = risk.add_parser("decide", help="record an analyst's approve / reject on a scored order")
    p.add_argument("order_id")
    p.add_argument("decision", choices=["approve", "reject"])
    p.add_argument(
        "--as",
        "--reviewer",
        dest="actor",
        help="who decides: an identity of the roles file holding risk.decide "
        "(default: ORDERTOWER_ACTOR)",
    )
    p.add_argument("--note", help="why")
    p.set_defaults(func=cmd_risk_decide)
    p = risk.add_parser(
        "fraud-data", help="run the feature and training pipeline on the public Fraud_Data set"
    )
    p.add_argument("--from", dest="source_dir", help="folder with fraud_data.csv")
    p.set_defaults(func=cmd_risk_fraud_data)

    crm = sub.add_parser(
        "crm", help="customer messages: the local CRM receiver and the outbox sender"
    ).add_subparsers(dest="crm_command", required=True)
    p = crm.add_parser("serve", help="run the local CRM receiver (stores messages in SQLite)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--db", help="SQLite file (default: $ORDERTOWER_HOME/crm/receiver.sqlite)")
    p.set_defaults(func=cmd_crm_serve)
    p = crm.add_parser("send", help="deliver the outbox to the CRM (ORDERTOWER_CRM_URL)")
    p.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    p.add_argument("--interval", type=_positive_seconds, default=2.0, help="seconds between passes")
    p.add_argument("--batch", type=_positive, default=100, help="messages per lake write")
    p.add_argument("--url", help="the CRM's message endpoint (default: ORDERTOWER_CRM_URL)")
    p.set_defaults(func=cmd_crm_send)
    p = crm.add_parser("status", help="outbox messages per delivery status; the dead ones")
    p.set_defaults(func=cmd_crm_status)
    p = crm.add_parser("requeue", help="give dead messages a fresh set of attempts")
    p.add_argument("message_ids", nargs="*", help="only these (default: every dead message)")
    p.add_argument(
        "--as",
        dest="actor",
        help="who requeues: an identity holding crm.operate (default: ORDERTOWER_ACTOR)",
    )
    p.set_defaults(func=cmd_crm_requeue)
    p = crm.add_parser("check", help="validate the message templates (messages.yaml)")
    p.add_argument("path", nargs="?", help="a templates file (default: the shipped one)")
    p.set_defaults(func=cmd_crm_check)

    alerts = sub.add_parser("alerts", help="the live exception alerts").add_subparsers(
        dest="alerts_command", required=True
    )
    p = alerts.add_parser(
        "quality",
        help="precision and recall per rule against a simulated world's truth, before and after",
    )
    p.add_argument("--home", help="the quality world's home (default: <bench dir>/alerts-quality)")
    p.add_argument("--orders", type=_positive, help="orders in the world (default 2000)")
    p.add_argument("--days", type=_positive, help="days in the world (default 12)")
    p.add_argument("--seed", type=int, help="the world's seed (default 21)")
    p.add_argument("--batch-size", type=_positive, default=500, help="events per micro-batch")
    p.set_defaults(func=cmd_alerts_quality)

    p = sub.add_parser(
        "route", help="route one VRPTW instance (Solomon .txt or VRPLIB .vrp); prints JSON"
    )
    p.add_argument("instance", help="instance file")
    p.add_argument("--engine", choices=("pyvrp", "ortools"), default="pyvrp")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_route)

    access = sub.add_parser("access", help="who may do what: the roles file").add_subparsers(
        dest="access_command", required=True
    )
    p = access.add_parser("lint", help="validate the roles file (default: ORDERTOWER_ROLES_FILE)")
    p.add_argument("path", nargs="?")
    p.set_defaults(func=cmd_access_lint)
    p = access.add_parser("whois", help="the roles and permissions of an e-mail or subject")
    p.add_argument("identity")
    p.set_defaults(func=cmd_access_whois)

    auth = sub.add_parser(
        "auth", help="sign-in on a developer's machine: the local OpenID Connect provider"
    ).add_subparsers(dest="auth_command", required=True)
    p = auth.add_parser("provider", help="run the local OpenID Connect provider (127.0.0.1)")
    p.add_argument("--port", type=int, default=9400)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=cmd_auth_provider)
    p = auth.add_parser(
        "local-secrets", help="write Streamlit secrets for the local provider; prints the path"
    )
    p.add_argument("--app-url", default="http://127.0.0.1:8501")
    p.add_argument("--issuer", default="http://127.0.0.1:9400")
    p.add_argument("--out", help="default: $ORDERTOWER_HOME/secrets/streamlit_secrets.toml")
    p.set_defaults(func=cmd_auth_local_secrets)

    pii = sub.add_parser("pii", help="personal data outside the raw layer").add_subparsers(
        dest="pii_command", required=True
    )
    p = pii.add_parser(
        "scan",
        help="scan the lake, quarantine reasons, Dagster, MLflow, logs and CRM for PII "
        "(exit 1 when found; samples are masked)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_pii_scan)

    lake_cmd = sub.add_parser("lake", help="lake upkeep").add_subparsers(
        dest="lake_command", required=True
    )
    p = lake_cmd.add_parser(
        "maintain",
        help="expire old snapshots, merge small files, delete unreferenced and orphaned files",
    )
    p.add_argument("--mode", choices=("light", "full"), default="full")
    p.add_argument("--dry-run", action="store_true", help="change nothing; list what would go")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_lake_maintain)

    p = sub.add_parser("bench", help="measure simulator and ingestion throughput")
    p.add_argument(
        "--scale",
        type=_positive,
        action="append",
        help="orders per run (repeatable; default 100000 and 1000000)",
    )
    p.add_argument("--days", type=_positive, default=90)
    p.set_defaults(func=cmd_bench)
    return parser


def quiet_library_warnings() -> None:
    """Dagster's notes that an API it uses itself is beta or preview, and MLflow's notes on how
    it packages a model (type hints, CloudPickle, pip's version, its database's creation), say
    nothing to a person running a command; they are shown with ORDERTOWER_LOG_LEVEL=DEBUG.
    MLflow's errors still show."""
    import os
    import warnings

    if os.environ.get("ORDERTOWER_LOG_LEVEL", "").upper() != "DEBUG":
        warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
        warnings.filterwarnings("ignore", message=r"Add type hints to the `predict` method")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # read when mlflow is imported


def main(argv: list[str] | None = None) -> int:
    from ordertower.redact import install_log_redaction, redact
    from ordertower.settings import SettingsError

    install_log_redaction()  # no password of a DSN or URL in any log line of this process
    quiet_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CliError, SettingsError) as exc:
        print(f"ordertower {args.command}: {redact(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # unforeseen: the traceback as Python prints it, without passwords
        import traceback

        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
