"""Checks at start that what the configuration names is there, so that a typo fails at once and named.

The config model validates values; whether a file exists is a fact about this machine at start, checked
by ``run`` (``--check-config`` too) and ``record`` before any source opens.
"""

from __future__ import annotations

from pathlib import Path

import edge.config
from edge.config import E4CsvConfig, FlirJpegConfig, ReplayConfig, VideoFileSourceConfig, VitalEdgeConfig
from fusion.errors import ConfigError

__all__ = ["check_files", "no_file_hint"]


def _required_files(cfg: VitalEdgeConfig) -> list[tuple[str, Path]]:
    """Each file the configuration names that must exist before start, with its key path."""
    files: list[tuple[str, Path]] = []
    for index, source in enumerate(cfg.sources):
        if isinstance(source, FlirJpegConfig | E4CsvConfig | VideoFileSourceConfig | ReplayConfig):
            files.append((f"sources.{index}.{source.kind}.path", source.path))
    if cfg.heart_rate.method == "onnx" and cfg.heart_rate.model is not None:
        files.append(("heart_rate.model", cfg.heart_rate.model))
    if cfg.heart_rate.face_detector is not None:
        files.append(("heart_rate.face_detector", cfg.heart_rate.face_detector))
    if cfg.heart_rate.greyscale.colouriser is not None:
        files.append(("heart_rate.greyscale.colouriser", cfg.heart_rate.greyscale.colouriser))
    if cfg.mqtt.password_file is not None:
        files.append(("mqtt.password_file", cfg.mqtt.password_file))
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        if (path := getattr(cfg.mqtt, key)) is not None:
            files.append((f"mqtt.{key}", path))
    return files


def check_files(cfg: VitalEdgeConfig, where: str) -> None:
    """Check that every file the configuration names exists, so that a typo fails at start, not as retries.

    Args:
        cfg: the validated configuration.
        where: the configuration file (or "the environment"), named in the message.

    Raises:
        ConfigError: a named file does not exist; the message gives key path and file.
    """
    missing = [(key, path) for key, path in _required_files(cfg) if not path.exists()]
    if missing:
        key, path = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"{where}: {key}: no such file: {path}{more}")


def no_file_hint() -> str:
    """Where ``config_path`` looked, for the message when it found no file."""
    return f"no configuration file found (no --config, $VITALEDGE_CONFIG unset, no {edge.config.DEFAULT_CONFIG})"
