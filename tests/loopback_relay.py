"""What the test relays in front of fake-gcs-server share: a threaded HTTP server on a free loopback port.

Used by ``tests/atomic_gcs.py`` (Cloud Storage's copy semantics) and ``tests/reliability/faulty_proxy.py``
(injected faults); each brings its own request handler.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Hop-by-hop headers, never relayed.
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class LoopbackRelay:
    """Serves ``handler`` on ``url`` (a free loopback port) for requests bound to ``upstream``, a base URL."""

    def __init__(self, upstream: str, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reply(handler: BaseHTTPRequestHandler, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Answer the request ``handler`` holds, with the upstream's headers minus hop-by-hop ones."""
    handler.send_response(status)
    for key, value in headers:
        if key.lower() not in HOP and key.lower() != "content-length":
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
