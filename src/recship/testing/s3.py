"""A local S3-compatible server (moto) on loopback, for storage tests."""

import contextlib
from collections.abc import Iterator

from moto.server import ThreadedMotoServer

from recship.serving.server import free_loopback_port

# Dummy credentials: moto accepts any; they must never be real ones.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "recship-test",
    "AWS_SECRET_ACCESS_KEY": "recship-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto on 127.0.0.1 and yield its endpoint URL; stop it after."""
    port = free_loopback_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
