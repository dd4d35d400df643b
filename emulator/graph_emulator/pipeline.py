"""The request pipeline: the WSGI application behind the HTTPS server (identity endpoints, Graph v1.0, control API).

One request goes through: latency -> fault -> authentication -> permission -> throttling ->
engine (under the directory lock) -> fault "apply_then" -> what is left of the answer time.
``$batch`` items take the same path, one by one, with the outer request's token (latency and
answer time apply to the outer request only).
"""

import json
import math
import re
import socket
import threading
import time
import uuid
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request, Response

from .calls import (
    JSON_CONTENT_TYPE,
    WRITE_METHODS,
    Call,
    DropConnection,
    Outcome,
    content_type_outcome,
    error_body,
    error_outcome,
    throttled_outcome,
    unreadable_payload_outcome,
)
from .engine import GraphError, RequestContext
from .faults import run_operations
from .identity import ROUTE_PERMISSIONS, TokenEndpointError, is_allowed_call
from .paging import Pager
from .routes import batch, match_route

LOOPBACK = ("127.0.0.1", "::1", "localhost")
KNOWN_ROOTS = frozenset(("users", "groups", "subscribedskus", "organization", "auditlogs", "directoryobjects", "$batch", "me"))
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
            self.data = {
                "total": 0,
                "http_requests": 0,
                "batch_items": 0,
                "by_route": {},
                "by_status": {},
                "resource_units": 0,
                "writes": 0,
                "throttled": 0,
                "early_retries": 0,
                "faults_fired": 0,
                "dropped": 0,
            }

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
        self.pager = Pager(emulator.strict)
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
        if path.lower().startswith(("/v1.0/", "/beta/")) or path.lower() in ("/v1.0", "/beta"):
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
            status, body = (
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{parts[0]}' not found. Check to make sure "
                    "you have the correct tenant ID and are signing into the correct "
                    "cloud.",
                    "error_codes": [90002],
                },
            )
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
        self.emu.log_request(
            request.method,
            request.path,
            status,
            request_id,
            client_request_id,
            False,
            route_key=f"{request.method} /{{tenant}}/{'/'.join(parts[1:])}",
            write=False,
            app_id=None,
        )
        headers = {"client-request-id": client_request_id, "x-ms-request-id": request_id, "Cache-Control": "no-store, no-cache"}
        return self.json_response(status, body, headers)

    # -- Graph -----------------------------------------------------------------------------------
    def graph_request(self, request, request_id, client_request_id):
        arrival = self.emu.clock.wall()
        latency = self.emu.latency_ms
        if latency:
            time.sleep(latency / 1000.0)
        answer_time, answer_from = self.emu.answer_time_ms, self.emu.clock.wall()
        call = Call(
            method=request.method.upper(),
            path=request.path,
            query=self.query_dict(request.query_string),
            headers={k.lower(): v for k, v in request.headers.items()},
            in_batch=False,
            arrival=arrival,
            request_id=request_id,
            client_request_id=client_request_id,
            base_url=self.base_url(request),
            raw_query=request.query_string.decode(),
        )
        raw = request.get_data()
        outcome = content_type_outcome(call, bool(raw))
        if raw and outcome is None:
            try:
                call.body = json.loads(raw)
            except ValueError:
                outcome = unreadable_payload_outcome(call)
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
        headers = {
            "request-id": call.request_id,
            "client-request-id": call.client_request_id,
            "x-ms-ags-diagnostic": json.dumps(
                {"ServerInfo": {"DataCenter": "Emulator", "Slice": "E", "Ring": "0", "ScaleUnit": "000", "RoleInstance": "graph-emulator"}}
            ),
            "Cache-Control": "no-cache",
            "Strict-Transport-Security": "max-age=31536000",
        }
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
        if route_name in ROUTE_PERMISSIONS and not is_allowed_call(route_name, call.claims.get("roles"), call.body):
            outcome = Outcome(403, error_body(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", call))
            self.finish(call, route_key, outcome, is_write)
            return outcome
        app_id = call.claims.get("appid", "")
        verdict = emu.throttler.check(app_id, emu.directory.tenant_id, emu.user_count(), route_name, call.method, call.query, arrival=call.arrival)
        throttle_headers = {"x-ms-resource-unit": str(verdict.resource_units)}
        if verdict.limit_percentage:
            throttle_headers["x-ms-throttle-limit-percentage"] = f"{verdict.limit_percentage:.1f}"
        if not verdict.allowed:
            emu.counters.add("throttled")
            if verdict.early_retry:
                emu.counters.add("early_retries")
            throttle_headers.update({"x-ms-throttle-scope": verdict.scope, "x-ms-throttle-information": verdict.information})
            outcome = throttled_outcome(call, verdict.retry_after, throttle_headers)
            self.finish(call, route_key, outcome, is_write)
            return outcome
        emu.counters.add("resource_units", verdict.resource_units)
        ctx = RequestContext(
            request_id=call.request_id,
            client_request_id=call.client_request_id,
            method=call.method,
            path=call.path,
            app_id=app_id,
            app_display_name=call.claims.get("app_displayname", ""),
        )
        try:
            with emu.directory.lock:
                emu.directory.advance()
                with emu.directory.serving():
                    outcome = handler(self, call, params or {}, ctx)
            if is_write:
                emu.counters.add("writes")
        except GraphError as error:
            outcome = error_outcome(error, call)
        outcome.headers.update(throttle_headers)
        return self.answer_after_fault(call, route_key, outcome, fault, is_write)

    def answer_after_fault(self, call, route_key, outcome, fault, write):
        """Log and return ``outcome``; a fault with ``apply_then`` answers instead (or drops) after the work ran."""
        if fault is not None and fault.get("apply_then"):
            if fault.get("drop"):
                self.finish(call, route_key, Outcome(0), write)
                raise DropConnection()
            outcome = self.fault_status_outcome(fault, call)
        self.finish(call, route_key, outcome, write)
        return outcome

    def fault_before(self, fault, call, route_key=None):
        """Run a fault's pre-request parts; an Outcome means "answer this instead of running the call"."""
        emu = self.emu
        if fault.get("op") or fault.get("ops"):
            ctx = RequestContext(
                request_id=f"fault-{fault['id']}", method="FAULT", path=call.path, app_id="", app_display_name="graph-emulator fault injection"
            )
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
            return Outcome(405, error_body(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.", call))
        segments = call.path.strip("/").split("/")
        # Graph names the first segment it cannot resolve: an unknown root ("/v1.0/v1.0/users" -> 'v1.0'), else the last one
        segment = segments[1] if len(segments) > 1 and segments[1].lower() not in KNOWN_ROOTS else segments[-1]
        return Outcome(400, error_body(400, "BadRequest", f"Resource not found for the segment '{segment}'.", call))

    def finish(self, call, route_key, outcome, write):
        self.emu.counters.record(route_key, outcome.status, call.in_batch)
        self.emu.log_request(
            call.method,
            call.path,
            outcome.status,
            call.request_id,
            call.client_request_id,
            call.in_batch,
            route_key=route_key,
            write=write,
            app_id=(call.claims or {}).get("appid"),
        )

    def context_url(self, call, fragment):
        return f"{call.base_url}/v1.0/$metadata#{fragment}"
