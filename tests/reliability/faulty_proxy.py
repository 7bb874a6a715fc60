"""A fault-injecting HTTP reverse proxy on loopback, put between storage clients and fake-gcs-server.

A seeded RNG picks which requests fail and how: an HTTP 503 or 429 without forwarding, a TCP reset
before forwarding (the server never saw the request), a reset after forwarding (the server applied
it but the client never hears back), or a slow response. With ``fault_rate=0`` it only relays.

With ``forbid_lost_creates`` it also answers a create-only write that lost (fake-gcs-server's 412)
with the 403 real Cloud Storage may give a writer without ``storage.objects.delete``.

Either way it keeps a journal of every mutating request that reached the server and of its
status, so a test can count how many times an object was really written (fake-gcs-server's
filesystem backend keeps no versions to ask afterwards). Request bodies are streamed through as
they arrive: a client killed mid-upload leaves the server with a truncated request, as it would
without the proxy.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from loopback_relay import HOP, MUTATING, LoopbackRelay, reply

#: The kinds of fault, drawn with equal chance when a request is picked to fail.
FAULTS = ("status_503", "status_429", "reset_before", "reset_after", "slow")
#: Range of the extra delay of a slow response, in seconds (well under the clients' read timeout).
SLOW_SECONDS = (0.2, 1.2)
#: Bytes relayed per read of a request body.
CHUNK = 64 * 1024
#: Seconds the proxy waits for fake-gcs-server on one request.
UPSTREAM_TIMEOUT = 60
#: Cloud Storage's answer to a write the caller may not make because it would need to delete.
FORBIDDEN_DELETE = {
    "error": {
        "code": 403,
        "message": "writer@project.iam.gserviceaccount.com does not have storage.objects.delete access to the "
        "Google Cloud Storage object. Permission 'storage.objects.delete' denied on resource (or it may not exist).",
        "errors": [{"domain": "global", "reason": "forbidden", "message": "storage.objects.delete denied"}],
    }
}


@dataclass(frozen=True)
class Write:
    """A mutating request fake-gcs-server answered: object name and generation when it succeeded."""

    method: str
    path: str
    status: int
    name: str | None
    generation: int | None


class FaultyProxy(LoopbackRelay):
    """Relay ``127.0.0.1:<port>`` to ``upstream``, failing about ``fault_rate`` of the requests.

    upstream: base URL of fake-gcs-server, e.g. ``http://127.0.0.1:4443``.
    fault_rate: chance, 0 to 1, that a request meets one of ``FAULTS``.
    seed: seed of the RNG that draws faults and delays.
    forbid_lost_creates: answer a 412 to a mutating request with ``FORBIDDEN_DELETE`` (counted).
    """

    def __init__(
        self, upstream: str, fault_rate: float = 0.0, seed: int = 0, forbid_lost_creates: bool = False
    ) -> None:
        self.fault_rate = fault_rate
        self.forbid_lost_creates = forbid_lost_creates
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.journal: list[Write] = []
        super().__init__(upstream, _handler_for(self), "faulty-proxy")

    def draw(self) -> tuple[str | None, float]:
        """The fault for the next request (None: relay it) and the delay of a slow one."""
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.fault_rate:
                return None, 0.0
            fault = self._rng.choice(FAULTS)
            self.faults[fault] += 1
            return fault, self._rng.uniform(*SLOW_SECONDS)

    def record(self, write: Write) -> None:
        with self._lock:
            self.journal.append(write)

    def writes_of(self, name: str) -> list[int]:
        """Generations of every successful write of object ``name`` that reached the server."""
        with self._lock:
            return [w.generation for w in self.journal if w.name == name and 200 <= w.status < 300]


def _handler_for(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - library signature
            pass

        def do_GET(self) -> None:  # noqa: N802 - library names
            self._relay()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        def _relay(self) -> None:
            fault, delay = proxy.draw()
            length = int(self.headers.get("Content-Length") or 0)
            if fault in ("status_503", "status_429"):
                self.rfile.read(length)
                self._reply(int(fault[-3:]), json.dumps({"error": {"code": int(fault[-3:])}}).encode(), {})
                return
            if fault == "reset_before":
                self._reset()
                return
            answer = self._forward(length)
            if answer is None:
                return  # the client went away mid-body; the server saw a truncated request
            status, headers, body = answer
            if self.command in MUTATING:
                proxy.record(_write_of(self.command, self.path, status, body))
            if fault == "reset_after":
                self._reset()
                return
            if fault == "slow":
                time.sleep(delay)
            if status == 412 and self.command in MUTATING and proxy.forbid_lost_creates:
                proxy.faults["forbidden_delete"] += 1
                status, body, headers = 403, json.dumps(FORBIDDEN_DELETE).encode(), {"Content-Type": "application/json"}
            self._reply(status, body, headers)

        def _forward(self, length: int) -> tuple[int, list[tuple[str, str]], bytes] | None:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=UPSTREAM_TIMEOUT)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in HOP:
                        conn.putheader(key, value)
                conn.putheader("Host", f"{proxy.upstream[0]}:{proxy.upstream[1]}")
                conn.endheaders()
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(CHUNK, remaining))
                    if not chunk:
                        self.close_connection = True
                        return None
                    conn.send(chunk)
                    remaining -= len(chunk)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            finally:
                conn.close()

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] | dict) -> None:
            reply(self, status, headers if isinstance(headers, list) else headers.items(), body)

        def _reset(self) -> None:
            """Close with a TCP RST (linger 0), not a polite FIN."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

    return Relay


def _write_of(method: str, path: str, status: int, body: bytes) -> Write:
    name = generation = None
    if 200 <= status < 300 and body:
        try:
            resource = json.loads(body)
        except ValueError:
            resource = None
        if isinstance(resource, dict) and "name" in resource and "generation" in resource:
            name, generation = resource["name"], int(resource["generation"])
    return Write(method, urllib.parse.urlsplit(path).path, status, name, generation)
