"""A real redis-server on a free loopback port, for tests.

`RedisServer` starts Debian's `redis-server` without persistence in a
temporary directory, and can stop and start it again on the same port (to
test what the feature store does while Redis is away):

    with RedisServer(tmp_path) as server:
        load_table_to_redis(table, redis_url=server.url, ...)
        server.stop()
        ...
        server.start()

When `redis-server` is not installed, `require_redis_server` says how to
install it; tests must fail on that, never skip.
"""

import math
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pyarrow as pa

from recship.errors import ServingError
from recship.serving.server import free_loopback_port

INSTALL_HINT = (
    "redis-server is not installed; the feature store tests need a real one. "
    "Install it with `apt-get update && apt-get install -y redis-server` "
    "(scripts/test.sh and .ci/run do this when run as root)."
)


def require_redis_server() -> str:
    """The path of `redis-server`; raises with the install command if absent."""
    path = shutil.which("redis-server")
    if path is None:
        raise ServingError(INSTALL_HINT)
    return path


class RedisServer:
    """One redis-server process bound to 127.0.0.1.

    Args:
        workdir: directory for the server's files (none are kept).
        startup_timeout_s: how long to wait for the server to answer.
    """

    def __init__(self, workdir: str | Path, startup_timeout_s: float = 10.0) -> None:
        self.binary = require_redis_server()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout_s = startup_timeout_s
        self.port = free_loopback_port()
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> "RedisServer":
        """Starts the server (again) on `port`; returns once it answers PING."""
        if self.running:
            return self
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - the child owns it
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--protected-mode", "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )  # fmt: skip
        log.close()
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise ServingError(
            f"redis-server on 127.0.0.1:{self.port} did not start within "
            f"{self.startup_timeout_s}s; its log ends with:\n{log}"
        )

    def stop(self) -> None:
        """Stops the server (its data is gone: nothing is persisted)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def every_type_table() -> pa.Table:
    """One column of each type the Redis store holds, with edge values."""
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "i8": pa.array([-128, None, 127], pa.int8()),
            "i64": pa.array([2**63 - 1, -(2**63), None], pa.int64()),
            "u32": pa.array([0, 4294967295, None], pa.uint32()),
            "f64": pa.array([0.1, 1 / 3, -0.0], pa.float64()),
            "f64_edge": pa.array([math.inf, -math.inf, 5e-324], pa.float64()),
            "f32": pa.array([0.1, None, 3.4e38], pa.float32()),
            "flag": pa.array([True, False, None], pa.bool_()),
            "text": pa.array(["a|b", "", None], pa.string()),
            "unicode": pa.array(["é中文", "x y", "\t"], pa.large_string()),
            "ints": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
            "words": pa.array([["x", None], ["y"], None], pa.list_(pa.string())),
            "floats": pa.array([[0.1, -0.0], None, [1e300]], pa.list_(pa.float64())),
        }
    )
