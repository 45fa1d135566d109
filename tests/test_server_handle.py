"""ServerHandle: a real uvicorn server on a free loopback port."""

import socket

import httpx
import pytest

from recship.errors import ServingError
from recship.serving.app import build_app
from recship.serving.request import RankRequest, RankResponse
from recship.serving.server import ServerHandle


class NeverReady:
    ready = False

    def rank(self, request: RankRequest) -> RankResponse:
        raise NotImplementedError


def test_server_handle_serves_on_loopback_and_stops() -> None:
    with ServerHandle(build_app(NeverReady())) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/health", trust_env=False).status_code == 200
        port = server.port

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_two_servers_get_different_ports() -> None:
    with ServerHandle(build_app(NeverReady())) as first:
        with ServerHandle(build_app(NeverReady())) as second:
            assert first.port != second.port


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(ServingError, match="not started"):
        _ = ServerHandle(build_app(NeverReady())).port
