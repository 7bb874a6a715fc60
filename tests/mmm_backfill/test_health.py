"""The probe server answers /healthz, /readyz and /metrics the way Kubernetes and Prometheus expect."""

import socket
import threading
import urllib.error
import urllib.request

import pytest

from mmm_backfill import metrics
from mmm_backfill.health import serve


@pytest.fixture
def readiness():
    flag = threading.Event()
    server = serve(0, ready=flag.is_set, host="127.0.0.1")
    yield server, flag
    server.shutdown()


def get(server, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_port_zero_binds_a_free_port(readiness):
    server, _ = readiness
    assert server.port > 0


def test_healthz_is_200_while_the_process_runs_even_when_not_ready(readiness):
    server, _ = readiness
    assert get(server, "/healthz")[0] == 200


def test_readyz_follows_the_ready_callable(readiness):
    server, flag = readiness
    assert get(server, "/readyz")[0] == 503
    flag.set()
    assert get(server, "/readyz")[0] == 200
    flag.clear()
    assert get(server, "/readyz")[0] == 503


def test_readyz_is_503_when_the_check_raises():
    def broken() -> bool:
        raise RuntimeError("stream gone")

    server = serve(0, ready=broken, host="127.0.0.1")
    try:
        assert get(server, "/readyz")[0] == 503
    finally:
        server.shutdown()


def test_metrics_serves_the_project_metrics_in_prometheus_text_format(readiness):
    server, _ = readiness
    metrics.ENQUEUED.inc()
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert "# TYPE mmm_backfill_enqueued_total counter" in body
    assert "# TYPE mmm_backfill_run_seconds histogram" in body


def test_unknown_path_is_404(readiness):
    server, _ = readiness
    assert get(server, "/nope")[0] == 404


def test_shutdown_releases_the_port():
    server = serve(0, ready=lambda: True, host="127.0.0.1")
    port = server.port
    server.shutdown()
    server.shutdown()  # twice is harmless
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))


def test_default_host_listens_on_all_interfaces():
    server = serve(0, ready=lambda: True)
    try:
        assert get(server, "/healthz")[0] == 200
    finally:
        server.shutdown()
