"""An S3 that fails the way real ones do: a proxy on 127.0.0.1 in front of moto's server that answers a
share of requests with 500/503, drops connections before answering, adds latency, or goes down.

Faults are chosen by request number (every n-th), so a run meets the same mix each time; the proxy
counts what it injected, so a test can assert that its faults really happened.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
    "down": ("ServiceUnavailable", "Service is unable to handle request."),
}
# Hop-by-hop headers are the proxy's own business; bodies are forwarded whole, with their length.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Faults:
    """Which requests fail: every ``error_every``-th answers 503 (every other such one 500), every
    ``drop_every``-th has its connection closed unanswered; each waits ``latency_s`` first. ``down``
    answers 503 ServiceUnavailable to everything, as S3 does in an outage (clients retry a 503
    SlowDown longer: s3fs adds its own retries to botocore's)."""

    error_every: int = 0
    drop_every: int = 0
    latency_s: float = 0.0
    down: bool = False


class FaultProxy:
    """A threaded HTTP proxy to ``upstream`` (moto's server) that injects :class:`Faults`.

    Use as a context manager; ``url`` is the endpoint to give genreflow, ``injected`` counts faults
    by kind (``"503"``, ``"500"``, ``"drop"``, ``"down"``) and ``forwarded`` the requests passed on.
    """

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._upstream = urlsplit(upstream)
        self._requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self) -> str | None:
        """The fault for the next request, if any."""
        with self._lock:
            self._requests += 1
            n, faults = self._requests, self.faults
            if faults.down:
                kind = "down"
            elif faults.drop_every and n % faults.drop_every == 0:
                kind = "drop"
            elif faults.error_every and n % faults.error_every == 0:
                kind = "500" if (n // faults.error_every) % 2 else "503"
            else:
                self.forwarded += 1
                return None
            self.injected[kind] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients pool their connections

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self._read_body()
                time.sleep(proxy.faults.latency_s)
                fault = proxy._fault()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None:
                    self._error(fault)
                    return
                self._forward(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _error(self, fault: str) -> None:
                status = 503 if fault == "down" else int(fault)
                code, message = _ERRORS[fault if fault == "down" else status]
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy._upstream.hostname, proxy._upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Handler
