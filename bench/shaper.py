"""A latency and bandwidth shaper: a TCP relay on loopback that makes a storage emulator answer like a cloud.

``python -m bench.shaper --upstream http://127.0.0.1:PORT [--delay-ms 30] [--rate-mbps 100]`` relays
every connection to the upstream server. Each request waits ``delay`` before it is forwarded (the
round trip of a cloud call before its first byte), and each connection carries at most ``rate``
bytes a second in each direction (one stream's bandwidth; parallel connections each get their own).

It sees bytes, not HTTP: a request is whatever a client sends after the server last answered on that
connection (HTTP/1.1 keep-alive without pipelining, as the storage clients use it). No root, no
``tc``: only the processes pointed at it are shaped. It runs in its own process, so its CPU shows as
the shaper's and not as the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import urllib.parse

#: Bytes read from a socket at a time; 256 KiB is 2.6 ms at 100 MB/s, well above the timer's grain.
CHUNK = 256 * 1024
#: Defaults of the benchmark: a cloud storage call's first-byte latency and one stream's rate.
DEFAULT_DELAY_MS = 30.0
DEFAULT_RATE_MBPS = 100.0


class Link:
    """One client connection and its upstream: the per-request delay and the per-direction rate."""

    def __init__(self, delay: float, rate: float) -> None:
        self.delay, self.rate = delay, rate
        self.answered = True  # the server spoke since the client's last request (or nothing was sent yet)

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, requests: bool) -> None:
        """Copy ``reader`` to ``writer`` at ``rate``; on the client's side, delay each new request."""
        loop = asyncio.get_running_loop()
        free_at = 0.0
        try:
            while chunk := await reader.read(CHUNK):
                if requests and self.answered and self.delay:
                    self.answered = False
                    await asyncio.sleep(self.delay)
                elif not requests:
                    self.answered = True
                if self.rate:
                    now = loop.time()
                    free_at = max(now, free_at) + len(chunk) / self.rate
                    await asyncio.sleep(free_at - now)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def serve(upstream: tuple[str, int], port: int, delay: float, rate: float) -> None:
    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        link = Link(delay, rate)
        await asyncio.gather(
            link.pump(client_reader, server_writer, requests=True),
            link.pump(server_reader, client_writer, requests=False),
        )

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print(f"shaping 127.0.0.1:{port} -> {upstream[0]}:{upstream[1]}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.shaper", description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="base URL of the server to relay to")
    p.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    p.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS, help="delay of each request (default 30)")
    p.add_argument("--rate-mbps", type=float, default=DEFAULT_RATE_MBPS, help="MB/s per connection (0: unlimited)")
    args = p.parse_args(argv)
    parsed = urllib.parse.urlsplit(args.upstream)
    upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
    asyncio.run(serve(upstream, args.port, args.delay_ms / 1000, args.rate_mbps * 1e6))


if __name__ == "__main__":
    main()
