"""Fault suite of the live stream on a real broker and a real DuckLake (issue 18, items 2 and 7).

* lake errors are classified (real DuckDB / OS errors): transient, permanent, unknown;
* a catalog locked by another process is retried and the batch lands (no dead letter);
* the lake's file system full (a size-limited tmpfs, or RLIMIT_FSIZE where mounting is not
  allowed): ``ordertower stream`` dead-letters the batch with the failure as its reason, records
  the failure (in the local file, since the lake cannot take it), exits 3, and the Dagster
  sensor fails the asset check; after freeing space and re-publishing the dead letters every
  event is stored exactly once and the check passes again;
* the data path alone full (the catalog elsewhere): the inlined micro-batches land, the
  compaction fails, is recorded and flagged, and the stream goes on;
* ``ordertower stream`` killed with SIGKILL inside a batch's transaction, and at random points
  under load (several seeds): after a restart every event is stored exactly once;
* the broker restarted mid-stream (``rabbitmqctl stop_app`` / ``start_app`` on a private
  RabbitMQ node, so the shared broker is never touched; the TCP proxy cut where no node can be
  started): nothing lost, nothing stored twice;
* the health sensor flags a dead consumer (``build_sensor_context`` on a real lake).

Tests marked ``service`` need RabbitMQ; the long ones are ``slow``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pika
import pytest
from broker_support import Proxy, fresh_topology, require_broker

from ordertower import lake
from pipelines.defs.resources import LakeResource
from pipelines.defs.stream import health as health_defs
from pipelines.stream import health
from pipelines.stream.broker import Topology, connect
from pipelines.stream.consumer import StreamConsumer, requeue_lake_failures
from pipelines.stream.land import ensure_stream_tables
from pipelines.stream.publish import LiveMessage, publish
from tests.shared_worlds import catalog_held

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).with_name("stream_fault_helper.py")


# ---------------------------------------------------------------------------------- helpers


def _messages(n: int, prefix: str = "e") -> list[LiveMessage]:
    """``n`` valid, distinct parcel-webhook events (swiftparcel), in event-time order."""
    out = []
    for i in range(n):
        body = json.dumps(
            {
                "msg_id": f"{prefix}{i:06d}",
                "event": "tracking_update",
                "carrier": "swiftparcel",
                "tracking_number": f"SP{i % 97:05d}",
                "checkpoint": {
                    "tag": "InTransit",
                    "subtag": "InTransit_001",
                    "checkpoint_time": f"2026-09-01T{10 + i % 12:02d}:{i % 60:02d}:00+02:00",
                    "message": "In transit",
                    "location": {"city": "Lyon", "country_iso2": "FR", "lat": 45.76, "lon": 4.84},
                },
            }
        ).encode()
        out.append(LiveMessage(float(i), "swiftparcel", "parcel_webhook_json", body))
    return out


def _keys(msgs: list[LiveMessage]) -> set[tuple[str, str]]:
    return {("swiftparcel", json.loads(m.body)["msg_id"]) for m in msgs}


def _stored() -> list[tuple[str, str]]:
    con = lake.connect(read_only=True)
    try:
        if not lake.table_exists(con, "raw", "carrier_events_stream"):
            return []
        return con.execute("select carrier_id, event_id from raw.carrier_events_stream").fetchall()
    finally:
        con.close()


def _batches() -> int:
    try:
        con = lake.connect(read_only=True)
    except lake.LakeError:
        return 0
    try:
        if not lake.table_exists(con, "ops", "stream_batches"):
            return 0
        return con.execute("select count(*) from ops.stream_batches").fetchone()[0]
    finally:
        con.close()


def _assert_exactly_once(expected: set[tuple[str, str]]) -> None:
    keys = _stored()
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert set(keys) == expected, f"{len(expected - set(keys))} events lost"


def _new_lake() -> None:
    con = lake.connect()
    try:
        ensure_stream_tables(con)
    finally:
        con.close()


def _stream_cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "stream", "--no-live", *extra]


def _env(topology: Topology, **more: str) -> dict[str, str]:
    return {**os.environ, "ORDERTOWER_STREAM_PREFIX": topology.prefix, **more}


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the consumer exited ({proc.returncode}) before {what}: {err}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running_heartbeat(pid: int | None = None) -> bool:
    """A consumer (of process ``pid``, when given) reports itself running."""
    return any(
        b["state"] == "running" and (pid is None or b["pid"] == pid)
        for b in health.read_heartbeats(None)
    )


def _peek_dead(topology: Topology, url: str | None = None) -> list[dict]:
    """The dead letters' headers, left in the queue (taken unacknowledged, then returned)."""
    connection = connect(url)
    channel = connection.channel()
    headers = []
    while True:
        method, props, _ = channel.basic_get(topology.dead_queue, auto_ack=False)
        if method is None:
            break
        headers.append(dict(props.headers or {}))
    connection.close()
    return headers


def _sensor(topology: Topology | None, cursor: str | None = None):
    """One evaluation of the health sensor against the real lake (and broker), with the test's
    prefix (the shared broker's default queue may hold another run's messages)."""
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource()}
    )
    prefix = topology.prefix if topology else f"ot-test-none-{os.getpid()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORDERTOWER_STREAM_PREFIX", prefix)
        return health_defs.stream_consumer_health(context)


def _evaluation(result) -> dg.AssetCheckEvaluation:
    assert isinstance(result, dg.SensorResult), result
    (event,) = result.asset_events
    assert event.check_name == health_defs.CHECK_NAME
    return event


# ---------------------------------------------------------------------------- classification


def test_lake_errors_are_classified_transient_or_permanent(lake_writer, tmp_path):
    con = lake_writer
    con.execute("create table ops.t (a integer)")
    errors = {}
    for name, sql in (
        ("binder", "insert into ops.t (b) values (1)"),
        ("catalog", "select * from ops.no_such_table"),
        ("conversion", "insert into ops.t values ('x')"),
    ):
        with pytest.raises(duckdb.Error) as info:
            con.execute(sql)
        errors[name] = info.value
    corrupt = tmp_path / "part.parquet"
    corrupt.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(duckdb.Error) as info:
        con.execute(f"select * from read_parquet('{corrupt}')")
    errors["corrupt"] = info.value
    paths = [str(tmp_path)]  # plenty of space: no disk-full guess from the file system
    assert {k: health.classify(e, paths).kind for k, e in errors.items()} == {
        "binder": "schema_mismatch",
        "catalog": "schema_mismatch",
        "conversion": "schema_mismatch",
        "corrupt": "corrupt_file",
    }
    assert all(health.classify(e, paths).failure_class == "permanent" for e in errors.values())
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert health.classify(full, paths) == health.Classified("permanent", "disk_full")
    too_big = OSError(errno.EFBIG, os.strerror(errno.EFBIG))
    assert health.classify(too_big, paths).kind == "disk_full"
    # what the SQLite catalog and DuckLake say when another writer holds the catalog
    locked = duckdb.Error(
        "Failed to query most recent snapshot for DuckLake: Failed to prepare query: "
        "database is locked"
    )
    assert health.classify(locked, paths) == health.Classified("transient", "locked")
    wrapped = lake.LakeError("cannot attach the lake (ducklake:sqlite:x): database is locked")
    assert health.classify(wrapped, paths).retryable
    assert health.classify(RuntimeError("surprise"), paths).failure_class == "unknown"
    policy = health.RetryPolicy(first_delay=0.2, max_delay=10)
    assert [policy.delay(a) for a in (1, 2, 3, 8)] == [0.2, 0.4, 0.8, 10]
    # a conflict spends the tries-and-seconds budget; a lock only the (longer) lock budget
    budget = health.RetryPolicy(attempts=3, seconds=60, locked_seconds=900)
    assert budget.spent("conflict", 3, 1.0, 0.8) and not budget.spent("conflict", 2, 1.0, 0.4)
    assert budget.spent("conflict", 2, 59.8, 0.4)
    assert not budget.spent("locked", 40, 600.0, 10) and budget.spent("locked", 40, 895.0, 10)


# ---------------------------------------------------------------------- transient: locked


@pytest.mark.service
@pytest.mark.slow
def test_a_locked_catalog_is_retried_and_the_batch_lands_without_dead_letters(lake_home):
    _new_lake()
    msgs = _messages(60)
    catalog = lake_home / "lake" / "catalog.sqlite"
    with fresh_topology() as topology:
        consumer = StreamConsumer(
            topology,
            batch_size=100,
            max_wait=0.2,
            # a locked catalog outlives the tries and seconds budget (another writer at work)
            retry=health.RetryPolicy(attempts=2, seconds=1.0, locked_seconds=300),
            # no idle heartbeat rows: the lock must meet the batch, not a heartbeat
            heartbeat=health.Heartbeat(topology.queue, lake_every_s=0),
        )
        thread = threading.Thread(target=consumer.run, kwargs={"idle_timeout": 4.0})
        thread.start()
        try:
            _wait_for(_running_heartbeat, 60, "the consumer to start")
            # another process holds the catalog's write lock until the consumer has retried
            # (SQLite's busy timeout makes each lake statement wait a few seconds first)
            with catalog_held(catalog):
                publish(msgs, topology)
                # a second retry is past attempts=2: only the lock budget allows it
                _wait_for(lambda: consumer.stats.lake_retries >= 2, 300, "two retries")
                assert consumer.stats.batches == 0  # nothing landed while locked
        finally:
            thread.join(timeout=120)
        assert not thread.is_alive()
        assert consumer.failure is None
        assert consumer.stats.lake_retries >= 2
        assert _peek_dead(topology) == []
    _assert_exactly_once(_keys(msgs))
    assert health.read_failures(None) == []


# ----------------------------------------------------------------------- permanent: disk full


@contextlib.contextmanager
def _small_filesystem(path: Path, size_mb: int) -> Iterator[str]:
    """A size-limited tmpfs at ``path`` ("tmpfs"), or nothing ("rlimit": the caller limits the
    consumer's file size instead) where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
    )
    try:
        yield "tmpfs" if mounted.returncode == 0 else "rlimit"
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return filler


@pytest.mark.service
@pytest.mark.slow
def test_a_full_lake_disk_dead_letters_the_batch_records_it_exits_3_and_recovers(lake_home):
    lake_dir = lake_home / "lake"
    with _small_filesystem(lake_dir, 48) as how, fresh_topology() as topology:
        print(f"the lake's file system is full by: {how}")
        _new_lake()
        msgs = _messages(40)
        limit_fsize = None
        if how == "rlimit":  # no mount here: the consumer may not grow any file past its size
            catalog = lake_dir / "catalog.sqlite"
            limit = catalog.stat().st_size + 4096

            def limit_fsize():
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        proc = subprocess.Popen(
            _stream_cmd("--batch-size", "100", "--max-wait", "0.3", "--lake-retries", "3"),
            env=_env(topology),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit_fsize,
        )
        try:
            _wait_for(_running_heartbeat, 90, "the consumer to start", proc)
            filler = _fill(lake_dir) if how == "tmpfs" else None
            publish(msgs, topology)
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == health.EXIT_LAKE_FAILURE, err[-3000:]
        assert "disk_full" in err and "Traceback" not in err
        stats = json.loads(out[out.index("{") :])
        assert stats["dead_lettered"] == 40 and stats["failure"].startswith("disk_full")
        # every message of the batch is in the dead-letter queue, the failure as its reason
        dead = _peek_dead(topology)
        assert len(dead) == 40
        assert {h["x-failure-kind"] for h in dead} == {"disk_full"}
        assert all("disk_full" in h["x-reason"] and h["carrier_id"] for h in dead)
        # recorded: the lake could not take it, so in the local file the sensor also reads
        (failure,) = health.read_failures(None)
        assert (failure["kind"], failure["stage"], failure["messages"]) == ("disk_full", "land", 40)
        assert health.failures_file().exists()
        failed = _evaluation(_sensor(topology))
        assert not failed.passed and "permanent lake failure" in failed.description

        # the operator frees space, re-publishes the dead letters and restarts the stream
        if filler is not None:
            filler.unlink()
        # the failed batch committed nothing (read once there is room: a catalog in WAL mode
        # needs a few kilobytes of shared memory file to be read at all)
        assert _stored() == []
        assert requeue_lake_failures(topology) == 40
        assert _peek_dead(topology) == []
        again = subprocess.run(
            _stream_cmd("--batch-size", "100", "--max-wait", "0.3", "--idle-exit", "3"),
            env=_env(topology),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        _assert_exactly_once(_keys(msgs))
        recovered = _evaluation(
            _sensor(topology, cursor=json.dumps({"signature": "x", "reported_at": 0}))
        )
        assert recovered.passed, recovered.description


# ------------------------------------------------------------------------- the heartbeat


@pytest.mark.service
@pytest.mark.slow
def test_the_health_sensor_flags_a_dead_consumer_and_passes_a_clean_stop(lake_home, monkeypatch):
    _new_lake()
    assert isinstance(_sensor(None), dg.SkipReason)  # no consumer ever ran here: nothing to say
    with fresh_topology() as topology:
        publish(_messages(30), topology)
        done = subprocess.run(
            _stream_cmd("--max-wait", "0.2", "--idle-exit", "1"),
            env=_env(topology),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        clean = _evaluation(_sensor(topology))
        assert clean.passed, clean.description  # stopped cleanly, nothing waiting

        proc = subprocess.Popen(
            _stream_cmd("--max-wait", "0.2", "--heartbeat-every", "0.5"),
            env=_env(topology),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(lambda: _running_heartbeat(proc.pid), 90, "the consumer to start", proc)
        monkeypatch.setattr(health_defs, "STALE_AFTER_S", 3)  # instead of waiting 90 s
        assert _evaluation(_sensor(topology)).passed  # beating
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        publish(_messages(5, prefix="late"), topology)  # and messages wait for it
        time.sleep(4)
        dead = _evaluation(_sensor(topology))
        assert not dead.passed
        assert "dead or missing" in dead.description and "5 messages waiting" in dead.description
        # unchanged on the next look: no new evaluation (the cursor remembers)
        first = _sensor(topology)
        second = _sensor(topology, cursor=first.cursor)
        assert isinstance(second, dg.SkipReason) and "dead or missing" in str(second.skip_message)


# ----------------------------------------------------------------------- SIGKILL mid-commit


@pytest.mark.service
@pytest.mark.slow
def test_sigkill_inside_the_transaction_and_at_random_points_stores_every_event_once(
    lake_home, tmp_path
):
    _new_lake()
    msgs = _messages(1500)
    expected = _keys(msgs)
    with fresh_topology() as topology:
        publish(msgs, topology)
        env = _env(topology)
        args = ["stream", "--no-live", "--batch-size", "100", "--max-wait", "0.2"]
        # 1. inside the transaction: the batch's rows are written, the commit has not happened
        marker = tmp_path / "in-transaction"
        blocked = subprocess.Popen(
            [sys.executable, str(HELPER), "--block-at", "3", "--marker", str(marker), "--", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(marker.exists, 120, "the third batch's transaction", blocked)
        blocked.send_signal(signal.SIGKILL)
        blocked.wait(timeout=30)
        assert _batches() == 2  # two batches committed, the third was killed before its commit
        assert 0 < len(_stored()) <= 200
        # 2. at random points under load, three seeds
        for seed in (1, 2, 3):
            delay = random.Random(seed).uniform(0.5, 3.0)
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_for(lambda p=proc.pid: _running_heartbeat(p), 90, "the consumer to start")
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        final = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args, "--idle-exit", "4"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert final.returncode == 0, final.stderr[-3000:]
        assert _peek_dead(topology) == []
    _assert_exactly_once(expected)


# ------------------------------------------------------------------------ broker restarted

RESTART_LOCK = Path(tempfile.gettempdir()) / "ordertower-broker-restart.lock"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _private_rabbitmq() -> Iterator[tuple[str, str] | None]:
    """A RabbitMQ node of its own (its port, data and node name), so restarting it disturbs
    no other test or helper sharing the machine's broker; None when none can be started."""
    server = shutil.which("rabbitmq-server")
    ctl = shutil.which("rabbitmqctl")
    if not (server and ctl):
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="ot-rmq-"))
    port, dist = _free_port(), _free_port()
    node = f"ot{os.getpid()}x{port}@localhost"
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text("loopback_users = none\n")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
    }
    with contextlib.suppress(KeyError, OSError):
        shutil.chown(base, "rabbitmq", "rabbitmq")  # the server drops to the rabbitmq user
    proc = subprocess.Popen(
        [server],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # await_startup fails at once while the node is not yet registered
            up = subprocess.run(
                [ctl, "-n", node, "await_startup", "-t", "10"],
                env=env,
                capture_output=True,
                timeout=60,
            )
            if up.returncode == 0 or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(1)
        if up.returncode != 0:
            print(f"the private RabbitMQ node did not start: {up.stderr.decode()[-500:]}")
            yield None
            return
        yield node, f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    finally:
        subprocess.run([ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.service
@pytest.mark.slow
def test_the_broker_restarted_mid_stream_loses_and_duplicates_nothing(lake_home):
    require_broker()
    _new_lake()
    first, second = _messages(1200), _messages(400, prefix="after")
    RESTART_LOCK.touch()
    with open(RESTART_LOCK) as lock, _private_rabbitmq() as node:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one broker restart at a time on this machine
        proxy = None
        if node is None:  # no private node here: cut the connection through a proxy instead
            print("no private RabbitMQ node could be started: the broker is cut by a TCP proxy")
            params = pika.URLParameters(
                os.environ.get("ORDERTOWER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
            )
            proxy = Proxy((params.host, params.port))
            url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        else:
            print(f"restarting the private RabbitMQ node {node[0]}")
            url = node[1]
        topology = Topology(f"ot-restart-{os.getpid()}")
        connection = connect(url)
        topology.declare(connection.channel())
        connection.close()
        publish(first, topology, url=url)
        proc = subprocess.Popen(
            _stream_cmd("--batch-size", "100", "--max-wait", "0.2"),
            env=_env(topology, ORDERTOWER_BROKER_URL=url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: _batches() >= 3, 300, "three batches", proc)
            if node is not None:
                ctl = ["rabbitmqctl", "-n", node[0]]
                subprocess.run([*ctl, "stop_app"], check=True, capture_output=True, timeout=60)
                time.sleep(1)
                subprocess.run([*ctl, "start_app"], check=True, capture_output=True, timeout=60)
            else:
                proxy.cut()
            publish(second, topology, url=url)
            expected = _keys(first) | _keys(second)
            _wait_for(lambda: len(_stored()) >= len(expected), 240, "every event", proc)
            time.sleep(1.5)  # a redelivery in flight would land now, as a duplicate if at all
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proxy is not None:
                proxy.close()
                connection = connect()  # the shared broker: remove this test's topology
                topology.delete(connection.channel())
                connection.close()
        assert proc.returncode == 0, err[-3000:]
        stats = json.loads(out[out.index("{") :])
        assert stats["reconnects"] >= 1 and stats["dead_lettered"] == 0
        _assert_exactly_once(expected)
        assert stats["duplicates"] + stats["landed"] == stats["received"]


@pytest.mark.service
@pytest.mark.slow
def test_a_full_data_path_fails_only_compaction_events_stay_in_the_catalog_and_it_is_flagged(
    lake_home, monkeypatch
):
    """The data path alone full (the catalog elsewhere): micro-batches are inlined in the
    catalog, so they land; the compaction that would write them to Parquet fails, is recorded
    (stage ``compact``) and fails the health check, and the stream goes on."""
    data_fs = lake_home / "data_fs"
    with _small_filesystem(data_fs, 8) as how:
        if how != "tmpfs":
            pytest.skip("needs a size-limited tmpfs (mount as root)")
        monkeypatch.setenv("ORDERTOWER_DATA_PATH", str(data_fs / "lake"))
        _new_lake()
        _fill(data_fs)
        msgs = _messages(50)
        with fresh_topology() as topology:
            publish(msgs, topology)
            consumer = StreamConsumer(topology, batch_size=100, max_wait=0.2, compact_every=1)
            stats = consumer.run(idle_timeout=2.0)
        assert consumer.failure is None and stats.dead_lettered == 0
        _assert_exactly_once(_keys(msgs))
        con = lake.connect(read_only=True)
        try:
            failures = health.read_failures(con)
        finally:
            con.close()
        assert {(f["stage"], f["kind"]) for f in failures} == {("compact", "disk_full")}
        assert not health.failures_file().exists()  # the lake took the record
        flagged = _evaluation(_sensor(topology))
        assert not flagged.passed and "compact" in flagged.description
