"""The benchmark's outputs: a Markdown report and a PNG plot."""

from pathlib import Path

from recship.tools.bench.workload import LoadResult


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def target_ratios(report) -> dict[str, float]:
    """DESIGN.md §9 ratios of one run (see docs/benchmarks.md): overhead and
    first-request ratios at the 200-item size (or the smallest benched),
    p99/p50 and throughput against TorchServe at the top concurrency."""
    ours = report.results.get("recship", {})
    base = report.results.get("torchserve", {})
    sizes = sorted({items for items, _ in ours})
    if not sizes:
        return {}
    size = 200 if 200 in sizes else sizes[0]
    ratios = {}
    steady = ours.get((size, 1))
    if steady is not None:
        ratios["overhead_p50_c1_over_forward"] = _ratio(
            steady.percentile(50), report.forward_ms["recship"][size]
        )
        ratios["first_over_steady"] = _ratio(
            report.first_request_ms["recship"], steady.percentile(50)
        )
    top = max(c for _, c in ours)
    for items in sizes:
        loaded = ours.get((items, top))
        if loaded is None:
            continue
        ratios[f"p99_over_p50_c{top}_{items}"] = _ratio(
            loaded.percentile(99), loaded.percentile(50)
        )
        if (items, top) in base:
            ratios[f"throughput_vs_torchserve_c{top}_{items}"] = _ratio(
                loaded.items_per_s, base[(items, top)].items_per_s
            )
    return ratios


def render_markdown(report) -> str:
    """The results table, the per-server figures and the target ratios."""
    lines = [
        "| server | items | concurrency | requests | p50 ms | p99 ms | items/s "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server, results in report.results.items():
        for (items, concurrency), result in sorted(results.items()):
            lines.append(
                f"| {server} | {items} | {concurrency} | {len(result.latencies_ms)} "
                f"| {result.percentile(50):.1f} | {result.percentile(99):.1f} "
                f"| {result.items_per_s:,.0f} | {result.errors} |"
            )
    lines += [
        "",
        "| server | forward 200 ms | forward 1000 ms | cold start s | first "
        "request ms | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for server in report.results:
        forward = report.forward_ms.get(server, {})
        lines.append(
            f"| {server} | {forward.get(200, float('nan')):.1f} "
            f"| {forward.get(1000, float('nan')):.1f} "
            f"| {report.cold_start_s.get(server, float('nan')):.1f} "
            f"| {report.first_request_ms.get(server, float('nan')):.1f} "
            f"| {report.rss_mb.get(server, float('nan')):.0f} |"
        )
    lines += ["", "| target ratio | value |", "|---|---:|"]
    lines += [
        f"| {name} | {value:.2f} |" for name, value in target_ratios(report).items()
    ]
    return "\n".join(lines) + "\n"


def save_plot(
    results: dict[str, dict[tuple[int, int], LoadResult]], path: Path
) -> None:
    """Items/s and p50 latency by concurrency, one line per server and size."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    for server, by_level in results.items():
        for items in sorted({i for i, _ in by_level}):
            levels = sorted(c for i, c in by_level if i == items)
            cells = [by_level[(items, c)] for c in levels]
            label = f"{server}, {items} items"
            left.plot(levels, [c.items_per_s for c in cells], marker="o", label=label)
            right.plot(
                levels, [c.percentile(50) for c in cells], marker="o", label=label
            )
    left.set(xlabel="concurrency", ylabel="items scored / s", title="throughput")
    right.set(xlabel="concurrency", ylabel="p50 latency (ms)", title="latency")
    right.set_yscale("log")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
