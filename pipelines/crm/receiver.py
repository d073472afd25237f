"""A small local CRM: receives customer messages over HTTP and keeps them in a SQLite file.

It stands in for a real CRM's inbound-message API in the demo and in tests, and behaves like a
well-made one: every request needs ``Authorization: Bearer <token>`` (the token of
:mod:`pipelines.crm.auth`; anything else is answered ``401`` and never handled); every POST
needs an ``Idempotency-Key``; a key seen before is answered ``200 {"duplicate": true}`` and
stores nothing new, so a sender's retry never makes a second message. Switches simulate an outage (the next N requests answer 503) and a slow CRM (every
response waits), either from Python (:class:`CrmReceiver`) or over HTTP (``POST /admin``).

====================  ==========================================================================
``POST /messages``    a message (JSON). ``201 {"duplicate": false}`` when new,
                      ``200 {"duplicate": true}`` when its key was seen, ``400`` without a key or
                      with a body that is not a JSON object, ``503`` during a simulated outage
``GET /messages``     ``{"count": n, "messages": [...]}`` (``?customer_id=`` filters)
``GET /health``       ``{"ok": true, ...counters}``
``POST /admin``       ``{"fail_next": N, "fail_status": 503, "retry_after_s": 30, "delay_s": 0.5}``
                      (any subset)
any, without the      ``401`` with ``WWW-Authenticate: Bearer``: nothing is returned, stored or
bearer token          changed
====================  ==========================================================================
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pipelines.crm.auth import TokenError, authorised, bearer, crm_token

SCHEMA = """
create table if not exists messages (
    idempotency_key text primary key,
    message_id text,
    customer_id text,
    received_at text not null,
    payload text not null
);
create table if not exists requests (
    received_at text not null,
    idempotency_key text,
    status integer not null,
    duplicate integer not null
);
"""
MAX_BODY = 1_000_000


class ReceiverError(RuntimeError):
    """The receiver cannot start (port in use, database not writable)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, receiver: CrmReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        # a client that gave up (timeout) closes the socket under a slow response: expected
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without TCP_NODELAY each keep-alive reply waits for
    # the client's delayed ACK (about 40 ms)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _authorised(self) -> bool:
        """Every endpoint needs the bearer token; otherwise 401 (the token is never echoed)."""
        if authorised(self.headers.get("Authorization"), self.server.receiver.token):
            return True
        self._reply(
            401,
            {"error": "a bearer token is required (Authorization: Bearer <token>)"},
            {"WWW-Authenticate": 'Bearer realm="ordertower-crm"'},
        )
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        receiver = self.server.receiver
        url = urlparse(self.path)
        if not self._authorised():
            return
        receiver._pause()
        if url.path.rstrip("/") == "/messages":
            customer = parse_qs(url.query).get("customer_id", [None])[0]
            messages = receiver.messages(customer_id=customer)
            self._reply(200, {"count": len(messages), "messages": messages})
        elif url.path.rstrip("/") == "/health":
            self._reply(200, {"ok": True, **receiver.counters()})
        else:
            self._reply(404, {"error": f"no such resource: {url.path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        receiver = self.server.receiver
        path = urlparse(self.path).path.rstrip("/")
        body = self._body()  # read first: the connection is kept alive for the next request
        if not self._authorised():
            if path == "/messages":
                receiver._log(
                    (self.headers.get("Idempotency-Key") or "").strip() or None, 401, False
                )
            return
        if path == "/admin":
            try:
                settings = json.loads(body or b"{}")
                receiver.configure(**settings)
            except (ValueError, TypeError) as exc:
                self._reply(400, {"error": f"bad admin request: {exc}"})
                return
            self._reply(200, {"ok": True, **receiver.counters()})
            return
        if path != "/messages":
            self._reply(404, {"error": f"no such resource: {path}"})
            return
        receiver._pause()
        key = (self.headers.get("Idempotency-Key") or "").strip()
        failing, retry_after = receiver._take_failure()
        if failing:
            receiver._log(key or None, failing, False)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after else None
            self._reply(failing, {"error": "simulated outage"}, headers)
            return
        if not key:
            receiver._log(None, 400, False)
            self._reply(400, {"error": "an Idempotency-Key header is required"})
            return
        try:
            message = json.loads(body.decode("utf-8"))
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            receiver._log(key, 400, False)
            self._reply(400, {"error": f"the body must be a JSON object: {exc}"})
            return
        stored = receiver.store(key, message, body.decode("utf-8"))
        status = 201 if stored else 200
        receiver._log(key, status, not stored)
        self._reply(status, {"duplicate": not stored, "idempotency_key": key})


class CrmReceiver:
    """The local CRM on ``127.0.0.1:port`` (``port=0``: a free one), storing into ``db_path``.

    Use as a context manager (``with CrmReceiver(path) as crm: ... crm.url``) or
    :meth:`start` / :meth:`stop`; :meth:`serve_forever` runs it in the calling thread.
    ``token``: the bearer token every request must present (default: the settings' token file,
    created on first use, so a :class:`~pipelines.crm.outbox.Sender` of the same
    ``ORDERTOWER_HOME`` is let in). It listens on 127.0.0.1 unless ``host`` says otherwise."""

    def __init__(
        self,
        db_path: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.host = host
        try:
            self.token = token if token is not None else crm_token()
        except TokenError as exc:
            raise ReceiverError(str(exc)) from exc
        self._lock = threading.Lock()
        self._fail_next = 0
        self._fail_status = 503
        self._delay_s = 0.0
        self._retry_after_s: float | None = None
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.db_path, check_same_thread=False)
            # durable enough for a stand-in CRM, and no fsync per message
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = normal")
            self._db.executescript(SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ReceiverError(
                f"cannot open the receiver's database {self.db_path}: {exc}"
            ) from exc
        try:
            self._server = _Server((host, port), self)
        except OSError as exc:
            self._db.close()
            raise ReceiverError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Where messages are POSTed (what ``ORDERTOWER_CRM_URL`` should say)."""
        return f"{self.base_url}/messages"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header a client presents (tests and tools that call the receiver directly)."""
        return bearer(self.token)

    def start(self) -> CrmReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"crm-receiver-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self.close()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._server.server_close()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> CrmReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------- switches

    def configure(
        self,
        fail_next: int | None = None,
        fail_status: int | None = None,
        delay_s: float | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """Simulate trouble: the next ``fail_next`` POSTs answer ``fail_status`` (503), with a
        ``Retry-After: retry_after_s`` header when given (0: none); every request waits
        ``delay_s`` seconds before it is handled."""
        with self._lock:
            if fail_next is not None:
                self._fail_next = max(0, int(fail_next))
            if fail_status is not None:
                if not 400 <= int(fail_status) <= 599:
                    raise ValueError(f"fail_status must be an HTTP error status, not {fail_status}")
                self._fail_status = int(fail_status)
            if delay_s is not None:
                self._delay_s = max(0.0, float(delay_s))
            if retry_after_s is not None:
                self._retry_after_s = float(retry_after_s) or None

    def fail_next(self, n: int, status: int = 503) -> None:
        self.configure(fail_next=n, fail_status=status)

    def slow(self, seconds: float) -> None:
        self.configure(delay_s=seconds)

    def _take_failure(self) -> tuple[int, float | None]:
        with self._lock:
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status, self._retry_after_s
            return 0, None

    def _pause(self) -> None:
        with self._lock:
            delay = self._delay_s
        if delay:
            time.sleep(delay)

    # ----------------------------------------------------------------------------- storage

    def store(self, key: str, message: dict[str, Any], text: str) -> bool:
        """Keep a message under its key; False when the key was already there."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            cur = self._db.execute(
                "insert or ignore into messages values (?, ?, ?, ?, ?)",
                (key, message.get("message_id"), message.get("customer_id"), now, text),
            )
            self._db.commit()
            return cur.rowcount == 1

    def _log(self, key: str | None, status: int, duplicate: bool) -> None:
        with self._lock:
            self._db.execute(
                "insert into requests values (?, ?, ?, ?)",
                (datetime.now(UTC).isoformat(), key, status, int(duplicate)),
            )
            self._db.commit()

    def messages(self, customer_id: str | None = None) -> list[dict[str, Any]]:
        """What the CRM holds, oldest first: each stored payload with its key and arrival."""
        sql = "select idempotency_key, received_at, payload from messages"
        params: tuple = ()
        if customer_id:
            sql += " where customer_id = ?"
            params = (customer_id,)
        with self._lock:
            rows = self._db.execute(sql + " order by rowid", params).fetchall()
        return [
            {"idempotency_key": k, "received_at": at, "message": json.loads(p)} for k, at, p in rows
        ]

    def counters(self) -> dict[str, int]:
        """Messages stored, POSTs received, duplicates answered, failures simulated."""
        with self._lock:
            stored = self._db.execute("select count(*) from messages").fetchone()[0]
            posts, dups, failed = self._db.execute(
                "select count(*), coalesce(sum(duplicate), 0), "
                "coalesce(sum(status >= 400), 0) from requests"
            ).fetchone()
        return {"stored": stored, "posts": posts, "duplicates": dups, "failed": failed}

    def posts_for(self, key: str) -> int:
        """How many POSTs carried this idempotency key (failed ones included)."""
        with self._lock:
            return self._db.execute(
                "select count(*) from requests where idempotency_key = ?", (key,)
            ).fetchone()[0]
