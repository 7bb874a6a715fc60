"""A list-only stand-in for the Cloud Storage JSON API, for the producer benchmark at 100,000 runs.

fake-gcs-server cannot hold a bucket of that size in benchmark time: its ``-data`` preload imports
about 700 objects/s (filesystem backend; the memory backend is quadratic) and its filesystem
backend reads every object of the bucket for each listing page, so one pass over 133,000 objects
takes minutes. This server loads the same ``DIR/<bucket>/<object path>`` folder into sorted
lists in a second and answers a page in O(page), like the real service, so the benchmark
measures the producer's own cost against a bare listing.

Objects may carry custom metadata, read from ``DIR/<bucket>.metadata.json`` (object name →
metadata), so a listing can tell summary states apart like the real service.

Served (enough for ``Storage.list``, ``list_prefixes``, ``generation``, ``read`` and
``ensure_bucket``): object listing with prefix, delimiter, pageToken and maxResults; object
metadata; media download; bucket insert (409). ``GET /_stats`` returns request counts by kind,
so per-run calls can be counted on the server side too.

Run: ``python -m bench.lite_gcs --data DIR --port PORT``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPDATED = "2026-01-01T00:00:00.000Z"


class Bucket:
    def __init__(self, name: str, root: str) -> None:
        self.name = name
        self.root = root
        self.objects: dict[str, tuple[int, int]] = {}  # name -> (size, generation)
        generation = 1_700_000_000_000_000
        for folder, _dirs, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            for filename in files:
                name = filename if rel == "." else f"{rel}/{filename}".replace(os.sep, "/")
                generation += 1
                self.objects[name] = (os.path.getsize(os.path.join(folder, filename)), generation)
        self.names = sorted(self.objects)
        sidecar = f"{root}.metadata.json"
        self.metadata: dict[str, dict[str, str]] = {}
        if os.path.isfile(sidecar):
            with open(sidecar, encoding="utf-8") as fh:
                self.metadata = json.load(fh)

    def resource(self, name: str) -> dict:
        size, generation = self.objects[name]
        extra = {"metadata": self.metadata[name]} if name in self.metadata else {}
        return {
            **extra,
            "kind": "storage#object",
            "id": f"{self.name}/{name}/{generation}",
            "name": name,
            "bucket": self.name,
            "generation": str(generation),
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "size": str(size),
            "timeCreated": UPDATED,
            "updated": UPDATED,
            "storageClass": "STANDARD",
        }

    def list(self, prefix: str, delimiter: str, token: str, max_results: int) -> dict:
        start = bisect.bisect_right(self.names, token) if token else bisect.bisect_left(self.names, prefix)
        items: list[dict] = []
        prefixes: list[str] = []
        i, n, last = start, len(self.names), ""
        while i < n and len(items) + len(prefixes) < max_results:
            name = self.names[i]
            if not name.startswith(prefix):
                break
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folder = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                prefixes.append(folder)
                # Skip every name in that folder: the next name not starting with it.
                i = bisect.bisect_left(self.names, folder[:-1] + chr(ord(folder[-1]) + 1), i)
                last = self.names[i - 1]
                continue
            items.append(self.resource(name))
            last = name
            i += 1
        body: dict = {"kind": "storage#objects"}
        if items:
            body["items"] = items
        if prefixes:
            body["prefixes"] = prefixes
        if i < n and self.names[i].startswith(prefix):
            body["nextPageToken"] = last
        return body


class Store:
    def __init__(self, data: str) -> None:
        self.buckets = {
            name: Bucket(name, os.path.join(data, name))
            for name in sorted(os.listdir(data))
            if os.path.isdir(os.path.join(data, name))
        }
        self.stats: dict[str, int] = {}
        self.lock = threading.Lock()

    def count(self, kind: str) -> None:
        with self.lock:
            self.stats[kind] = self.stats.get(kind, 0) + 1


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - library signature
            pass

        def _send(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"code": status, "message": message, "errors": [{"message": message}]}})

        def do_GET(self) -> None:  # noqa: N802 - library signature
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            parts = url.path.split("/")
            if url.path == "/_stats":
                with store.lock:
                    return self._send(200, dict(store.stats))
            # /storage/v1/b/{bucket}/o[/{object}]  or  /download/storage/v1/b/{bucket}/o/{object}
            download = parts[1:2] == ["download"]
            if download:
                parts = parts[1:]
            if parts[1:4] != ["storage", "v1", "b"] or len(parts) < 5:
                store.count("other")
                return self._error(501, f"not served: GET {url.path}")
            bucket = store.buckets.get(urllib.parse.unquote(parts[4]))
            if len(parts) == 5:
                store.count("bucket_get")
                return self._send(200, {"kind": "storage#bucket", "name": parts[4]}) if bucket else self._error(404, "")
            if bucket is None:
                store.count("other")
                return self._error(404, "no such bucket")
            if len(parts) == 6 and parts[5] == "o":
                store.count("list_page")
                body = bucket.list(
                    query.get("prefix", ""),
                    query.get("delimiter", ""),
                    query.get("pageToken", ""),
                    min(int(query.get("maxResults", "1000")), 1000),
                )
                return self._send(200, body)
            name = urllib.parse.unquote("/".join(parts[6:]))
            if download or query.get("alt") == "media":
                store.count("object_download")
                if name not in bucket.objects:
                    return self._error(404, "no such object")
                with open(os.path.join(bucket.root, name), "rb") as fh:
                    data = fh.read()
                size, generation = bucket.objects[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-goog-generation", str(generation))
                self.end_headers()
                self.wfile.write(data)
                return None
            store.count("object_get")
            if name not in bucket.objects:
                return self._error(404, "no such object")
            return self._send(200, bucket.resource(name))

        def do_POST(self) -> None:  # noqa: N802 - library signature
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/storage/v1/b":
                store.count("bucket_insert")
                return self._error(409, "bucket exists")
            store.count("other")
            return self._error(501, f"not served: POST {url.path}")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    store = Store(args.data)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(store))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
