"""The request log: never blocks, drops and counts when full, saves slow
requests."""

import json
import threading

from recship.serving.request_log import RequestLog, RequestRecord


def record(
    request_id: str, seconds: float = 0.001, body: bytes = b"x"
) -> RequestRecord:
    return RequestRecord(
        request_id, "pb", 200, 3, seconds, {"model": seconds}, body=body
    )


def test_lines_are_json_with_stages(tmp_path):
    log = RequestLog(tmp_path)
    log.submit(record("r1"))
    log.close()
    (path,) = tmp_path.glob("requests-*.jsonl")
    line = json.loads(path.read_text())
    assert line["request_id"] == "r1" and line["stages_ms"] == {"model": 1.0}
    assert line["slow"] is False


def test_slow_requests_are_saved_for_replay(tmp_path):
    log = RequestLog(tmp_path, long_request_threshold_ms=5, save_long_request=True)
    log.submit(record("fast", 0.001, b"f"))
    log.submit(record("slow", 0.010, b"s"))
    log.close()
    saved = list((tmp_path / "long_requests").iterdir())
    assert [p.name.endswith("-slow.pb") for p in saved] == [True]
    assert saved[0].read_bytes() == b"s"


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    gate = threading.Event()
    log = RequestLog(None, queue_size=2, sinks=[lambda r: gate.wait(10)])
    accepted = [log.submit(record(str(i))) for i in range(6)]
    gate.set()
    log.close()
    # The writer holds one record, two wait; the rest are dropped.
    assert accepted.count(False) == log.dropped >= 3
    assert log.written == accepted.count(True)


def test_a_failing_sink_does_not_stop_the_writer(tmp_path):
    def broken(_: RequestRecord) -> None:
        raise OSError("disk full")

    log = RequestLog(tmp_path, sinks=[broken])
    log.submit(record("a"))
    log.submit(record("b"))
    log.close()
    assert log.written == 2
