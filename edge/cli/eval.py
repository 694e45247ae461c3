"""``vitaledge eval``: accuracy evaluations, one module per target, listed explicitly."""

from edge.cli.targets import target_command

__all__ = ["add_parser"]

add_parser = target_command(
    "eval",
    "measure accuracy against ground truth",
    (
        "edge.evaluation.rppg",
        "edge.evaluation.thermal",
        "edge.evaluation.masks",
        "edge.evaluation.privacy",
        "edge.evaluation.acquisition",
    ),
)
