"""`--is_profiling`: a torch profiler trace of a predict run and its summary.

The run's stages (`fg`, `model`, `write`) are marked as profiler ranges, so
the summary shows how the time splits between feature generation, the
model (and the operators inside it) and writing.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from torch.profiler import ProfilerActivity, profile, record_function


class Profiler:
    """A torch profiler that does nothing unless enabled.

    Args:
        enabled: record; otherwise every method is a no-op.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._profile = profile(activities=[ProfilerActivity.CPU]) if enabled else None

    def __enter__(self) -> "Profiler":
        if self._profile is not None:
            self._profile.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._profile is not None:
            self._profile.__exit__(*exc_info)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Mark a stage of the run as a profiler range named `predict.<name>`."""
        if self._profile is None:
            yield
            return
        with record_function(f"predict.{name}"):
            yield

    def save(self, trace_path: Path, row_limit: int = 20) -> tuple[str, str]:
        """Write the Chrome trace; return its path and the summary table."""
        if self._profile is None:
            raise RuntimeError("profiling was not enabled")
        self._profile.export_chrome_trace(str(trace_path))
        summary = self._profile.key_averages().table(
            sort_by="cpu_time_total", row_limit=row_limit
        )
        return str(trace_path), summary
