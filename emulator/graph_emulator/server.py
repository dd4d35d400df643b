"""The Microsoft Graph emulator's HTTPS server and the ``Emulator`` context manager.

One request goes through: latency -> fault -> authentication -> permission -> throttling ->
engine (under the directory lock) -> fault "apply_then" -> what is left of the answer time.
``$batch`` items take the same path, one by one, with the outer request's token (latency and
answer time apply to the outer request only).
"""

import io
import json
import math
import os
import re
import secrets as secrets_module
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .calls import (JSON_CONTENT_TYPE, WRITE_METHODS, Call, DropConnection, Outcome, error_body, error_outcome,
                    throttled_outcome)
from .engine import Directory, GraphError, RequestContext
from .faults import FaultRegistry, run_operations
from .identity import DEFAULT_APP_PERMISSIONS, ROUTE_PERMISSIONS, IdentityService, TokenEndpointError, is_allowed
from .paging import Pager
from .routes import batch, match_route
from .throttle import Clock, Throttler
from .tls import create_tls_material

REQUEST_LOG_LIMIT = 100_000
LOOPBACK = ("127.0.0.1", "::1", "localhost")
FAULT_ERRORS = {
    500: ("generalException", "An unspecified error has occurred."),
    502: ("BadGateway", "The server, while acting as a gateway or proxy, received an invalid response."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a timely response from the upstream server."),
}


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "_lock", threading.Lock()):
            self.data = {"total": 0, "http_requests": 0, "batch_items": 0, "by_route": {}, "by_status": {},
                         "resource_units": 0, "writes": 0, "throttled": 0, "early_retries": 0,
                         "faults_fired": 0, "dropped": 0}

    def record(self, route_key, status, in_batch=False):
        with self._lock:
            self.data["total"] += 1
            self.data["batch_items" if in_batch else "http_requests"] += 1
            status_key = str(status)
            self.data["by_status"][status_key] = self.data["by_status"].get(status_key, 0) + 1
            entry = self.data["by_route"].setdefault(route_key, {"count": 0, "by_status": {}})
            entry["count"] += 1
            entry["by_status"][status_key] = entry["by_status"].get(status_key, 0) + 1

    def add(self, key, amount=1):
        with self._lock:
            self.data[key] += amount

    def snapshot(self):
        with self._lock:
            return json.loads(json.dumps(self.data))


class GraphApp:
    """The WSGI application: identity endpoints, Graph v1.0 routes, $batch, control API."""

    def __init__(self, emulator):
        self.emu = emulator
        self.pager = Pager()
        # Retry-After windows handed out by injected 429/503 faults: (app, method, path) -> (opened, ends)
        self._fault_windows = {}
        self._fault_windows_lock = threading.Lock()

    # -- WSGI entry -------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.respond(request)
        except DropConnection:
            self.emu.counters.add("dropped")
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            # werkzeug treats connection errors as "client went away" and writes nothing
            raise ConnectionAbortedError("fault: connection dropped") from None
        return response(environ, start_response)

    def respond(self, request):
        path = request.path
        if path.startswith("/_emulator"):
            if request.remote_addr not in LOOPBACK:
                return self.json_response(403, {"error": "the control API only answers loopback clients"})
            status, body = self.emu.control.handle(request)
            return self.json_response(status, body)
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        if path.lower().startswith("/v1.0/") or path.lower() == "/v1.0":
            return self.graph_request(request, request_id, client_request_id)
        return self.identity_request(request, request_id, client_request_id)

    @staticmethod
    def json_response(status, body, headers=None, content_type="application/json; charset=utf-8"):
        data = b"" if body is None else json.dumps(body).encode()
        response = Response(data, status=status, content_type=content_type if body is not None else None)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def base_url(self, request):
        return f"https://{request.host}"

    # -- identity -----------------------------------------------------------------------------
    def identity_request(self, request, request_id, client_request_id):
        parts = request.path.strip("/").split("/")
        identity = self.emu.identity
        base = self.base_url(request)
        status, body = 404, {"error": "not_found", "error_description": f"No route for {request.path}"}
        if len(parts) >= 2 and not identity.knows_tenant(parts[0]):
            status, body = 400, {"error": "invalid_tenant",
                                 "error_description": f"AADSTS90002: Tenant '{parts[0]}' not found. Check to make sure "
                                                      "you have the correct tenant ID and are signing into the correct "
                                                      "cloud.",
                                 "error_codes": [90002]}
        elif parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and request.method == "GET":
            status, body = 200, identity.openid_configuration(base, parts[0])
        elif parts[1:] == ["discovery", "v2.0", "keys"] and request.method == "GET":
            status, body = 200, identity.jwks()
        elif parts[1:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            basic = None
            if request.authorization and request.authorization.type == "basic":
                basic = (request.authorization.username, request.authorization.password)
            try:
                status, body = 200, identity.token(base, parts[0], request.form.to_dict(), basic)
            except TokenEndpointError as error:
                status, body = error.status, error.body(client_request_id)
        # Identity requests are logged but are never Graph writes (a token POST changes no directory state).
        self.emu.log_request(request.method, request.path, status, request_id, client_request_id, False,
                             route_key=f"{request.method} /{{tenant}}/{'/'.join(parts[1:])}", write=False, app_id=None)
        headers = {"client-request-id": client_request_id, "x-ms-request-id": request_id,
                   "Cache-Control": "no-store, no-cache"}
        return self.json_response(status, body, headers)

    # -- Graph -----------------------------------------------------------------------------------
    def graph_request(self, request, request_id, client_request_id):
        arrival = self.emu.clock.wall()
        latency = self.emu.latency_ms
        if latency:
            time.sleep(latency / 1000.0)
        answer_time, answer_from = self.emu.answer_time_ms, self.emu.clock.wall()
        call = Call(method=request.method.upper(), path=request.path, query=self.query_dict(request.query_string),
                    headers={k.lower(): v for k, v in request.headers.items()}, in_batch=False, arrival=arrival,
                    request_id=request_id, client_request_id=client_request_id, base_url=self.base_url(request),
                    raw_query=request.query_string.decode())
        outcome = None
        raw = request.get_data()
        if raw:
            try:
                call.body = json.loads(raw)
            except ValueError:
                outcome = Outcome(400, error_body(400, "BadRequest", "Unable to read JSON request payload. Please "
                                                  "ensure Content-Type header is set and payload is of valid JSON "
                                                  "format.", call))
        if outcome is None:
            try:
                call.claims = self.emu.identity.validate(request.headers.get("Authorization"), call.base_url)
            except GraphError as error:
                outcome = error_outcome(error, call)
        if outcome is not None:
            self.finish(call, self.route_key(call), outcome, write=call.method in WRITE_METHODS)
        elif re.fullmatch(r"/v1\.0/\$batch", call.path, re.IGNORECASE):
            outcome = batch.batch_envelope(self, call)
        else:
            outcome = self.execute(call)
        response = self.graph_response(outcome, call)
        if answer_time:
            # Graph's answer time includes its own work: wait only for what is left of it.
            remaining = answer_time / 1000.0 - (self.emu.clock.wall() - answer_from)
            if remaining > 0:
                time.sleep(remaining)
        return response

    @staticmethod
    def query_dict(raw):
        raw = raw.decode() if isinstance(raw, bytes) else raw
        query = {}
        for key, value in parse_qsl(raw, keep_blank_values=True):
            query[key.lower() if key.startswith("$") else key] = value
        return query

    def graph_response(self, outcome, call):
        headers = self.common_headers(call, outcome)
        if outcome.body is None or outcome.status == 204:
            response = Response(b"", status=outcome.status)
            response.headers.pop("Content-Type", None)
        elif isinstance(outcome.body, str):
            response = Response(outcome.body, status=outcome.status, content_type="text/plain;charset=utf-8")
        else:
            response = Response(json.dumps(outcome.body), status=outcome.status, content_type=JSON_CONTENT_TYPE)
        for name, value in headers.items():
            response.headers[name] = value
        return response

    @staticmethod
    def common_headers(call, outcome):
        headers = {"request-id": call.request_id, "client-request-id": call.client_request_id,
                   "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "Emulator", "Slice": "E",
                                                                      "Ring": "0", "ScaleUnit": "000",
                                                                      "RoleInstance": "graph-emulator"}}),
                   "Cache-Control": "no-cache", "Strict-Transport-Security": "max-age=31536000"}
        headers.update(outcome.headers)
        headers.setdefault("x-ms-resource-unit", "1")
        return headers

    def route_key(self, call):
        template, _, _ = match_route(call.method, call.path)
        return f"{call.method} {template}" if template else f"{call.method} (unknown route)"

    # -- the pipeline for one call -------------------------------------------------------------
    def execute(self, call):
        emu = self.emu
        template, handler, params = match_route(call.method, call.path)
        route_key = f"{call.method} {template}" if template else f"{call.method} (unknown route)"
        is_write = call.method in WRITE_METHODS
        early = self.early_retry_of_fault(call)
        if early is not None:
            self.finish(call, route_key, early, is_write)
            return early
        fault = emu.faults.match(call.method, call.path, call.in_batch)
        if fault is not None:
            emu.counters.add("faults_fired")
            early = self.fault_before(fault, call)
            if early is not None:
                self.finish(call, route_key, early, is_write)
                return early
        if handler is None:
            outcome = self.no_route(call, template)
            self.finish(call, route_key, outcome, is_write)
            return outcome
        route_name = f"{call.method} {template}"
        if route_name in ROUTE_PERMISSIONS and not is_allowed(route_name, call.claims.get("roles")):
            outcome = Outcome(403, error_body(403, "Authorization_RequestDenied",
                                              "Insufficient privileges to complete the operation.", call))
            self.finish(call, route_key, outcome, is_write)
            return outcome
        app_id = call.claims.get("appid", "")
        verdict = emu.throttler.check(app_id, emu.directory.tenant_id, emu.user_count(), route_name, call.method,
                                      call.query, arrival=call.arrival)
        throttle_headers = {"x-ms-resource-unit": str(verdict.resource_units)}
        if verdict.limit_percentage:
            throttle_headers["x-ms-throttle-limit-percentage"] = f"{verdict.limit_percentage:.1f}"
        if not verdict.allowed:
            emu.counters.add("throttled")
            if verdict.early_retry:
                emu.counters.add("early_retries")
            throttle_headers.update({"x-ms-throttle-scope": verdict.scope,
                                     "x-ms-throttle-information": verdict.information})
            outcome = throttled_outcome(call, verdict.retry_after, throttle_headers)
            self.finish(call, route_key, outcome, is_write)
            return outcome
        emu.counters.add("resource_units", verdict.resource_units)
        ctx = RequestContext(request_id=call.request_id, client_request_id=call.client_request_id, method=call.method,
                             path=call.path, app_id=app_id, app_display_name=call.claims.get("app_displayname", ""))
        try:
            with emu.directory.lock:
                emu.directory.advance()
                outcome = handler(self, call, params or {}, ctx)
            if is_write:
                emu.counters.add("writes")
        except GraphError as error:
            outcome = error_outcome(error, call)
        outcome.headers.update(throttle_headers)
        if fault is not None and fault.get("apply_then"):
            if fault.get("drop"):
                self.finish(call, route_key, Outcome(0), is_write)
                raise DropConnection()
            outcome = self.fault_status_outcome(fault, call)
        self.finish(call, route_key, outcome, is_write)
        return outcome

    def fault_before(self, fault, call, route_key=None):
        """Run a fault's pre-request parts; an Outcome means "answer this instead of running the call"."""
        emu = self.emu
        if fault.get("op") or fault.get("ops"):
            ctx = RequestContext(request_id=f"fault-{fault['id']}", method="FAULT", path=call.path,
                                 app_id="", app_display_name="graph-emulator fault injection")
            with emu.directory.lock:
                emu.directory.advance()
                run_operations(emu.directory, fault, ctx)
        if fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000.0)
        if fault.get("apply_then"):
            return None
        if fault.get("drop"):
            self.finish(call, route_key or self.route_key(call), Outcome(0), call.method in WRITE_METHODS)
            raise DropConnection()
        if fault.get("status"):
            return self.fault_status_outcome(fault, call)
        return None

    def clear_fault_windows(self):
        with self._fault_windows_lock:
            self._fault_windows.clear()

    def early_retry_of_fault(self, call):
        """The same request sent again before an injected Retry-After elapsed: refused and counted."""
        key = ((call.claims or {}).get("appid"), call.method, call.path.lower())
        now = self.emu.clock.wall()
        with self._fault_windows_lock:
            window = self._fault_windows.get(key)
            if window is None:
                return None
            opened, ends = window
            if now >= ends:
                del self._fault_windows[key]
                return None
        if call.arrival - opened <= self.emu.throttler.early_retry_grace:
            return None
        self.emu.counters.add("early_retries")
        return throttled_outcome(call, max(1, int(ends - now + 0.999)))

    def fault_status_outcome(self, fault, call):
        status = fault["status"]
        headers = {}
        if fault.get("retry_after") is not None:
            # Retry-After is whole seconds on the wire: round up (0.5 -> 1) and hold the window for
            # exactly what the header says, so a client sleeping Retry-After is never early.
            seconds = math.ceil(fault["retry_after"])
            headers["Retry-After"] = str(seconds)
            key = ((call.claims or {}).get("appid"), call.method, call.path.lower())
            now = self.emu.clock.wall()
            with self._fault_windows_lock:
                self._fault_windows[key] = (now, now + seconds)
        if status == 429:
            return throttled_outcome(call, fault.get("retry_after") or 1, headers)
        code, message = FAULT_ERRORS.get(status, ("UnknownError", "An error was injected by the emulator."))
        return Outcome(status, error_body(status, code, message, call), headers)

    def no_route(self, call, template):
        if template is not None:
            return Outcome(405, error_body(405, "Request_BadRequest",
                                           "Specified HTTP method is not allowed for the request target.", call))
        segment = call.path.rstrip("/").split("/")[-1]
        return Outcome(400, error_body(400, "BadRequest", f"Resource not found for the segment '{segment}'.", call))

    def finish(self, call, route_key, outcome, write):
        self.emu.counters.record(route_key, outcome.status, call.in_batch)
        self.emu.log_request(call.method, call.path, outcome.status, call.request_id, call.client_request_id,
                             call.in_batch, route_key=route_key, write=write,
                             app_id=(call.claims or {}).get("appid"))

    def context_url(self, call, fragment):
        return f"{call.base_url}/v1.0/$metadata#{fragment}"


# -- the Emulator ------------------------------------------------------------------------------

class QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive, and no access log (paths are in the request log; nothing here may print a secret).

    werkzeug's handler sends ``Connection: close`` on every response (and, after each one, drains
    the socket for 10 ms, which on a kept-alive connection would swallow the next request), so every
    request paid a new TLS handshake. Real Graph keeps connections alive, and so do the pooled clients
    that talk to the emulator. This handler reads the whole request body before the application runs
    (so the stream sits exactly at the next request), answers with a Content-Length, and keeps the
    connection open unless the client asks to close it, the body is chunked, or a fault drops it.
    """

    protocol_version = "HTTP/1.1"
    # An idle kept-alive connection is closed after this long; Emulator.stop() closes them at once.
    timeout = 300

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        _connection_opened(self.server, self.connection)

    def finish(self):
        _connection_closed(self.server, self.connection)
        super().finish()

    def run_wsgi(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or self.request_version < "HTTP/1.1":
            self.close_connection = True
            return super().run_wsgi()
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self.send_error(400, "Bad Content-Length")
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True   # the client went away mid-body
            return None
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(length)
        try:
            status, headers, payload = self._call_app(environ)
        except (ConnectionError, socket.timeout) as error:   # fault "drop": the socket is already shut down
            self.close_connection = True
            self.connection_dropped(error, environ)
            return None
        except Exception as error:  # pylint: disable=broad-except - answered as 500 like werkzeug does
            self.close_connection = True
            self.server.log("error", f"Error on request: {error!r}")
            status, headers, payload = "500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")], b"Internal Server Error"
        self._send(status, headers, payload, environ["REQUEST_METHOD"])
        return None

    def _call_app(self, environ):
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks = []
        result = self.server.app(environ, start_response)
        try:
            for data in result:
                chunks.append(data)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started[0], started[1], b"".join(chunks)

    def _send(self, status, headers, payload, method):
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        bodyless = code in (204, 304) or 100 <= code < 200
        if not bodyless:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write: two small writes meet Nagle + delayed ACK (40 ms per request).
        self._headers_buffer.append(b"\r\n")
        if payload and not bodyless and method != "HEAD":
            self._headers_buffer.append(payload)
        self.flush_headers()

    def log_request(self, code="-", size="-"):
        pass

    def log(self, type, message, *args):  # noqa: A002 - werkzeug's signature
        if type == "error" and "SSL" not in message:
            super().log(type, message, *args)


def _connection_opened(server, connection):
    with server.open_connections_lock:
        server.open_connections.add(connection)


def _connection_closed(server, connection):
    with server.open_connections_lock:
        server.open_connections.discard(connection)


def _close_open_connections(server):
    """Shut down kept-alive connections so their handler threads end now, not at the idle timeout."""
    with server.open_connections_lock:
        connections = list(server.open_connections)
    for connection in connections:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


CONFIG_KEYS = ("throttling", "time_scale", "latency_ms", "answer_time_ms", "processing_rate", "token_lifetime", "budget_scale",
               "early_retry_grace_ms")


class Emulator:
    """Microsoft Graph emulator on https://127.0.0.1:PORT, usable as a context manager."""

    def __init__(self, tenant=None, port=0, host="127.0.0.1", throttling=False, time_scale=1.0, latency_ms=0,
                 processing_rate=1000.0, token_lifetime=3599, budget_scale=1.0, early_retry_grace_ms=100,
                 state_dir=None, answer_time_ms=0):
        from .control import ControlApi
        if host not in LOOPBACK:
            raise ValueError(f"host: got {host!r}, expected a loopback address ({', '.join(LOOPBACK)})")
        self.host = host
        self.requested_port = int(port)
        self.clock = Clock(time_scale)
        self.directory = Directory(tenant, processing_rate=processing_rate, time_scale=time_scale)
        self.identity = IdentityService(self.directory, token_lifetime=token_lifetime)
        self.throttler = Throttler(self.clock, enabled=throttling, budget_scale=budget_scale,
                                   early_retry_grace_ms=early_retry_grace_ms)
        self.faults = FaultRegistry()
        self.counters = Stats()
        self.control = ControlApi(self)
        self.latency_ms = float(latency_ms)
        self.answer_time_ms = 0.0
        self.configure(answer_time_ms=answer_time_ms)   # checked as the control API checks it
        self._requests = deque(maxlen=REQUEST_LOG_LIMIT)
        self._requests_lock = threading.Lock()
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="graph-emulator-")
        self.tls = create_tls_material(self.state_dir)
        self._default_app = None
        self.ensure_default_app()
        self.app = GraphApp(self)
        self._server = None
        self._thread = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self):
        if self._server is not None:
            return self
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="graph-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()
        _close_open_connections(self._server)
        self._server = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def serve_forever(self):
        """Serve in the calling thread (CLI); returns after ``shutdown()`` from another thread."""
        self._server = self._make_server()
        self._server.serve_forever(poll_interval=0.2)

    def listen(self):
        """Bind the socket now (so the port is known) without serving yet."""
        self._server = self._make_server()
        return self._server

    def _make_server(self):
        server = make_server(self.host, self.requested_port, self.app, threaded=True,
                             ssl_context=self.tls.server_context(), request_handler=QuietHandler)
        server.open_connections = set()
        server.open_connections_lock = threading.Lock()
        return server

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- addresses and identity -------------------------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1] if self._server else None

    @property
    def base_url(self):
        host = "127.0.0.1" if self.host == "localhost" else self.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    @property
    def authority_url(self):
        return self.base_url

    @property
    def ca_path(self):
        return self.tls.ca_path

    @property
    def tenant_id(self):
        return self.directory.tenant_id

    @property
    def client_id(self):
        return self._default_app["clientId"]

    @property
    def client_secret(self):
        return self._default_app["secrets"][0]

    def ensure_default_app(self):
        """The first tenant app with a secret, or a new one holding DEFAULT_APP_PERMISSIONS."""
        with self.directory.lock:
            if not self.directory.tenant_id:
                self.directory.tenant_id = str(uuid.uuid4())
            for app in self.directory.apps:
                if app.get("secrets"):
                    self._default_app = app
                    return app
            self._default_app = self.directory.add_app({
                "clientId": str(uuid.uuid4()), "displayName": "graph-emulator default app",
                "secrets": [f"emu~{secrets_module.token_hex(20)}"], "certificates": [],
                "permissions": list(DEFAULT_APP_PERMISSIONS)})
            return self._default_app

    def add_app(self, permissions=(), client_id=None, secret=None, certificate_pem=None, display_name=None):
        app = {"clientId": client_id or str(uuid.uuid4()),
               "displayName": display_name or "graph-emulator test app",
               "secrets": [secret] if secret else [],
               "certificates": [certificate_pem] if certificate_pem else [],
               "permissions": list(permissions)}
        return dict(self.directory.add_app(app))

    def issue_token(self, client_id=None, permissions=None, expires_in=3600, audience=None):
        app = self.identity.find_app(client_id or self.client_id)
        if app is None:
            raise ValueError(f"client_id: got {client_id!r}, expected the clientId of a registered app")
        return self.identity.issue(app, audience=audience or "https://graph.microsoft.com", expires_in=expires_in,
                                   roles=permissions)

    # -- state ---------------------------------------------------------------------------------------
    def user_count(self):
        return self.directory.user_count()

    def export_state(self):
        return self.directory.export()

    def load_state(self, tenant):
        self.directory.load(tenant)
        self.ensure_default_app()
        self.throttler.reset()

    def generate(self, **options):
        from .tenant import generate_tenant
        self.load_state(generate_tenant(**options))

    def process_all(self):
        with self.directory.lock:
            self.directory.process_all()

    def loss_ledger(self):
        return self.directory.loss_ledger()

    def clear_ledger(self):
        self.directory.clear_ledger()

    # -- observation ---------------------------------------------------------------------------------
    def log_request(self, method, path, status, request_id, client_request_id, in_batch, route_key="", write=False,
                    app_id=None):
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "method": method,
                 "path": path, "route": route_key, "status": status, "request_id": request_id,
                 "client_request_id": client_request_id, "in_batch": in_batch,
                 "write": bool(write), "app_id": app_id}
        with self._requests_lock:
            self._requests.append(entry)

    def request_log(self):
        with self._requests_lock:
            return list(self._requests)

    def clear_request_log(self):
        with self._requests_lock:
            self._requests.clear()

    def stats(self):
        return self.counters.snapshot()

    def reset_stats(self):
        """Zero the counters and empty the request log (both describe "what happened since")."""
        self.counters.reset()
        self.clear_request_log()

    # -- knobs ---------------------------------------------------------------------------------------
    def add_fault(self, **spec):
        return self.faults.add(spec)

    def clear_faults(self):
        """Remove every fault and close the Retry-After windows injected faults opened.

        A window left open would answer the next test's first request to the same app, method and
        path with a 429 counted as an early retry.
        """
        self.faults.clear()
        self.app.clear_fault_windows()

    def list_faults(self):
        return self.faults.list()

    def config(self):
        return {"throttling": self.throttler.enabled, "time_scale": self.clock.time_scale,
                "latency_ms": self.latency_ms, "answer_time_ms": self.answer_time_ms, "processing_rate": self.directory._rate,
                "token_lifetime": self.identity.token_lifetime, "budget_scale": self.throttler.budget_scale,
                "early_retry_grace_ms": self.throttler.early_retry_grace * 1000.0}

    def configure(self, **knobs):
        unknown = set(knobs) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown emulator setting(s) {sorted(unknown)}; expected some of {list(CONFIG_KEYS)}")
        for name in ("time_scale", "latency_ms", "answer_time_ms", "processing_rate", "token_lifetime", "budget_scale",
                     "early_retry_grace_ms"):
            value = knobs.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name}: got {value!r}, expected a non-negative number")
        if knobs.get("time_scale") is not None:
            if knobs["time_scale"] <= 0:
                raise ValueError(f"time_scale: got {knobs['time_scale']!r}, expected a number > 0")
            self.clock.set_scale(knobs["time_scale"])
        if knobs.get("time_scale") is not None or knobs.get("processing_rate") is not None:
            self.directory.configure(processing_rate=knobs.get("processing_rate"), time_scale=knobs.get("time_scale"))
        if knobs.get("latency_ms") is not None:
            self.latency_ms = float(knobs["latency_ms"])
        if knobs.get("answer_time_ms") is not None:
            self.answer_time_ms = float(knobs["answer_time_ms"])
        if knobs.get("token_lifetime") is not None:
            self.identity.token_lifetime = int(knobs["token_lifetime"])
        if "throttling" in knobs and not isinstance(knobs["throttling"], bool):
            raise ValueError(f"throttling: got {knobs['throttling']!r}, expected true or false")
        if any(knobs.get(k) is not None for k in ("throttling", "budget_scale", "early_retry_grace_ms", "time_scale")):
            self.throttler.configure(enabled=knobs.get("throttling"), budget_scale=knobs.get("budget_scale"),
                                     early_retry_grace_ms=knobs.get("early_retry_grace_ms"))
        return self.config()

    def info(self):
        return {"base_url": self.base_url, "authority_url": self.authority_url, "ca_path": self.ca_path,
                "tenant_id": self.tenant_id, "client_id": self.client_id, "client_secret": self.client_secret,
                "pid": os.getpid()}
