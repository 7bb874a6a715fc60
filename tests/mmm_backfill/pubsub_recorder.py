"""A gRPC relay on loopback in front of the Pub/Sub emulator that writes down every request it passes on.

It shows what a client asks of Pub/Sub, byte for byte, including the requests the emulator refuses
but Pub/Sub itself would apply (an expiry lifted by ``UpdateSubscription``). The emulator still
answers every call, refusals included: nothing is faked. Unary calls only (what ``setup`` makes).
"""

from __future__ import annotations

from concurrent import futures

import grpc

#: Seconds the relay waits for the emulator on one call.
UPSTREAM_TIMEOUT = 30.0


class PubSubRecorder:
    """Relay to ``upstream`` (host:port); ``host`` is where clients reach it; ``calls`` what they sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[tuple[str, bytes]] = []
        self.host = ""

    def __enter__(self) -> PubSubRecorder:
        self._channel = grpc.insecure_channel(self.upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers([_Relay(self)])
        self.host = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
        self._channel.close()

    def requests(self, method: str, message_type):  # noqa: ANN001, ANN201 - a proto-plus message class
        """Every request of ``method`` (e.g. ``UpdateSubscription``) sent so far, decoded as ``message_type``."""
        return [message_type.deserialize(body) for name, body in self.calls if name.rsplit("/", 1)[-1] == method]

    def forward(self, method: str, body: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append((method, body))
        try:
            return self._channel.unary_unary(method)(body, timeout=UPSTREAM_TIMEOUT)
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details())
            raise  # abort raises; this line is never reached


class _Relay(grpc.GenericRpcHandler):
    """Passes every unary call through as raw bytes (no serializers on either side)."""

    def __init__(self, recorder: PubSubRecorder) -> None:
        self.recorder = recorder

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        return grpc.unary_unary_rpc_method_handler(lambda body, context: self.recorder.forward(method, body, context))
