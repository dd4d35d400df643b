"""The HTTPS server: a keep-alive request handler for werkzeug's threaded server (the ``Emulator`` makes the server)."""

import io
import socket

from werkzeug.serving import WSGIRequestHandler


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
            self.close_connection = True  # the client went away mid-body
            return None
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(length)
        try:
            status, headers, payload = self._call_app(environ)
        except (ConnectionError, socket.timeout) as error:  # fault "drop": the socket is already shut down
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


def close_open_connections(server):
    """Shut down kept-alive connections so their handler threads end now, not at the idle timeout."""
    with server.open_connections_lock:
        connections = list(server.open_connections)
    for connection in connections:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
