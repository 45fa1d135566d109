"""Running a service: one process, or several sharing one port.

`recship serve` calls `run_service`. With `workers: 1` the model is served
by the calling process. With more, a supervisor process starts `workers`
server processes; each loads the model itself and binds the same port with
`SO_REUSEPORT`, so the kernel spreads new connections over them, and a
process that dies is started again. The supervisor first binds the port
itself (also with `SO_REUSEPORT`, without listening): that resolves port 0
to a real port and keeps it reserved while workers restart.

Prometheus metrics of all workers are summed through a shared
`PROMETHEUS_MULTIPROC_DIR` (see `metrics.py`).
"""

import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import fields, replace
from multiprocessing.process import BaseProcess
from typing import Any

import torch
import uvicorn
from starlette.applications import Starlette

from recship.errors import ConfigError, ServingError
from recship.serving.app import build_app
from recship.serving.metrics import MULTIPROC_ENV, mark_process_dead
from recship.serving.operations import build_operations
from recship.serving.server import _uvicorn_options, run_server
from recship.serving.service import ServiceOptions, build_ranker
from recship.serving.settings import ServiceSettings

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after its start is not restarted at
# once again and again: restarts wait RESTART_BACKOFF_S.
RESTART_BACKOFF_S = 2.0


def apply_torch_threads(intra_op_threads: int) -> None:
    """Sets torch's intra-op threads for this process (0 keeps the default).

    Inter-op parallelism is set to one thread: requests already run in
    parallel on the worker threads.
    """
    if intra_op_threads > 0:
        torch.set_num_threads(intra_op_threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        # NOTE: torch allows this once, before inter-op work starts; a second
        # service in the same process (tests) keeps the first setting.
        pass


def build_service_app(settings: ServiceSettings) -> Starlette:
    """Loads the model and returns the app `settings` describe.

    Args:
        settings: the service settings; `model_path` is required.
    """
    if not settings.model_path:
        raise ConfigError(
            "no model to serve: set model_path in the service config or pass "
            "--scripted_model_path"
        )
    apply_torch_threads(settings.intra_op_threads)
    ranker = build_ranker(service_options(settings))
    return build_app(
        ranker,
        service_name=settings.name,
        max_body_bytes=settings.max_body_bytes,
        worker_threads=settings.worker_threads,
        max_queue_size=settings.max_queue_size,
        operations=build_operations(settings, ranker),
    )


def service_options(settings: ServiceSettings) -> ServiceOptions:
    """The `ServiceOptions` of `build_ranker` that `settings` set."""
    known = {f.name for f in fields(ServiceOptions)}
    values: dict[str, Any] = {"export_dir": settings.model_path}
    for option in fields(ServiceSettings):
        if option.name in known:
            value = getattr(settings, option.name)
            # Empty strings mean "not set" in the service config.
            values[option.name] = None if value == "" else value
    return ServiceOptions(**values)


def run_service(settings: ServiceSettings) -> None:
    """Serves until interrupted: in this process, or in `workers` processes."""
    if settings.workers == 1:
        run_server(build_service_app(settings), settings.host, settings.port)
        return
    supervisor = Supervisor(settings)
    # SIGTERM (a container stop, a process manager) stops the workers too.
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
    supervisor.start()
    try:
        supervisor.watch()
    except KeyboardInterrupt:
        logger.info("interrupted; stopping %d workers", settings.workers)
    finally:
        supervisor.stop()


class Supervisor:
    """Starts, watches and stops the worker processes of one service.

    Args:
        settings: the service settings; `workers` processes are started.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.port = 0
        self.workers: list[BaseProcess] = []
        self._reservation: socket.socket | None = None
        self._metrics_dir: tempfile.TemporaryDirectory[str] | None = None
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    @property
    def url(self) -> str:
        """Base URL of the service."""
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> int:
        """Reserves the port, starts the workers; returns the port."""
        self._reservation = bind_reuseport(self.settings.host, self.settings.port)
        self.port = self._reservation.getsockname()[1]
        if not os.environ.get(MULTIPROC_ENV):
            self._metrics_dir = tempfile.TemporaryDirectory(prefix="recship-metrics-")
            os.environ[MULTIPROC_ENV] = self._metrics_dir.name
        worker_settings = replace(self.settings, port=self.port, workers=1)
        for index in range(self.settings.workers):
            self.workers.append(self._spawn(worker_settings, index))
        logger.info("supervisor: %d workers on %s", self.settings.workers, self.url)
        return self.port

    def watch(self, poll_s: float = 0.5) -> None:
        """Restarts dead workers until `stop` (blocking)."""
        worker_settings = replace(self.settings, port=self.port, workers=1)
        started = [time.monotonic()] * len(self.workers)
        while not self._stopping.wait(poll_s):
            for index, process in enumerate(self.workers):
                if process.is_alive():
                    continue
                if time.monotonic() - started[index] < RESTART_BACKOFF_S:
                    continue
                logger.warning(
                    "worker %d (pid %s) exited with %s; starting it again",
                    index,
                    process.pid,
                    process.exitcode,
                )
                if process.pid is not None:
                    mark_process_dead(process.pid)
                self.workers[index] = self._spawn(worker_settings, index)
                started[index] = time.monotonic()

    def request_stop(self) -> None:
        """Makes `watch` return (safe from a signal handler)."""
        self._stopping.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops every worker (SIGTERM, then SIGKILL) and frees the port."""
        self._stopping.set()
        for process in self.workers:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("worker pid %s ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.join(1.0)
        self.workers = []
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None
        if self._metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            self._metrics_dir.cleanup()
            self._metrics_dir = None

    def _spawn(self, settings: ServiceSettings, index: int) -> BaseProcess:
        """Starts one worker process."""
        process = self._context.Process(
            target=serve_worker,
            args=(settings, logging.getLogger().level),
            name=f"recship-worker-{index}",
            daemon=True,
        )
        process.start()
        return process


def serve_worker(settings: ServiceSettings, log_level: int) -> None:
    """A worker process: load the model, bind the shared port, serve."""
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s [{os.getpid()}] %(name)s: %(message)s",
    )
    app = build_service_app(settings)
    sock = bind_reuseport(settings.host, settings.port)
    config = uvicorn.Config(app, **_uvicorn_options(), host=settings.host)
    uvicorn.Server(config).run(sockets=[sock])


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT set.

    Raises:
        ServingError: the platform has no SO_REUSEPORT, or the bind failed.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ServingError("this platform has no SO_REUSEPORT; run with workers: 1")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ServingError(f"cannot bind {host}:{port}: {err}") from err
    return sock
