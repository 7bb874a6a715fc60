"""The probe and metrics server of the long-running roles: ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import mmm_backfill.metrics  # noqa: F401 - registers the project's metrics, so /metrics lists them from the start

log = logging.getLogger(__name__)

#: How often the serving thread looks for a shutdown request; bounds how long ``shutdown()`` waits.
SHUTDOWN_POLL_SECONDS = 0.1


class HealthServer:
    """A running probe server on a daemon thread.

    port: the port actually bound (useful when 0 was asked for).
    """

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.port: int = httpd.server_address[1]

    def shutdown(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


def serve(port: int, ready: Callable[[], bool], host: str = "0.0.0.0") -> HealthServer:
    """Serve the probes and metrics on ``host:port`` (port 0 picks a free one) until ``shutdown()``.

    ``/healthz`` answers 200 while the process runs; ``/readyz`` 200 when ``ready()`` is true, else 503
    (also 503 when ``ready`` raises); ``/metrics`` the default Prometheus registry in text format.
    """
    handler = type("_BoundHandler", (_Handler,), {"ready": staticmethod(ready)})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, name="health", daemon=True
    )
    thread.start()
    server = HealthServer(httpd, thread)
    log.info("health server listening", extra={"port": server.port})
    return server


class _Handler(BaseHTTPRequestHandler):
    ready: Callable[[], bool]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ok = self._is_ready()
            self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
        elif path == "/metrics":
            self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        else:
            self._reply(404, b"not found\n")

    def _is_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # noqa: BLE001 - a failing check means not ready, never a crashed probe
            log.exception("readiness check failed")
            return False

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Probes arrive every few seconds; keep them out of the logs."""
