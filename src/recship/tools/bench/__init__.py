"""Benchmarks: `recship bench serve` (serving against TorchServe)."""
