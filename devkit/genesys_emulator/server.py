"""HTTP plumbing: routing, OAuth, bearer tokens, rate limiting, fault injection, request log, admin API.

Both the login host (``/oauth/token``) and the API host (``/api/v2/...``) are served on one port: the
official SDK derives its login URL by replacing ``//api.`` with ``//login.`` in the host, which leaves a
``http://127.0.0.1:<port>`` host untouched, so one port serves both.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .config import EmulatorConfig
from .errors import ApiError, bad_request
from .faults import FaultDecision, FaultRegistry
from .store import API, Store

NO_BODY = object()  # handler result meaning "204 No Content"
ADMIN_PREFIX = "/__emulator__"
CONTACTS_ROUTE = f"POST {API}/contactlists/{{contactListId}}/contacts"
TOKEN_ROUTE = "POST /oauth/token"

Handler = Callable[["Request"], Any]


class Request:
    """What a route handler sees: path params, parsed query, lazily parsed JSON body."""

    __slots__ = ("_json", "method", "params", "query", "raw_body")

    def __init__(self, method: str, params: dict[str, str], query: dict[str, list[str]], raw_body: bytes) -> None:
        self.method = method
        self.params = params
        self.query = query
        self.raw_body = raw_body
        self._json: Any = NO_BODY

    def json(self) -> Any:
        if self._json is NO_BODY:
            if not self.raw_body.strip():
                raise bad_request("A request body is required", "body")
            try:
                self._json = json.loads(self.raw_body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise bad_request(f"The request body is not valid JSON: {exc}", "body") from None
        return self._json

    def flag(self, name: str) -> bool:
        value = self.query.get(name, ["false"])[-1].strip().lower()
        if value not in ("true", "false", ""):
            raise bad_request(f"{name} must be true or false", name)
        return value == "true"


def _utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Route:
    __slots__ = ("api", "handler", "method", "name", "regex", "template")

    def __init__(self, method: str, template: str, handler: Handler) -> None:
        self.method = method
        self.template = template
        self.name = f"{method} {template}"
        self.handler = handler
        self.api = template.startswith("/api/")
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


class Router:
    """Ordered route table: literal segments must come before ``{param}`` siblings."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        self.routes.append(Route(method, template, handler))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return ``(route, params, path_known)``; ``path_known`` without a route means 405."""
        path_known = False
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}, True
            path_known = True
        return None, {}, path_known


class RateLimiter:
    """Fixed 60-second window per token (or per OAuth client: ``rate_limit_scope``), like the documented
    ``inin-ratelimit-*`` headers suggest."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def hit(self, client: str, limit: int, window_seconds: float = WINDOW) -> dict[str, str]:
        """Count one call of ``client``; return the rate headers, or raise 429 once ``limit`` is used up.

        ``limit`` is per minute; a shorter window allows its share of it (at least one call)."""
        if limit <= 0:
            return {}
        if window_seconds != self.WINDOW:
            limit = max(1, round(limit * window_seconds / self.WINDOW))
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(client)
            if window is None or now - window[0] >= window_seconds:
                window = self._windows[client] = [now, 0]
            reset = max(1, math.ceil(window_seconds - (now - window[0])))
            if window[1] >= limit:
                raise ApiError(
                    429,
                    f"Rate limit exceeded the maximum. Retry the request in [{reset}] seconds",
                    "too.many.requests.retry.after",
                    headers={
                        "Retry-After": str(reset),
                        "inin-ratelimit-count": str(int(window[1])),
                        "inin-ratelimit-allowed": str(limit),
                        "inin-ratelimit-reset": str(reset),
                    },
                    limit={
                        "key": "client.credentials.token.rate.per.minute",
                        "namespace": "platform.api",
                        "value": limit,
                    },
                )
            window[1] += 1
            return {
                "inin-ratelimit-count": str(int(window[1])),
                "inin-ratelimit-allowed": str(limit),
                "inin-ratelimit-reset": str(reset),
            }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: EmulatorServer

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 keep-alive connection; every response is written with a single ``sendall``."""

    protocol_version = "HTTP/1.1"
    server_version = "genesys-emulator"
    sys_version = ""
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr logging: it costs throughput and the request log covers it."""

    def do_GET(self) -> None:
        self.server.emulator.dispatch(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_body(self, max_bytes: int | None) -> tuple[bytes, bool]:
        """Read the whole body (Content-Length or chunked); return ``(body, too_large)``.

        An oversized body is still drained (and dropped) so the 413 reaches the client instead of a reset.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(max_bytes)
        length = int(self.headers.get("Content-Length") or 0)
        if max_bytes is not None and length > max_bytes:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            return b"", True
        return (self.rfile.read(length) if length > 0 else b""), False

    def _read_chunked(self, max_bytes: int | None) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(65537)
            chunk_len = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if chunk_len == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = self.rfile.read(chunk_len)
            self.rfile.readline(3)
            size += len(data)
            if max_bytes is None or size <= max_bytes:
                parts.append(data)
        if max_bytes is not None and size > max_bytes:
            return b"", True
        return b"".join(parts), False

    # Called once, just before a response (or a dropped connection) goes out: the request log is written
    # first, so a client that reads the log after its answer always finds its own request there.
    before_answer: Callable[[int, bool], None] | None = None

    def _answering(self, status: int, dropped: bool) -> None:
        callback, self.before_answer = self.before_answer, None
        if callback is not None:
            callback(status, dropped)

    def send(self, status: int, body: bytes, headers: dict[str, str], content_type: str = "application/json") -> None:
        self._answering(status, False)
        reason = self.responses.get(status, ("Error",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}"]
        if status != 204:
            lines.append(f"Content-Type: {content_type}")
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body if status != 204 else head)

    def drop(self, status: int) -> None:
        """Close the connection without sending anything (simulates a lost response; ``status`` is what
        would have been sent)."""
        self._answering(status, True)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class EmulatorServer:
    """An in-process Genesys Cloud emulator: ``with EmulatorServer(port=0) as emu: emu.base_url``.

    Keyword arguments are :class:`EmulatorConfig` fields (``rate_limit_per_minute=5``,
    ``max_contacts_per_request=10``, ...); ``config=`` passes a whole config instead.
    """

    def __init__(self, *, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = config or EmulatorConfig()
        for key, value in overrides.items():
            if key not in EmulatorConfig.field_names():
                raise TypeError(f"unknown emulator option: {key}")
            setattr(self.config, key, value)
        self.store = Store(self.config)
        self.router = Router()
        self._register_routes()
        self.faults = FaultRegistry([r.name for r in self.router.routes])
        self.rate_limiter = RateLimiter()
        self._tokens: dict[str, float] = {}
        self._token_clients: dict[str, str] = {}  # token -> the client id it was issued to
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=max(1, self.config.request_log_size))
        self._seq = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.admin = _AdminApi(self)

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        if self.config.seed:
            with open(self.config.seed, encoding="utf-8") as fh:
                self.store.seed(json.load(fh))
        self._httpd = _HTTPServer((self.config.host, self.config.port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="genesys-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.connections_lock:
            for conn in list(httpd.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("emulator is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # ---------------------------------------------------------------------------------------- state helpers
    def reset(self) -> None:
        """Clear entities, faults, request log, issued tokens and rate-limit windows."""
        self.store.reset()
        self.faults.clear()
        self.rate_limiter.reset()
        with self._lock:
            self._tokens.clear()
            self._token_clients.clear()
            self._log.clear()

    def issue_token(self, client_id: str | None = None) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.config.token_ttl
            self._token_clients[token] = client_id or self.config.client_id
        return token

    def token_client(self, token: str) -> str:
        """The client id a token was issued to (the rate limiter's key)."""
        with self._lock:
            return self._token_clients.get(token, self.config.client_id)

    def expire_tokens(self) -> int:
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0
            return len(self._tokens)

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def clear_requests_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._log.append(entry)

    def _check_token(self, header: str | None) -> str:
        if header and header[:7].lower() == "bearer ":
            token = header[7:].strip()
            with self._lock:
                expires = self._tokens.get(token)
            if expires is not None and expires > time.monotonic():
                return token
        raise ApiError(401, "Invalid login credentials.", "bad.credentials")

    # --------------------------------------------------------------------------------------------- dispatch
    def dispatch(self, h: _RequestHandler) -> None:
        """Handle one request end to end; never raises (errors become Genesys error bodies)."""
        received = _utc_stamp()
        context_id = str(uuid.uuid4())
        split = urlsplit(h.path)
        path = split.path.rstrip("/") or "/"
        if path.startswith(ADMIN_PREFIX + "/") or path == ADMIN_PREFIX:
            self.admin.dispatch(h, path, split.query, context_id)
            return
        method = h.command
        route, params, path_known = self.router.match(method, path)
        limit = self.config.max_body_bytes if self.config.enforce_limits else None
        raw_body, too_large = h.read_body(limit)
        headers = {"ININ-Correlation-Id": context_id}
        contact_count = 0
        contact_ids: list[Any] | None = None

        def record(status: int, dropped: bool) -> None:
            self._record(
                {
                    "method": method,
                    "path": path,
                    "route": route.name if route else None,
                    "status": status,
                    "contactCount": contact_count,
                    "contactIds": contact_ids,
                    "queryString": split.query,
                    "time": _utc_stamp(),  # when the answer went out (after any injected latency)
                    "receivedAt": received,  # when the request arrived
                    "correlationId": context_id,
                    "dropped": dropped,
                }
            )

        h.before_answer = record
        try:
            if route is None:
                if path_known:
                    raise ApiError(405, f"HTTP method {method} is not supported for {path}", "method.not.allowed")
                raise ApiError(404, f"Unable to find a route for {method} {path}", "not.found")
            if route.name == TOKEN_ROUTE:
                status, body, extra = self._token_call(h, raw_body, route)
                headers.update(extra)
                h.send(status, _dumps(body), headers)
                return
            request = Request(method, params, parse_qs(split.query, keep_blank_values=True), raw_body)
            if route.name == CONTACTS_ROUTE and not too_large:
                # Counted (and, when log_contact_ids, listed) for every contacts POST received, whatever then
                # happens to it: tests count how often each contact id was sent.
                try:
                    parsed = request.json()
                except ApiError:
                    parsed = None
                if isinstance(parsed, list):
                    contact_count = len(parsed)
                    if self.config.log_contact_ids:
                        contact_ids = [c.get("id") if isinstance(c, dict) else None for c in parsed]
            token = self._check_token(h.headers.get("Authorization"))
            decision = self.faults.decide(route.name, route.api)
            if decision is not None:
                self._apply_injected(decision)
            limited = self.token_client(token) if self.config.rate_limit_scope == "client" else token
            headers.update(self.rate_limiter.hit(limited, self.config.rate_limit_per_minute,
                                                 self.config.rate_limit_window_seconds))
            if too_large:
                raise ApiError(
                    413,
                    f"The request body exceeds the maximum of {limit} bytes",
                    "request.too.large",
                    limit={"key": "request.bytes.max", "namespace": "platform.api", "value": limit},
                )
            content_type = h.headers.get("Content-Type", "")
            if raw_body.strip() and "json" not in content_type.lower():
                raise ApiError(415, f"Content type {content_type!r} is not supported; use application/json")
            result = route.handler(request)
            if decision is not None and decision.drop:
                h.drop(200 if result is not NO_BODY else 204)
                return
            if result is NO_BODY:
                h.send(204, b"", headers)
            else:
                h.send(200, _dumps(result), headers)
        except ApiError as err:
            headers.update(err.headers)
            h.send(err.status, _dumps(err.body(context_id)), headers)
        except Exception as exc:  # an emulator bug must still produce a Genesys-shaped 500
            print(f"genesys-emulator: internal error on {method} {path}: {exc!r}", file=sys.stderr)
            h.send(500, _dumps(ApiError(500, f"Emulator error: {exc!r}").body(context_id)), headers)
        finally:
            h.before_answer = None  # admin calls on this keep-alive connection are not logged

    def _apply_injected(self, decision: FaultDecision) -> None:
        if decision.latency_s:
            time.sleep(decision.latency_s)
        status = decision.status
        if status is None:
            return
        headers: dict[str, str] = {}
        retry_after = decision.retry_after
        if status == 429:
            retry_after = self.config.default_retry_after if retry_after is None else retry_after
        if retry_after is not None and status in (429, 503):
            headers["Retry-After"] = str(retry_after)
        message = None
        if status == 429:
            message = f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"
        raise ApiError(status, message, headers=headers)

    def _token_call(
        self, h: _RequestHandler, raw_body: bytes, route: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``POST /oauth/token`` (client credentials, Basic auth); OAuth-shaped errors, not Genesys ones."""
        decision = self.faults.decide(route.name, api=False)
        if decision is not None:
            self._apply_injected(decision)
        auth = h.headers.get("Authorization", "")
        client_ok = False
        if auth[:6].lower() == "basic ":
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id, secret = "", ""
            expected = self.config.clients().get(client_id)
            client_ok = expected is not None and secrets.compare_digest(secret, expected)
        if not client_ok:
            return 401, {"error": "invalid_client", "error_description": "client is invalid or missing"}, {}
        content_type = h.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" not in content_type.lower():
            return (
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Content-Type must be application/x-www-form-urlencoded",
                },
                {},
            )
        form = parse_qs(raw_body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "client_credentials":
            return (
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"grant type {grant!r} is not supported; use client_credentials",
                },
                {},
            )
        return (
            200,
            {
                "access_token": self.issue_token(client_id),
                "token_type": "bearer",
                "expires_in": self.config.token_ttl,
            },
            {"Cache-Control": "no-store"},
        )

    # ------------------------------------------------------------------------------------------------ routes
    def _register_routes(self) -> None:
        s, add = self.store, self.router.add
        cl, clf, camp, dnc = (
            f"{API}/contactlists",
            f"{API}/contactlistfilters",
            f"{API}/campaigns",
            f"{API}/dnclists",
        )
        add("POST", "/oauth/token", lambda r: None)  # handled in dispatch (OAuth error shapes)

        add("GET", cl, lambda r: s.list_contact_lists(r.query))
        add("POST", cl, lambda r: s.create_contact_list(r.json()))
        add("GET", f"{cl}/{{contactListId}}", lambda r: s.get_contact_list(r.params["contactListId"]))
        add(
            "PUT",
            f"{cl}/{{contactListId}}",
            lambda r: s.update_contact_list(r.params["contactListId"], r.json()),
        )
        add(
            "DELETE",
            f"{cl}/{{contactListId}}",
            lambda r: _none(s.delete_contact_list(r.params["contactListId"])),
        )
        add(
            "POST",
            f"{cl}/{{contactListId}}/clear",
            lambda r: _none(s.clear_contact_list(r.params["contactListId"])),
        )
        add(
            "POST",
            f"{cl}/{{contactListId}}/contacts",
            lambda r: s.upsert_contacts(
                r.params["contactListId"],
                r.json(),
                priority=r.flag("priority"),
                do_not_queue=r.flag("doNotQueue"),
            ),
        )
        add("DELETE", f"{cl}/{{contactListId}}/contacts", self._delete_contacts)
        add(
            "POST",
            f"{cl}/{{contactListId}}/contacts/search",
            lambda r: s.search_contacts(r.params["contactListId"], r.json()),
        )
        add(
            "POST",
            f"{cl}/{{contactListId}}/contacts/bulk",
            lambda r: s.bulk_get_contacts(r.params["contactListId"], r.json()),
        )
        contact = f"{cl}/{{contactListId}}/contacts/{{contactId}}"
        add("GET", contact, lambda r: s.get_contact(r.params["contactListId"], r.params["contactId"]))
        add(
            "PUT",
            contact,
            lambda r: s.update_contact(r.params["contactListId"], r.params["contactId"], r.json()),
        )
        add(
            "DELETE",
            contact,
            lambda r: _none(s.delete_contacts(r.params["contactListId"], [r.params["contactId"]], must_exist=True)),
        )

        add("GET", clf, lambda r: s.list_filters(r.query))
        add("POST", clf, lambda r: s.create_filter(r.json()))
        add("GET", f"{clf}/{{contactListFilterId}}", lambda r: s.get_filter(r.params["contactListFilterId"]))
        add(
            "PUT",
            f"{clf}/{{contactListFilterId}}",
            lambda r: s.update_filter(r.params["contactListFilterId"], r.json()),
        )
        add(
            "DELETE",
            f"{clf}/{{contactListFilterId}}",
            lambda r: _none(s.delete_filter(r.params["contactListFilterId"])),
        )

        add("GET", camp, lambda r: s.list_campaigns(r.query))
        add("POST", camp, lambda r: s.create_campaign(r.json()))
        add("GET", f"{camp}/{{campaignId}}", lambda r: s.get_campaign(r.params["campaignId"]))
        add("PUT", f"{camp}/{{campaignId}}", lambda r: s.update_campaign(r.params["campaignId"], r.json()))
        add(
            "PATCH",
            f"{camp}/{{campaignId}}",
            lambda r: _none(s.patch_campaign(r.params["campaignId"], r.json())),
        )
        add("DELETE", f"{camp}/{{campaignId}}", lambda r: s.delete_campaign(r.params["campaignId"]))
        add("GET", f"{camp}/{{campaignId}}/stats", lambda r: s.campaign_stats(r.params["campaignId"]))
        add("GET", f"{camp}/{{campaignId}}/progress", lambda r: s.campaign_progress(r.params["campaignId"]))
        add(
            "POST",
            f"{camp}/{{campaignId}}/start",
            lambda r: _none(s.set_campaign_status(r.params["campaignId"], "on")),
        )
        add(
            "POST",
            f"{camp}/{{campaignId}}/stop",
            lambda r: _none(s.set_campaign_status(r.params["campaignId"], "off")),
        )

        add(
            "POST",
            "/api/v2/analytics/conversations/aggregates/query",
            lambda r: s.conversation_aggregates(r.json()),
        )

        add("GET", dnc, lambda r: s.list_dnc_lists(r.query))
        add("POST", dnc, lambda r: s.create_dnc_list(r.json()))
        add("GET", f"{dnc}/{{dncListId}}", lambda r: s.get_dnc_list(r.params["dncListId"]))
        add("DELETE", f"{dnc}/{{dncListId}}", lambda r: _none(s.delete_dnc_list(r.params["dncListId"])))
        add(
            "POST",
            f"{dnc}/{{dncListId}}/phonenumbers",
            lambda r: _none(s.add_dnc_numbers(r.params["dncListId"], r.json())),
        )
        add(
            "PATCH",
            f"{dnc}/{{dncListId}}/phonenumbers",
            lambda r: _none(s.patch_dnc_numbers(r.params["dncListId"], r.json())),
        )

    def _delete_contacts(self, r: Request) -> object:
        # The SDK sends contactIds as one comma-separated value; repeated parameters are accepted too.
        ids = [i for raw in r.query.get("contactIds", []) for i in raw.split(",") if i]
        self.store.bulk_delete_contacts(r.params["contactListId"], ids)
        return NO_BODY


def _none(_: Any) -> object:
    return NO_BODY


class _AdminApi:
    """``/__emulator__/...``: test control outside the real API namespace (no auth, not logged)."""

    def __init__(self, emu: EmulatorServer) -> None:
        self.emu = emu
        self.router = Router()
        a = self.router.add
        p = ADMIN_PREFIX
        a("GET", f"{p}/health", lambda r: {"status": "ok"})
        a("POST", f"{p}/reset", lambda r: _none(emu.reset()))
        a("POST", f"{p}/seed", lambda r: emu.store.seed(r.json()))
        a("GET", f"{p}/requests", self._requests)
        a("DELETE", f"{p}/requests", lambda r: _none(emu.clear_requests_log()))
        a("GET", f"{p}/faults", lambda r: emu.faults.list())
        a("POST", f"{p}/faults", lambda r: emu.faults.add(r.json()))
        a("DELETE", f"{p}/faults", lambda r: _none(emu.faults.clear()))
        a("POST", f"{p}/tokens/expire", lambda r: {"expired": emu.expire_tokens()})
        a("GET", f"{p}/config", lambda r: emu.config.public())
        a("PATCH", f"{p}/config", self._patch_config)
        a("GET", f"{p}/contactlists/{{contactListId}}/queue", self._queue)
        a(
            "GET",
            f"{p}/contactlists/{{contactListId}}/queue/history",
            lambda r: emu.store.queue_history(r.params["contactListId"]),
        )
        a(
            "PUT",
            f"{p}/campaigns/{{campaignId}}/stats",
            lambda r: emu.store.set_campaign_stats(r.params["campaignId"], r.json()),
        )
        a("POST", f"{p}/campaigns/{{campaignId}}/dial", self._dial)
        a("POST", f"{p}/campaigns/{{campaignId}}/hangup",
          lambda r: {"ended": emu.store.hang_up(r.params["campaignId"])})
        a("GET", f"{p}/campaigns/{{campaignId}}/dialer", lambda r: emu.store.dialer_state(r.params["campaignId"]))
        a(
            "PUT",
            f"{p}/campaigns/{{campaignId}}/dialer",
            lambda r: emu.store.configure_dialer(r.params["campaignId"], r.json()),
        )
        a("GET", f"{p}/clock", lambda r: emu.store.clock_view())
        a("PUT", f"{p}/clock", lambda r: emu.store.set_clock(r.json()))
        a("POST", f"{p}/clock/advance", lambda r: emu.store.advance_clock(r.json()))
        a(
            "GET",
            f"{p}/dnclists/{{dncListId}}/phonenumbers",
            lambda r: {"phoneNumbers": emu.store.dnc_numbers_of(r.params["dncListId"])},
        )

    def dispatch(self, h: _RequestHandler, path: str, query: str, context_id: str) -> None:
        headers = {"ININ-Correlation-Id": context_id}
        raw, _too_large = h.read_body(None)
        try:
            if path != f"{ADMIN_PREFIX}/health":
                self._authorize(h.headers.get("Authorization"))
            route, params, known = self.router.match(h.command, path)
            if route is None:
                raise ApiError(405 if known else 404, f"No admin route {h.command} {path}")
            result = route.handler(Request(h.command, params, parse_qs(query, keep_blank_values=True), raw))
            if result is NO_BODY:
                h.send(204, b"", headers)
            else:
                h.send(200, _dumps(result), headers)
        except ApiError as err:
            h.send(err.status, _dumps(err.body(context_id)), {**headers, **err.headers})
        except Exception as exc:
            h.send(500, _dumps(ApiError(500, f"Emulator error: {exc!r}").body(context_id)), headers)

    def _authorize(self, header: str | None) -> None:
        """With an ``admin_token`` configured, every admin call but health needs ``Authorization: Bearer <it>``."""
        expected = self.emu.config.admin_token
        if expected is None:
            return
        given = header[7:].strip() if header and header[:7].lower() == "bearer " else ""
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "The emulator's admin API needs its admin token (Authorization: Bearer ...).",
                           "bad.credentials")

    def _requests(self, r: Request) -> list[dict[str, Any]]:
        log = self.emu.requests_log()
        route = r.query.get("route", [None])[0]
        return [e for e in log if e["route"] == route] if route else log

    def _queue(self, r: Request) -> dict[str, Any]:
        list_id = r.params["contactListId"]
        queue = self.emu.store.queue(list_id)
        return {"contactListId": list_id, "queue": queue, "size": len(queue)}

    def _dial(self, r: Request) -> dict[str, Any]:
        body = r.json() if r.raw_body.strip() else {}
        count = body.get("count", 1) if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise bad_request("count must be a non-negative integer", "count")
        hold = body.get("holdCalls", False)
        if not isinstance(hold, bool):
            raise bad_request("holdCalls must be a boolean", "holdCalls")
        return self.emu.store.dial(r.params["campaignId"], count, hold_calls=hold)

    def _patch_config(self, r: Request) -> dict[str, Any]:
        body = r.json()
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object", "body")
        if fixed := sorted(k for k in body if k in ("admin_token", "adminToken")):
            raise bad_request("The admin token is set at startup only, not over the admin API", fixed[0])
        try:
            self.emu.config.update({k: v for k, v in body.items() if k not in ("host", "port", "seed")})
        except KeyError as exc:
            raise bad_request(f"Unknown config field {exc.args[0]!r}", str(exc.args[0])) from None
        except ValueError as exc:
            raise bad_request(str(exc), "body") from None
        return self.emu.config.public()
