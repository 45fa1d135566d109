import pytest

from recship.errors import ServingError
from recship.testing.redis_server import RedisServer, require_redis_server


def test_missing_redis_server_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ServingError, match="apt-get install -y redis-server"):
        require_redis_server()


def test_server_stops_and_starts_again_on_its_port(tmp_path) -> None:
    with RedisServer(tmp_path) as server:
        port = server.port
        server.stop()
        assert not server.running
        server.start()
        assert server.running and server.port == port
    assert not server.running
