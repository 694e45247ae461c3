"""``vitaledge bench``: speed and memory figures, one module per target, listed explicitly."""

from edge.cli.targets import target_command

__all__ = ["add_parser"]

add_parser = target_command(
    "bench",
    "measure speed and memory",
    ("edge.evaluation.bench_flirone", "edge.evaluation.bench_rppg", "edge.evaluation.bench_privacy"),
)
