"""Request logging, slow-request logging and saving, off the request path.

Request handlers hand a finished `RequestRecord` to `RequestLog.submit`,
which never blocks: the record goes onto a bounded queue, or is dropped and
counted when the queue is full. One background thread then

- appends the record as a JSON line to `<request_log_path>/requests-<pid>.jsonl`
  (one file per process, so processes never interleave lines);
- for a request slower than `long_request_threshold` ms, logs its time per
  stage, and with `save_long_request` saves its body under
  `<request_log_path>/long_requests/` for `recship replay`;
- passes the record to extra sinks (the warm-up recorder).
"""

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

LONG_REQUESTS_DIR = "long_requests"

# File suffix of a saved body, by protocol.
BODY_SUFFIX = {"pb": ".pb", "json": ".json"}


@dataclass
class RequestRecord:
    """What the server knows about one answered request.

    Attributes:
        request_id: the request's id.
        protocol: "pb" or "json".
        status: the HTTP status answered.
        items: candidate items (0 when the request did not parse).
        seconds: end-to-end time in the server.
        stages: seconds per stage (parse, features, fg, model, respond).
        model_version: the version that scored it ("" when none did).
        body: the request body, kept only when a sink may need it.
        error: the error message of a failed request.
        time: wall-clock time the request finished (epoch seconds).
    """

    request_id: str
    protocol: str
    status: int
    items: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    body: bytes = b""
    error: str = ""
    time: float = field(default_factory=time.time)

    def to_json(self, slow: bool) -> str:
        """The record's log line (without the body)."""
        document = {
            "time": round(self.time, 6),
            "request_id": self.request_id,
            "protocol": self.protocol,
            "status": self.status,
            "items": self.items,
            "latency_ms": round(self.seconds * 1000, 3),
            "stages_ms": {k: round(v * 1000, 3) for k, v in self.stages.items()},
            "model_version": self.model_version,
            "slow": slow,
            "pid": os.getpid(),
        }
        if self.error:
            document["error"] = self.error[:500]
        return json.dumps(document)


Sink = Callable[[RequestRecord], None]


class RequestLog:
    """A bounded queue of request records and the thread that writes them.

    Args:
        directory: where logs and slow requests go; None writes no files (slow
            requests are still logged through `logging`).
        queue_size: records that may wait for the writer.
        long_request_threshold_ms: slower requests are slow; 0 disables.
        save_long_request: save slow requests' bodies for replay.
        sinks: more consumers of every record, run on the writer thread.
    """

    def __init__(
        self,
        directory: str | Path | None,
        *,
        queue_size: int = 10000,
        long_request_threshold_ms: float = 0.0,
        save_long_request: bool = False,
        sinks: list[Sink] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory else None
        self.threshold_s = long_request_threshold_ms / 1000
        self.save_long_request = save_long_request and self.directory is not None
        self.sinks = list(sinks or [])
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[RequestRecord | None] = queue.Queue(queue_size)
        self._file: IO[str] | None = None
        self._thread = threading.Thread(
            target=self._run, name="recship-request-log", daemon=True
        )
        self._thread.start()

    @property
    def keeps_bodies(self) -> bool:
        """Whether records should carry their body (a sink or saving needs it)."""
        return self.save_long_request or bool(self.sinks)

    @property
    def has_work(self) -> bool:
        """Whether a record would be written, logged as slow or passed to a
        sink; without any, the server skips building records (and waking
        the writer thread on every request)."""
        return self.directory is not None or bool(self.sinks) or self.threshold_s > 0

    def is_slow(self, seconds: float) -> bool:
        """Whether a request of `seconds` is over the slow threshold."""
        return self.threshold_s > 0 and seconds > self.threshold_s

    def submit(self, record: RequestRecord) -> bool:
        """Queues a record without waiting; False (and counted) when full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self, timeout_s: float = 5.0) -> None:
        """Waits until every queued record is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self, timeout_s: float = 5.0) -> None:
        """Writes what is queued, then stops the thread."""
        self.flush(timeout_s)
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            logger.warning("request log queue still full at shutdown")
        self._thread.join(timeout_s)

    def _run(self) -> None:
        """Writer thread: one record at a time until `None`."""
        while True:
            record = self._queue.get()
            try:
                if record is None:
                    if self._file is not None:
                        self._file.close()
                    return
                self._write(record)
            except Exception:  # noqa: BLE001 - the writer must outlive bad records
                logger.exception("request log: could not write a record")
            finally:
                self._queue.task_done()

    def _write(self, record: RequestRecord) -> None:
        """Logs, saves and passes on one record."""
        slow = self.is_slow(record.seconds)
        if self.directory is not None:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"requests-{os.getpid()}.jsonl"
                self._file = path.open("a", encoding="utf-8")
            self._file.write(record.to_json(slow) + "\n")
            if self._queue.empty():
                self._file.flush()
        self.written += 1

        if slow:
            logger.warning(
                "slow request %s: %.1f ms, stages (ms) %s",
                record.request_id,
                record.seconds * 1000,
                json.dumps({k: round(v * 1000, 2) for k, v in record.stages.items()}),
            )
            if self.save_long_request and record.body:
                save_body(self.directory / LONG_REQUESTS_DIR, record)
        for sink in self.sinks:
            sink(record)


def save_body(directory: Path, record: RequestRecord) -> Path:
    """Writes a record's body atomically as `<time>-<request id>.<pb|json>`."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record.time))
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in record.request_id)
    path = directory / f"{stamp}-{safe_id}{BODY_SUFFIX.get(record.protocol, '.bin')}"
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(record.body)
    partial.replace(path)
    return path
