"""The servers under test, each a real process on loopback.

`start_recship` runs `recship serve` on the tiled export; `start_torchserve`
runs TorchServe (from .venv-torchserve) on the plain export with the
handler in `ts_handler.py`. Both report cold start (process start to ready)
and the resident memory of their whole process tree.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from recship.data.taobao import ITEM_ID
from recship.errors import RecshipError
from recship.serving.server import free_loopback_port

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[4]
TORCHSERVE_VENV = REPO_ROOT / ".venv-torchserve"
HANDLER_FILE = Path(__file__).with_name("ts_handler.py")


@dataclass
class ServerProcess:
    """A started server: where to send requests and how to stop it."""

    name: str
    process: subprocess.Popen
    rank_url: str
    cold_start_s: float
    log_path: Path

    def rss_mb(self) -> float:
        """Resident memory of the server's process tree, in MiB."""
        return sum(_rss_kb(pid) for pid in _process_tree(self.process.pid)) / 1024

    def stop(self) -> None:
        """Terminates the process group and waits."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait_ready(
    process: subprocess.Popen, is_ready, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RecshipError(f"server exited during startup; see {log_path}")
        try:
            if is_ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise RecshipError(f"server not ready within {timeout_s:.0f} s; see {log_path}")


def start_recship(
    export_dir: Path,
    items_path: str,
    workdir: Path,
    *,
    worker_threads: int,
    torch_threads: int,
    extra_args: list[str] | None = None,
) -> ServerProcess:
    """`recship serve` in a subprocess; returns once `/ready` answers 200."""
    port = free_loopback_port()
    log_path = workdir / "recship-serve.log"
    command = [
        sys.executable, "-m", "recship.cli.main", "serve",
        "--scripted_model_path", str(export_dir),
        "--item_table", items_path,
        "--item_id_column", ITEM_ID,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--worker_threads", str(worker_threads),
        *(extra_args or []),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(torch_threads))
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def is_ready() -> bool:
        # With --workers N the kernel spreads new connections over N
        # processes that warm up separately: ready only when 16 fresh
        # connections in a row all land on a ready process.
        return all(
            httpx.get(f"{url}/ready", timeout=2).status_code == 200 for _ in range(16)
        )

    _wait_ready(process, is_ready, log_path, timeout_s=300)
    cold = time.perf_counter() - started
    return ServerProcess("recship", process, f"{url}/v1/rank", cold, log_path)


def torchserve_available() -> bool:
    """True when .venv-torchserve holds TorchServe and Java runs."""
    return (TORCHSERVE_VENV / "bin" / "torchserve").exists() and bool(
        shutil.which("java")
    )


def _write_mar(home: Path, store: Path, export_dir: Path, items_path: str) -> None:
    # The archive holds the handler and a small JSON of paths; the model is
    # read from the export directory, so nothing large is copied.
    settings = home / "bench_settings.json"
    settings.write_text(
        json.dumps(
            {"export_dir": str(export_dir), "items_path": items_path, "id": ITEM_ID}
        )
    )
    command = [
        str(TORCHSERVE_VENV / "bin" / "torch-model-archiver"),
        "--model-name", "bench", "--version", "1",
        "--handler", str(HANDLER_FILE),
        "--extra-files", str(settings),
        "--export-path", str(store),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RecshipError(f"torch-model-archiver failed: {done.stderr[-2000:]}")


def start_torchserve(
    export_dir: Path,
    items_path: str,
    workdir: Path,
    *,
    workers: int,
    torch_threads: int,
) -> ServerProcess:
    """TorchServe on loopback only, token auth off; returns once every worker
    of the model is READY."""
    if not torchserve_available():
        raise RecshipError(
            "TorchServe is not set up: run scripts/setup_torchserve.sh (needs Java 17)"
        )
    home = workdir / "torchserve"
    shutil.rmtree(home, ignore_errors=True)
    store = home / "model-store"
    store.mkdir(parents=True)
    _write_mar(home, store, export_dir, items_path)
    ports = {
        name: free_loopback_port() for name in ("inference", "management", "metrics")
    }
    (home / "config.properties").write_text(
        "\n".join(
            [
                f"inference_address=http://127.0.0.1:{ports['inference']}",
                f"management_address=http://127.0.0.1:{ports['management']}",
                f"metrics_address=http://127.0.0.1:{ports['metrics']}",
                "disable_token_authorization=true",
                "enable_model_api=false",
                "install_py_dep_per_model=false",
                f"default_workers_per_model={workers}",
                "job_queue_size=1000",
                "default_response_timeout=120",
                f"model_store={store}",
                "load_models=bench.mar",
            ]
        )
        + "\n"
    )
    log_path = workdir / "torchserve.log"
    env = dict(
        os.environ,
        PATH=f"{TORCHSERVE_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(REPO_ROOT / "src"),
        OMP_NUM_THREADS=str(torch_threads),
        LOG_LOCATION=str(home / "logs"),
        METRICS_LOCATION=str(home / "logs"),
    )
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(TORCHSERVE_VENV / "bin" / "torchserve"), "--start", "--foreground",
        "--ncs", "--disable-token-auth",
        "--ts-config", str(home / "config.properties"),
        "--model-store", str(store),
    ]  # fmt: skip
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            start_new_session=True,
        )
    management = f"http://127.0.0.1:{ports['management']}/models/bench"

    def is_ready() -> bool:
        answer = httpx.get(management, timeout=2)
        if answer.status_code != 200:
            return False
        states = [w.get("status") for w in answer.json()[0].get("workers", [])]
        return len(states) == workers and all(s == "READY" for s in states)

    _wait_ready(process, is_ready, log_path, timeout_s=300)
    cold = time.perf_counter() - started
    url = f"http://127.0.0.1:{ports['inference']}/predictions/bench"
    return ServerProcess("torchserve", process, url, cold, log_path)
