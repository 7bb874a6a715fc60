"""A relay on loopback that gives fake-gcs-server's copies Cloud Storage's semantics, for race tests.

fake-gcs-server v1.54 ignores ``ifGenerationMatch`` and ``ifSourceGenerationMatch`` on a rewrite
(``copyTo`` / ``rewriteTo``), and reads a pinned ``sourceGeneration`` lazily from the live file:
a copy that waits for its turn behind a write of the same object copies the newer bytes. On Cloud
Storage a generation's bytes never change and both preconditions hold. This relay checks the two
preconditions itself (a 412 as Cloud Storage gives) and lets one mutating request reach the server
at a time, so each request is applied alone; every interleaving of requests stays possible.
Uploads' preconditions are the server's own (it checks them on single-request uploads).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

from loopback_relay import HOP, MUTATING, LoopbackRelay, reply

_COPY = re.compile(r"/storage/v1/b/([^/]+)/o/([^/]+)/(?:rewriteTo|copyTo)/b/([^/]+)/o/([^/?]+)")
#: Cloud Storage's answer to a request whose precondition does not hold.
PRECONDITION_FAILED = {
    "error": {"code": 412, "message": "Precondition Failed", "errors": [{"reason": "conditionNotMet"}]}
}


class AtomicGcs(LoopbackRelay):
    """Relay ``url`` to ``upstream`` (fake-gcs-server's base URL); ``copies_refused`` counts 412s it gave."""

    def __init__(self, upstream: str) -> None:
        self.mutation = threading.Lock()
        self.copies_refused = 0
        super().__init__(upstream, _handler_for(self), "atomic-gcs")

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def generation(self, bucket: str, name: str) -> int:
        """The live generation of an object, 0 when it is absent."""
        status, _, body = self.send("GET", f"/storage/v1/b/{bucket}/o/{name}", {}, b"")
        return int(json.loads(body)["generation"]) if status == 200 else 0

    def copy_refused(self, path: str) -> bool:
        """Whether a copy's ``ifSourceGenerationMatch`` or ``ifGenerationMatch`` does not hold now."""
        match = _COPY.match(urllib.parse.urlsplit(path).path)
        if match is None:
            return False
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        source_bucket, source, bucket, name = match.groups()
        checks = (("ifSourceGenerationMatch", source_bucket, source), ("ifGenerationMatch", bucket, name))
        return any(key in query and int(query[key][0]) != self.generation(b, n) for key, b, n in checks)


def _handler_for(relay: AtomicGcs) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - library signature
            pass

        def do_GET(self) -> None:  # noqa: N802 - library names
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if self.command not in MUTATING:
                self._reply(*relay.send(self.command, self.path, headers, body))
                return
            with relay.mutation:
                if relay.copy_refused(self.path):
                    relay.copies_refused += 1
                    self._reply(412, [("Content-Type", "application/json")], json.dumps(PRECONDITION_FAILED).encode())
                    return
                self._reply(*relay.send(self.command, self.path, headers, body))

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        def _reply(self, status: int, headers: list, body: bytes) -> None:
            reply(self, status, headers, body)

    return Relay
