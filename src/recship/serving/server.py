"""Running the app under uvicorn: in the foreground, or in a background thread.

`run_server` is what `recship serve` calls. `ServerHandle` is for tests and
the demo: a real server on a free loopback port, stopped on exit.
"""

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from recship.errors import ServingError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    For starting a child server (or a test peer) on a port chosen in advance;
    another process could take it in between, which tests accept.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_server(app: ASGIApp, host: str = DEFAULT_HOST, port: int = 8080) -> None:
    """Serves `app` until interrupted (blocking).

    Logging is left to the caller's configuration; uvicorn's access log is off
    because the server keeps its own request log and metrics.

    Args:
        app: the app of `build_app`.
        host: address to bind; loopback unless told otherwise.
        port: port to bind.
    """
    uvicorn.run(app, **_uvicorn_options(), host=host, port=port)


class ServerHandle:
    """A uvicorn server in a background thread, for tests and demos.

    Binds a free port (port 0) on loopback, returns from `__enter__` once the
    server accepts connections, and stops it on `__exit__`:

        with ServerHandle(build_app(ranker)) as server:
            httpx.get(server.url + "/health")

    Args:
        app: the app to serve.
        host: address to bind.
        startup_timeout_s: how long to wait for the server to accept.
    """

    def __init__(
        self, app: ASGIApp, host: str = DEFAULT_HOST, startup_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._socket is None:
            raise ServingError("server is not started; use it as a context manager")
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321`, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> "ServerHandle":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Binds, starts the server thread, and waits until it accepts."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, 0))

        config = uvicorn.Config(self.app, **_uvicorn_options(), host=self.host)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"recship-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_accepting()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Asks the server to finish and waits for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("server thread did not stop within %.1f s", timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None

    def _wait_until_accepting(self) -> None:
        """Polls until uvicorn reports started and a connection succeeds."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                self.stop()
                raise ServingError("server thread exited during startup; see the log")
            if self._server is not None and self._server.started:
                try:
                    with socket.create_connection((self.host, self.port), timeout=1.0):
                        return
                except OSError:
                    pass
            time.sleep(0.01)
        self.stop()
        raise ServingError(
            f"server did not accept connections within {self.startup_timeout_s} s"
        )


def _uvicorn_options() -> dict[str, object]:
    """Options shared by both ways of running: no logging config of uvicorn's
    own, no websockets, no access log, a bounded graceful shutdown."""
    return {
        "log_config": None,
        "access_log": False,
        "ws": "none",
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
    }
