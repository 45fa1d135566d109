"""Calling a recship server with the public eas-prediction SDK, from tests.

The SDK needs protobuf <= 3.20.3, so it lives in its own virtual environment
(`.venv-eas`, made by `scripts/setup_eas_client.sh`) and runs as a
subprocess: `run_eas_client` sends one request through
`recship/testing/eas_client.py` and returns what the SDK parsed.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from recship.errors import RecshipError, ServingError

REPO_ROOT = Path(__file__).resolve().parents[3]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_eas_client.sh"
CLIENT_SCRIPT = Path(__file__).with_name("eas_client.py")
EXIT_REFUSED = 3  # eas_client.py's exit code when the server refuses


def eas_venv() -> Path:
    """The SDK's virtual environment: `$RECSHIP_EAS_VENV` or `.venv-eas`."""
    return Path(os.environ.get("RECSHIP_EAS_VENV", REPO_ROOT / ".venv-eas"))


def setup_eas_client(timeout_s: float = 600.0) -> Path:
    """Creates or reuses the SDK's virtual environment.

    Args:
        timeout_s: limit for a first install.

    Returns:
        Its Python interpreter.

    Raises:
        RecshipError: the setup script failed (for example, no package index).
    """
    env = {**os.environ, "RECSHIP_EAS_VENV": str(eas_venv())}
    result = subprocess.run(
        ["bash", str(SETUP_SCRIPT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RecshipError(
            f"{SETUP_SCRIPT.name} failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return eas_venv() / "bin" / "python"


def run_eas_client(
    url: str, service: str, request: dict[str, Any], timeout_s: float = 60.0
) -> dict[str, Any]:
    """Sends one request with the SDK's `TorchRecRequest` + `PredictClient`.

    Args:
        url: server base URL on loopback, e.g. `ServerHandle.url`.
        service: the `<service>` of `/api/predict/<service>`.
        request: the request, in the JSON form `eas_client.py` documents.
        timeout_s: limit for the whole call, setup excluded.

    Returns:
        `{"item_ids", "outputs": {name: [values]}, "shapes",
        "generate_features", "raw_features"}` as the SDK parsed them.

    Raises:
        ServingError: the server answered an error; `status` is its HTTP
            status and the message its body.
        RecshipError: the SDK environment or the client script failed.
    """
    python = setup_eas_client()
    with tempfile.TemporaryDirectory(prefix="recship-eas-") as tmp:
        request_path = Path(tmp) / "request.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        result = subprocess.run(
            [str(python), str(CLIENT_SCRIPT), url, service, str(request_path)],
            env={**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    lines = result.stdout.strip().splitlines()
    if result.returncode not in (0, EXIT_REFUSED) or not lines:
        raise RecshipError(
            f"eas_client.py failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    reply = json.loads(lines[-1])
    if result.returncode == EXIT_REFUSED:
        error = reply["error"]
        raise ServingError(error["message"], status=int(error["status"]))
    return reply
