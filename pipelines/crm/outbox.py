"""The CRM outbox: customer messages stored in the lake with their alert, then delivered by HTTP.

**Transactional outbox.** The stream consumer inserts a micro-batch's new alerts and calls
:func:`enqueue` inside the same lake transaction, so an alert and its message commit together or
not at all. Nothing is sent inside that transaction: the :class:`Sender` reads the committed
``pending`` rows afterwards and POSTs them, so a CRM outage never holds up (or loses) a batch.

**Delivery guarantee.** The sender POSTs at least once: a crash after the POST and before the
result is recorded sends the message again. Each POST carries ``Idempotency-Key: <message_id>``
(a hash of the alert id) and the CRM treats a key it has seen as already delivered, so the
customer gets exactly one message. Failures are retried with exponential back-off and jitter per
message; after ``max_attempts`` a message is ``dead`` (kept, with its last error, for operations
to look at and :func:`requeue_dead`), never deleted.

``ops.crm_outbox`` (DuckLake has no keys or indexes: uniqueness of ``message_id`` is kept by
:func:`enqueue`'s anti-join):

==================  ==========================================================================
message_id          hash of the alert id; the ``Idempotency-Key``
alert_id            the alert in ``ops.exception_alerts``
customer_id         who the CRM writes to (it knows the customer by id)
order_id            the order the message is about
payload             the JSON text POSTed (see docs/crm.md)
status              ``pending`` | ``sent`` | ``dead``
attempts            POSTs made so far
created_at          when it was enqueued (the alert's commit)
next_attempt_at     when a pending message is due (back-off)
sent_at             when the CRM accepted it
last_status         the last HTTP status (null: no response, e.g. connection refused)
last_error          the last failure, kept after a later success or death
==================  ==========================================================================
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import requests

from ordertower import lake as lake_mod
from ordertower.redact import redact
from ordertower.settings import get_settings
from pipelines.crm.auth import TokenError, crm_token

log = logging.getLogger("ordertower.crm")

OUTBOX_TABLE = "ops.crm_outbox"
OUTBOX_DDL = f"""
create table if not exists {OUTBOX_TABLE} (
    message_id varchar not null,
    alert_id varchar not null,
    customer_id varchar,
    order_id varchar,
    payload varchar not null,
    status varchar not null,
    attempts integer not null,
    created_at timestamptz not null,
    next_attempt_at timestamptz not null,
    sent_at timestamptz,
    last_status integer,
    last_error varchar
)"""
STATUSES = ("pending", "sent", "dead")
USER_AGENT = "ordertower-crm-sender/1"
#: statuses that mean "try again later"; any other 4xx is the request's fault: dead at once
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
OUTCOME_COLUMNS = [
    "message_id",
    "status",
    "next_attempt_at",
    "sent_at",
    "last_status",
    "last_error",
]


def ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(OUTBOX_DDL)


def _utc(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def enqueue(
    con: duckdb.DuckDBPyConnection, messages: pd.DataFrame, now: datetime | None = None
) -> int:
    """Add the messages whose ``message_id`` is not in the outbox yet; returns how many.

    Runs inside the caller's transaction (it never begins or commits one), so the messages
    commit with the alerts that produced them. ``messages``: :func:`compose`'s frame
    (``message_id, alert_id, customer_id, order_id, payload``; other columns are ignored).
    """
    if messages is None or messages.empty:
        return 0
    ensure_outbox(con)
    now = _utc(now)
    frame = (
        messages[["message_id", "alert_id", "customer_id", "order_id", "payload"]]
        .dropna(subset=["message_id", "alert_id", "payload"])
        .drop_duplicates("message_id")
        .astype(object)
    )
    if frame.empty:
        return 0
    con.register("_crm_enqueue", frame)
    try:
        row = con.execute(
            f"""
            insert into {OUTBOX_TABLE}
            select m.message_id, m.alert_id, m.customer_id, m.order_id, m.payload,
                   'pending', 0, ?, ?, null, null, null
            from _crm_enqueue as m
            where m.message_id not in (select message_id from {OUTBOX_TABLE})
            """,
            [now, now],
        ).fetchone()
    finally:
        con.unregister("_crm_enqueue")
    return int(row[0]) if row else 0


def requeue_dead(
    con: duckdb.DuckDBPyConnection,
    message_ids: list[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Give dead messages (all, or these) a fresh set of attempts, due now; returns how many.

    For operations after a CRM problem is fixed. The idempotency key is unchanged, so a message
    that did reach the CRM before it was declared dead is still not delivered twice."""
    ensure_outbox(con)
    now = _utc(now)
    where = "status = 'dead'"
    params: list[Any] = [now]
    if message_ids is not None:
        if not message_ids:
            return 0
        where += " and message_id in (select unnest(?))"
        params.append(list(message_ids))
    row = con.execute(
        f"update {OUTBOX_TABLE} set status = 'pending', attempts = 0, next_attempt_at = ? "
        f"where {where}",
        params,
    ).fetchone()
    return int(row[0]) if row else 0


def outbox_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Messages per status (every status present, 0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    if not lake_mod.table_exists(con, "ops", "crm_outbox"):
        return counts
    for status, n in con.execute(
        f"select status, count(*) from {OUTBOX_TABLE} group by 1"
    ).fetchall():
        counts[status] = int(n)
    return counts


# ------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class RetryPolicy:
    """Per-message retries: the n-th failure waits ``base * 2**(n-1)`` seconds (at most
    ``max_delay_s``), scaled by a random factor in ``[1 - jitter, 1]`` so that messages failed
    by the same outage do not all come back at the same instant."""

    max_attempts: int = 12
    base_delay_s: float = 5.0
    max_delay_s: float = 3600.0
    jitter: float = 0.5
    #: (connect, read) seconds for one POST
    timeout: tuple[float, float] = (3.05, 10.0)

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
        raw = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0))
        return raw * (1.0 - self.jitter * (rng or random).random())


@dataclass(frozen=True)
class PostResult:
    """One POST's outcome."""

    ok: bool
    status: int | None = None
    error: str | None = None
    #: the CRM already had this key (it answered ``{"duplicate": true}``)
    duplicate: bool = False
    #: a 4xx the CRM will never accept: no point retrying
    permanent: bool = False
    #: seconds the CRM asked us to wait (``Retry-After``)
    retry_after: float | None = None


@dataclass
class SendStats:
    due: int = 0
    sent: int = 0
    duplicates: int = 0
    retrying: int = 0
    dead: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: SendStats) -> None:
        for name in ("due", "sent", "duplicates", "retrying", "dead"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


class _Bearer(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; as the request's ``auth``, it also keeps requests from
    sending credentials written into the URL instead."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare for APIs, and the back-off covers it
        return None


class Sender:
    """POSTs due outbox messages to the CRM and records the outcomes, one batch at a time.

    A batch: one read of the due ``pending`` rows, the POSTs (no lake transaction is open while
    waiting on the network), then one lake transaction that records every outcome (DuckLake
    updates are expensive, so they are batched). The update only touches rows still
    ``pending``, so two senders never undo each other's results (they would only POST twice,
    which the idempotency key absorbs).

    Every POST presents the bearer token (``token``, default :func:`~pipelines.crm.auth.crm_token`,
    read at the first POST). A missing token file fails the POST like an outage would (the
    message stays pending, with the reason as its last error), so fixing the file resumes
    delivery. Errors recorded or logged never carry the URL's password.
    """

    def __init__(
        self,
        url: str | None = None,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url or get_settings().crm_url
        self._token = token
        self.session = session or requests.Session()
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        #: outcomes POSTed but not recorded yet (the lake write failed): recorded first next time
        self._unrecorded: pd.DataFrame | None = None

    def _auth(self) -> _Bearer:
        if self._token is None:
            self._token = crm_token()
        return _Bearer(self._token)

    def post(self, message_id: str, payload: str) -> PostResult:
        """POST one message with its idempotency key; never raises for HTTP or network errors."""
        try:
            auth = self._auth()
        except TokenError as exc:
            return PostResult(False, None, f"TokenError: {exc}"[:500])
        try:
            response = self.session.post(
                self.url,
                data=payload.encode("utf-8"),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Idempotency-Key": message_id,
                    "User-Agent": USER_AGENT,
                },
                timeout=self.policy.timeout,
                auth=auth,
            )
        except requests.RequestException as exc:
            return PostResult(False, None, redact(f"{type(exc).__name__}: {exc}")[:500])
        status = response.status_code
        if 200 <= status < 300:
            duplicate = False
            with contextlib.suppress(ValueError, AttributeError):
                duplicate = bool(response.json().get("duplicate"))
            return PostResult(True, status, duplicate=duplicate)
        error = redact(f"HTTP {status}: {response.text.strip()[:300]}")
        permanent = 400 <= status < 500 and status not in RETRYABLE_STATUSES
        return PostResult(
            False, status, error, permanent=permanent, retry_after=_retry_after(response)
        )

    def due(self, con: duckdb.DuckDBPyConnection, batch: int, now: datetime) -> pd.DataFrame:
        return con.execute(
            f"""
            select message_id, payload, attempts from {OUTBOX_TABLE}
            where status = 'pending' and next_attempt_at <= ?
            order by next_attempt_at, created_at, message_id
            limit ?
            """,
            [now, int(batch)],
        ).df()

    def outcome(self, attempts: int, result: PostResult, now: datetime) -> dict[str, Any]:
        """The row recorded for one attempt (``attempts``: the attempts before this one)."""
        tried = attempts + 1
        if result.ok:
            status, next_at = "sent", now
        elif result.permanent or tried >= self.policy.max_attempts:
            status, next_at = "dead", now
        else:
            wait = self.policy.delay(tried, self.rng)
            if result.retry_after is not None:
                wait = max(wait, min(result.retry_after, self.policy.max_delay_s))
            status, next_at = "pending", now + timedelta(seconds=wait)
        return {
            "status": status,
            "next_attempt_at": next_at,
            "sent_at": now if result.ok else None,
            "last_status": result.status,
            "last_error": result.error,
        }

    def record(self, con: duckdb.DuckDBPyConnection, outcomes: pd.DataFrame) -> None:
        """Record a batch's outcomes in one lake transaction (rows no longer pending are left
        alone: another sender got there first)."""
        con.register("_crm_outcomes", outcomes)
        try:
            con.execute("begin transaction")
            try:
                con.execute(
                    f"""
                    update {OUTBOX_TABLE} as o set
                        status = case
                            when r.status = 'pending' and o.attempts + 1 >= ? then 'dead'
                            else r.status end,
                        attempts = o.attempts + 1,
                        next_attempt_at = r.next_attempt_at,
                        sent_at = r.sent_at,
                        last_status = r.last_status,
                        last_error = coalesce(r.last_error, o.last_error)
                    from _crm_outcomes as r
                    where o.message_id = r.message_id and o.status = 'pending'
                    """,
                    [self.policy.max_attempts],
                )
                con.execute("commit")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("rollback")
                raise
        finally:
            con.unregister("_crm_outcomes")

    def flush(self, con: duckdb.DuckDBPyConnection) -> None:
        """Record the outcomes a failed lake write left behind (if any)."""
        if self._unrecorded is not None:
            self.record(con, self._unrecorded)
            self._unrecorded = None

    def send_pending(
        self,
        con: duckdb.DuckDBPyConnection,
        batch: int = 100,
        now: datetime | None = None,
        stop: threading.Event | None = None,
        lock: AbstractContextManager | None = None,
    ) -> SendStats:
        """Deliver one batch of due messages; returns what happened.

        ``now`` decides which messages are due and stamps the outcomes (tests move it to step
        through the back-off). ``stop`` ends the batch early (what was POSTed is recorded).
        ``lock`` is held while the lake is read or written, never during the POSTs: with the
        SQLite catalog, two transactions of one process that overlap fail each other, so a
        sender inside the stream process shares the stream's lake lock.

        If recording fails (the catalog locked, a conflict), the error is raised and the
        outcomes are kept: the next call records them first, on whatever connection it gets.
        """
        started = time.monotonic()
        now = _utc(now)
        stats = SendStats()
        lock = lock or contextlib.nullcontext()
        with lock:
            self.flush(con)
            ensure_outbox(con)
            due = self.due(con, batch, now)
        stats.due = len(due)
        rows = []
        for message in due.itertuples(index=False):
            if stop is not None and stop.is_set():
                break
            result = self.post(message.message_id, message.payload)
            row = {"message_id": message.message_id}
            row.update(self.outcome(int(message.attempts), result, now))
            rows.append(row)
            if result.ok:
                stats.sent += 1
                stats.duplicates += result.duplicate
                continue
            key = f"HTTP {result.status}" if result.status else (result.error or "?").split(":")[0]
            stats.errors[key] = stats.errors.get(key, 0) + 1
            if row["status"] == "dead":
                stats.dead += 1
                log.warning(
                    "CRM message %s dead after %d attempt(s): %s",
                    message.message_id,
                    int(message.attempts) + 1,
                    result.error,
                )
            else:
                stats.retrying += 1
        if rows:
            outcomes = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
            outcomes["next_attempt_at"] = pd.to_datetime(outcomes["next_attempt_at"], utc=True)
            outcomes["sent_at"] = pd.to_datetime(outcomes["sent_at"], utc=True)
            outcomes["last_status"] = outcomes["last_status"].astype("Int64")
            try:
                with lock:
                    self.record(con, outcomes)
            except duckdb.Error:
                self._unrecorded = outcomes
                raise
        stats.seconds = time.monotonic() - started
        return stats


def send_pending(
    con: duckdb.DuckDBPyConnection,
    session: requests.Session | None = None,
    url: str | None = None,
    batch: int = 100,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> SendStats:
    """One batch with a :class:`Sender` built from these arguments (``url``: the settings')."""
    return Sender(url=url, session=session, policy=policy).send_pending(con, batch=batch, now=now)


def run_sender(
    stop_event: threading.Event,
    interval: float = 2.0,
    url: str | None = None,
    batch: int = 100,
    policy: RetryPolicy | None = None,
    lock: AbstractContextManager | None = None,
    sender: Sender | None = None,
    wake: threading.Event | None = None,
) -> SendStats:
    """Deliver the outbox until ``stop_event`` is set (for a background thread or the CLI).

    ``wake``: set by the process that fills the outbox after each commit that added messages,
    so they go out at once instead of at the next poll (``interval`` remains the fallback for
    retries that come due).

    Opens its own lake connection (a DuckDB connection belongs to one thread). A full batch is
    followed at once by the next; otherwise it waits ``interval`` seconds. A lake error (the
    catalog locked, a conflict) never ends the loop: the connection is closed, opened again
    after a back-off, and the outcomes not yet recorded are recorded first. ``lock``: the
    process's lake-writer lock when the sender runs inside another lake writer's process (see
    :meth:`Sender.send_pending`). Returns the totals."""
    sender = sender or Sender(url=url, policy=policy)
    totals = SendStats()
    con: duckdb.DuckDBPyConnection | None = None
    delay = interval
    log.info("CRM sender delivering %s to %s", OUTBOX_TABLE, redact(sender.url))
    try:
        while not stop_event.is_set():
            try:
                if con is None:
                    with lock or contextlib.nullcontext():  # attaching reads the catalog too
                        con = lake_mod.connect()
                stats = sender.send_pending(con, batch=batch, stop=stop_event, lock=lock)
            except (duckdb.Error, lake_mod.LakeError) as exc:
                log.warning(
                    "CRM sender: lake unavailable (%s); retrying in %.1fs", redact(exc), delay
                )
                # a failed DuckLake commit can leave the connection holding the catalog's lock
                if con is not None:
                    with contextlib.suppress(duckdb.Error):
                        con.close()
                    con = None
                stop_event.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = interval
            totals.add(stats)
            if stats.due:
                log.info("CRM sender: %s", json.dumps(stats.as_dict()))
            if stats.due < batch:
                if wake is not None:
                    wake.wait(interval)
                    wake.clear()
                else:
                    stop_event.wait(interval)
    finally:
        if sender._unrecorded is not None:  # one last try, so the next start re-POSTs less
            with (
                contextlib.suppress(duckdb.Error, lake_mod.LakeError),
                lock or contextlib.nullcontext(),
            ):
                con = con or lake_mod.connect()
                sender.flush(con)
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()
    return totals
