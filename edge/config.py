"""One configuration tree, read from one YAML file and validated once (STYLE: edge/).

Environment variables override the file: ``VITALEDGE_MQTT__QOS=2`` sets ``mqtt.qos``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from fusion.errors import ConfigError
from fusion.hrtrack import DEFAULT_TRACKER, TrackerSettings
from fusion.offset import PAPER_PALM, PAPER_WRIST
from fusion.samples import PlanckConstants

__all__ = [
    "DEFAULT_CONFIG",
    "BleThermometerConfig",
    "E4BleConfig",
    "E4CsvConfig",
    "E4ServerConfig",
    "FlirJpegConfig",
    "FlirOneConfig",
    "HeartRateConfig",
    "HomeAssistantConfig",
    "MetricsConfig",
    "MqttConfig",
    "OutboxConfig",
    "OverlayConfig",
    "PiCameraConfig",
    "PlanckConfig",
    "PrivacyConfig",
    "ReplayConfig",
    "ServiceConfig",
    "SourceConfig",
    "Strict",
    "SyntheticSourceConfig",
    "ThermalConfig",
    "UvcThermalConfig",
    "VideoFileSourceConfig",
    "VitalEdgeConfig",
    "WebcamConfig",
    "add_config_option",
    "config_path",
    "load_config",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # unknown key -> error that names it


# --- sources: one model per kind, chosen by `kind` ------------------------------------------------


class SyntheticSourceConfig(Strict):
    """The built-in simulated rig: webcam, FLIR-like thermal camera and wristband, with ground truth."""

    kind: Literal["synthetic"]
    name: str = "rig"
    seed: int = Field(default=1, description="the rig is deterministic for a given seed")
    realtime: bool = Field(default=True, description="pace samples at real time; false: as fast as possible")
    duration_s: float | None = Field(default=None, gt=0, description="stop after this long; unset: forever")


class PlanckConfig(Strict):
    """A FLIR unit's Planck constants; ``vitaledge flir-constants PHOTO.jpg`` prints them for yours."""

    r1: float = Field(gt=0)
    r2: float = Field(gt=0)
    b: float = Field(gt=0)
    f: float = Field(ge=0)
    o: float
    emissivity: float = Field(default=0.98, gt=0, le=1, description="0.98: human skin")
    reflected_c: float = Field(default=20.0, description="reflected apparent temperature, °C")
    provenance: str = Field(min_length=1, description="where the constants came from")

    def to_constants(self) -> PlanckConstants:
        return PlanckConstants(**self.model_dump())


# Constants from the camera-info record of a FLIR ONE app photo (flir_example.jpg in
# Nervengift/read_thermal.py); another unit's are close, not equal: replace them with your own.
DEFAULT_FLIRONE_PLANCK = PlanckConfig(
    r1=17837.53125,
    r2=0.012332781217992306,
    b=1450.4000244140625,
    f=1.0,
    o=-1143.0,
    provenance="defaults: another FLIR ONE's camera info (read_thermal.py flir_example.jpg), not this unit",
)


class FlirOneConfig(Strict):
    """FLIR ONE thermal camera on USB (09cb:1996)."""

    kind: Literal["flirone"]
    name: str = "thermal"
    planck: PlanckConfig = DEFAULT_FLIRONE_PLANCK
    decode_visible: bool = Field(default=True, description="decode the sled's 1440×1080 visible JPEG")
    queue_size: int = Field(default=4, ge=1, le=256)


class FlirJpegConfig(Strict):
    """A FLIR radiometric JPEG played as a thermal camera (its own Planck constants)."""

    kind: Literal["flir-jpeg"]
    name: str = "thermal"
    path: Path
    rate_hz: float = Field(default=8.7, gt=0, le=100, description="frames per second (FLIR ONE: 8.7)")
    frames: int | None = Field(default=None, ge=1, description="stop after this many; unset: forever")


def _index_as_text(value: object) -> object:
    """YAML reads ``device: 0`` as a number; a camera index is a device name like ``/dev/video0``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A V4L2 device: /dev/videoN, the index N (written with or without quotes), or a video file.
VideoDevice = Annotated[str, BeforeValidator(_index_as_text)]


class UvcThermalConfig(Strict):
    """A UVC radiometric camera: PureThermal (Lepton, Y16 centikelvin) or InfiRay P2 Pro / TOPDON TC001."""

    kind: Literal["uvc-thermal"]
    name: str = "thermal"
    model: Literal["purethermal", "p2pro"]
    device: VideoDevice = Field(default="/dev/video0", description="/dev/videoN, or the index N")
    queue_size: int = Field(default=4, ge=1, le=256)


class _BleConfig(Strict):
    """Options every Bluetooth LE source shares."""

    address: str | None = Field(default=None, description="Bluetooth address; takes precedence over device_name")
    adapter: str | None = Field(default=None, description="BlueZ adapter, e.g. hci1; unset: the default one")
    scan_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="longest wait between reconnects")


class E4BleConfig(_BleConfig):
    """Empatica E4 over Bluetooth LE (community-decoded protocol, unverified on hardware)."""

    kind: Literal["e4"]
    name: str = "wristband"
    device_name: str = "Empatica E4"
    offset_c: float = Field(default=0.0, ge=-10, le=10, description="per-unit correction added to every sample")


class BleThermometerConfig(_BleConfig):
    """A standard Bluetooth Health Thermometer (service 0x1809)."""

    kind: Literal["ble-thermometer"]
    name: str = "wristband"
    device_name: str | None = Field(default=None, description="advertised name; give it or address")
    site: str = Field(default="wrist", description="where the probe sits when the device does not say")

    @model_validator(mode="after")
    def _name_or_address(self) -> Self:
        if self.device_name is None and self.address is None:
            raise ValueError("give device_name or address")
        return self


class E4ServerConfig(Strict):
    """Empatica's E4 streaming server (TCP text protocol), e.g. on a Windows PC next to the wristband."""

    kind: Literal["e4-server"]
    name: str = "wristband"
    host: str = "127.0.0.1"
    port: int = Field(default=28000, ge=1, le=65535)
    device_id: str | None = Field(default=None, description="send device_connect ID first; unset: server's choice")
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)


class E4CsvConfig(Strict):
    """An E4 export's TEMP.csv played back as a wristband."""

    kind: Literal["e4-csv"]
    name: str = "wristband"
    path: Path
    speed: float | None = Field(default=1.0, gt=0, description="1: real time, 10: ten times faster; null: no pacing")


class WebcamConfig(Strict):
    """A webcam through OpenCV (V4L2 on Linux); a video file path also works."""

    kind: Literal["webcam"]
    name: str = "webcam"
    device: VideoDevice = Field(default="0", description="camera index N, /dev/videoN, or a video file")
    width: int | None = Field(default=640, ge=16, le=7680, description="requested; the camera may differ")
    height: int | None = Field(default=480, ge=16, le=4320)
    fps: float | None = Field(default=30.0, gt=0, le=240)
    queue_size: int = Field(default=2, ge=1, le=256, description="frames kept for a slow loop; newest wins")
    backoff_max_s: float = Field(default=10.0, gt=0, le=3600)


class PiCameraConfig(Strict):
    """A Raspberry Pi Camera Module through libcamera (picamera2, from Raspberry Pi OS's python3-picamera2)."""

    kind: Literal["picamera"]
    name: str = "webcam"
    camera: int = Field(default=0, ge=0, le=7, description="libcamera's camera index")
    width: int = Field(default=640, ge=16, le=4608)
    height: int = Field(default=480, ge=16, le=3496)
    fps: float = Field(default=30.0, gt=0, le=120)
    queue_size: int = Field(default=2, ge=1, le=256, description="frames kept for a slow loop; newest wins")
    backoff_max_s: float = Field(default=10.0, gt=0, le=3600)


class ReplayConfig(Strict):
    """A session written by ``vitaledge record``, played back as the sources it recorded."""

    kind: Literal["replay"]
    name: str = "replay"
    path: Path
    speed: float | None = Field(default=1.0, gt=0, description="1: real time; null: as fast as possible")


class VideoFileSourceConfig(Strict):
    """A video file played as a webcam (recorded faces; UBFC-style clips)."""

    kind: Literal["video-file"]
    name: str = "webcam"
    path: Path
    realtime: bool = Field(default=True, description="pace at the file's frame rate; false: as fast as possible")
    loop: bool = Field(default=False, description="start again at the end of the file")
    fps_hz: float | None = Field(default=None, gt=0, le=240, description="unset: the file's own frame rate")


SourceConfig = Annotated[
    SyntheticSourceConfig
    | FlirOneConfig
    | FlirJpegConfig
    | UvcThermalConfig
    | E4BleConfig
    | BleThermometerConfig
    | E4ServerConfig
    | E4CsvConfig
    | WebcamConfig
    | PiCameraConfig
    | ReplayConfig
    | VideoFileSourceConfig,
    Field(discriminator="kind"),
]


# --- fusion -----------------------------------------------------------------------------------------


# The tracker's look-ahead. Leave-one-out over the UBFC clips prefers 6 s on raw video too (2.81 against
# 2.95 bpm), which is not worth 3 s more delay on every reading; on lensed video, where a wrong lock costs
# tens of bpm, every fold chose 6 s, at one seed of the lens's noise and on the mean of five, and six of seven
# again with POS alone (README, privacy lens).
RAW_LAG_S = float(DEFAULT_TRACKER.lag_steps)
LENSED_LAG_S = 6.0
# The pulse estimator on lensed video. The blur mixes the wall into the face's colour, which breaks CHROM's
# fixed skin-tone projection (9.6 bpm through the lens); POS alone beat POS and CHROM fused in every
# leave-one-out fold over five noise seeds (4.42 against 4.84 bpm; README, privacy lens).
LENSED_METHOD: Literal["pos"] = "pos"


class TrackerConfig(Strict):
    """The heart-rate tracker over the spectrogram (fusion.hrtrack)."""

    sigma_bpm: float = Field(default=DEFAULT_TRACKER.sigma_bpm, gt=0.0, le=60.0, description="rate change a second")
    lag_s: float | None = Field(
        default=None,
        ge=0.0,
        le=30.0,
        description=f"look-ahead; unset: {RAW_LAG_S:g} s on raw video, {LENSED_LAG_S:g} s on lensed video",
    )

    def settings(self, step_s: float, *, lensed: bool = False) -> TrackerSettings:
        lag_s = self.lag_s if self.lag_s is not None else (LENSED_LAG_S if lensed else RAW_LAG_S)
        return TrackerSettings(sigma_bpm=self.sigma_bpm, lag_steps=round(lag_s / step_s))


class GreyscaleConfig(Strict):
    """How faces are found on greyscale (IR, mono) frames: a detector and a preparation of the luma."""

    detector: Literal["same", "haar", "dlib-cnn"] = Field(
        default="same",
        description="same: the colour path's detector; dlib-cnn: dlib's CNN (extra [faces]; ~1 s a VGA frame on a "
        "laptop core, fine for a still subject at the tracker's 5 detections a second only on a fast CPU)",
    )
    clahe: bool = Field(default=True, description="contrast-limited adaptive histogram equalisation before detection")
    clahe_clip_limit: float = Field(default=2.0, gt=0.0, le=40.0)
    colouriser: Path | None = Field(
        default=None, description="ONNX colourisation model run on the luma before detection (contract: README)"
    )


class HeartRateConfig(Strict):
    input: Literal["raw", "lensed"] = Field(
        default="raw",
        description="lensed: rPPG on the privacy-lensed frames (privacy.mode), the face found on them from the "
        "skin colour the blur leaves, as a camera with the lens in glass would have to",
    )
    method: Literal["fused", "pos", "chrom", "onnx"] | None = Field(
        default=None,
        description="fused: POS and CHROM (and `model` when set), spectra summed; unset: fused on raw video, "
        "pos on lensed video",
    )
    model: Path | None = Field(default=None, description="ONNX PPG model: required for onnx, optional for fused")
    face_detector: Path | None = Field(default=None, description="ONNX face detector; unset: OpenCV Haar")
    greyscale: GreyscaleConfig = Field(default_factory=GreyscaleConfig)
    confidence_model: Path | None = Field(
        default=None,
        description="ONNX confidence model (vitaledge train confidence): the published confidence and the "
        "low_confidence flag come from it; unset: the spectral confidence",
    )
    window_s: float = Field(default=10.0, ge=4.0, le=60.0)
    step_s: float = Field(default=1.0, gt=0.0, le=10.0)
    tracker: TrackerConfig | None = Field(
        default_factory=TrackerConfig, description="null: the session-median blend of earlier versions"
    )

    @property
    def pulse_method(self) -> Literal["fused", "pos", "chrom", "onnx"]:
        """The method in use: the one set, else the default for the input (``LENSED_METHOD`` through a
        lens; fused wherever a ``model`` is set, so that the model is used)."""
        if self.method is not None:
            return self.method
        return LENSED_METHOD if self.input == "lensed" and self.model is None else "fused"

    @model_validator(mode="after")
    def _model_for_onnx(self) -> Self:
        if self.method == "onnx" and self.model is None:
            raise ValueError("method 'onnx' needs 'model' (path to the .onnx file)")
        return self


class RegressionConfig(Strict):
    """T_ref = a + b * T_wristband."""

    a: float
    b: float


class ThermalConfig(Strict):
    reference: Literal["palm", "wrist", "fused"] = "fused"
    palm: RegressionConfig = RegressionConfig(a=PAPER_PALM.a, b=PAPER_PALM.b)  # Yoshikawa et al., palm
    wrist: RegressionConfig = RegressionConfig(a=PAPER_WRIST.a, b=PAPER_WRIST.b)  # Yoshikawa et al., wrist
    wristband_window_s: float = Field(default=60.0, gt=0.0, description="wristband mean window (paper: 60 s)")
    pair_tolerance_ms: float = Field(default=60.0, gt=0.0, description="thermal/visible pairing tolerance")


class PrivacyConfig(Strict):
    """The privacy lens every image leaving the device passes through (raw frames stay in memory)."""

    mode: Literal["off", "defocus", "lowres16", "lens"] = Field(
        default="off",
        description="off: images leave as captured; defocus: Z4 blur; lowres16: a 16×16 sensor; lens: the "
        "optimised surface (models/privacy_lens/lens.json)",
    )


# --- outputs ----------------------------------------------------------------------------------------


class MqttConfig(Strict):
    url: str | None = Field(default=None, description="mqtt://host:port or mqtts://; unset: embedded broker")
    qos: int = Field(default=1, ge=0, le=2)  # not Literal[0, 1, 2]: env strings would not parse
    client_id: str | None = Field(default=None, description="unset: vitaledge-<device_id>")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="read the password from this file")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = Field(default=None, description="client certificate (PEM) for mutual TLS")
    tls_key_file: Path | None = Field(default=None, description="its private key (PEM); with tls_cert_file")
    tls_insecure: bool = False
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay (then doubles)")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest reconnect delay")

    @field_validator("url")
    @classmethod
    def _whole_url(cls, url: str | None) -> str | None:
        # Parsed here in full, so that --check-config catches what the MQTT client would trip over later.
        if url is None:
            return None
        parts = urlsplit(url)
        if "@" in parts.netloc:  # checked first: the other messages echo the URL, which must not carry a secret
            raise ValueError(
                "url must not carry credentials (user:password@): give mqtt.username and mqtt.password "
                "(or password_file), which are never logged"
            )
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"url must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"url has no host: {url!r} (expected mqtt://host[:port])")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"url port must be a number from 1 to 65535: {url!r}") from None
        if port == 0:
            raise ValueError(f"url port must be a number from 1 to 65535: {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"url takes no path or query, only mqtt://host[:port]: {url!r}")
        return url

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        has_secret = self.password is not None or self.password_file is not None
        if (self.username is None) != (not has_secret):
            raise ValueError("username and password (or password_file) must be given together")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together (mutual TLS)")
        return self


class OutboxConfig(Strict):
    """The disk-backed outbox: every record is stored here before it is published."""

    path: Path | None = Field(
        default=None,
        description="SQLite file; unset: outbox-<device_id>.sqlite in $STATE_DIRECTORY or ~/.local/state",
    )
    max_rows: int = Field(default=200_000, ge=10, description="oldest rows beyond this are dropped (counted)")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024, description="payload bytes kept at most")
    max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0, description="rows older than this are dropped")
    replay_rate_hz: float = Field(default=50.0, gt=0, description="history replay rate after a reconnect")
    memory_max_records: int = Field(
        default=3600, ge=1,
        description="while the outbox cannot write (disk full) and the broker is away, records held in memory; "
        "the oldest beyond this are dropped (counted)",
    )


class HomeAssistantConfig(Strict):
    """Home Assistant MQTT device discovery."""

    enabled: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_/-]+$")
    expire_after_s: int = Field(default=30, ge=1, description="HA marks a value unavailable after this long")
    name: str | None = Field(default=None, description="device name in HA; unset: VitalEdge <device_id>")


class OverlayConfig(Strict):
    """The live web page (and metrics) server, and the optional OpenCV window."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="bind address; 0.0.0.0 exposes the overlay")
    port: int = Field(default=8088, ge=0, le=65535, description="0: any free port")
    fps: float = Field(default=10.0, gt=0, le=60, description="MJPEG frame rate cap per viewer")
    jpeg_quality: int = Field(default=80, ge=10, le=100)
    chart_s: float = Field(default=60.0, ge=10, le=3600, description="history shown on the chart")
    window: bool = Field(default=False, description="also show the annotated frame in an OpenCV window")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host: names the page answers besides localhost, 127.0.0.1, [::1] and the bind address "
        "(anything else is refused: DNS rebinding)",
    )
    max_connections: int = Field(default=64, ge=1, le=10_000, description="connections beyond this are closed")
    idle_timeout_s: float = Field(
        default=15.0, gt=0, description="a connection not in a request this long (idle, or slow headers) is closed"
    )
    auth_token: SecretStr | None = Field(
        default=None,
        description="required when host is not loopback: every request needs it (Authorization: Bearer, or "
        "?token= once, which sets a cookie); never logged",
    )
    metrics_public: bool = Field(
        default=False, description="true: /metrics answers without auth_token (a scraper without credentials)"
    )

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> Self:
        if self.auth_token is None and not _is_loopback(self.host):
            raise ValueError(
                f"overlay.auth_token is required when host {self.host!r} is not a loopback address "
                "(the page shows faces to the network)"
            )
        if self.auth_token is not None and len(self.auth_token.get_secret_value()) < 16:
            raise ValueError("overlay.auth_token must be at least 16 characters")
        return self


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; a wildcard (0.0.0.0, ::, empty) or any other name is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class MetricsConfig(Strict):
    """Prometheus text at /metrics on the overlay's server."""

    enabled: bool = True


class ServiceConfig(Strict):
    """systemd integration (used when $NOTIFY_SOCKET is set)."""

    stall_s: float = Field(default=10.0, gt=0, description="no record for this long: stop watchdog pings")
    startup_grace_s: float = Field(
        default=120.0, ge=0, description="ping the watchdog this long after start while sources connect"
    )


class VitalEdgeConfig(BaseSettings):
    """The whole configuration; ``VITALEDGE_<SECTION>__<KEY>`` environment variables override it."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="VITALEDGE_", env_nested_delimiter="__"
    )

    device_id: str = Field(default="vitaledge", pattern=r"^[a-z0-9-]+$")
    sources: list[SourceConfig] = Field(default_factory=list)
    heart_rate: HeartRateConfig = Field(default_factory=HeartRateConfig)
    thermal: ThermalConfig = Field(default_factory=ThermalConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    overlay: OverlayConfig = Field(default_factory=OverlayConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the environment overrides the file

    @model_validator(mode="after")
    def _lensed_needs_a_lens(self) -> Self:
        if self.heart_rate.input == "lensed" and self.privacy.mode == "off":
            raise ValueError("heart_rate.input 'lensed' needs privacy.mode other than 'off'")
        return self

    @model_validator(mode="after")
    def _unique_source_names(self) -> Self:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        return self


_ENV_PREFIX = "VITALEDGE_"


def _env_blame(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable a failing key came from, if one set it (they override the file)."""
    names = {name.upper(): name for name in os.environ if name.upper().startswith(_ENV_PREFIX)}
    keys = [str(part) for part in loc]
    for depth in range(len(keys), 0, -1):  # the deepest variable that covers the key: MQTT__QOS before MQTT
        wanted = _ENV_PREFIX + "__".join(keys[:depth]).upper()
        if wanted in names:
            return names[wanted]
    if keys:  # a rule over a whole section (mqtt: "username and password together") set from below
        below = sorted(n for u, n in names.items() if u.startswith(_ENV_PREFIX + "__".join(keys).upper() + "__"))
        if below:
            return ", ".join(below)
    return None


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):  # pydantic's wording for our own ValueErrors
        message = message.removeprefix(prefix)
    return message


def _format_error(where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    blamed = _env_blame(tuple(first["loc"]))
    if blamed is not None:
        where = f"environment variable {blamed}"
    return f"{where}: {path}: {_reason(first)}{more}"


DEFAULT_CONFIG = Path("/etc/vitaledge/vitaledge.yaml")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add the ``--config`` option every command that reads the configuration takes (see ``config_path``)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML configuration (default: $VITALEDGE_CONFIG, else {DEFAULT_CONFIG} if it exists)",
    )


def config_path(arg: Path | None) -> Path | None:
    """The configuration file a command reads: ``--config``, else ``$VITALEDGE_CONFIG``, else the
    system-wide file if it exists, else None (built-in defaults)."""
    if arg is not None:
        return arg
    env = os.environ.get("VITALEDGE_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> VitalEdgeConfig:
    """Read, validate and return the configuration.

    Args:
        path: YAML file; None means defaults plus the environment.
        overrides: values applied over the file (used by the CLI's options).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid; the message names file, key and reason.
    """
    where = str(path) if path is not None else "configuration"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text (a bad byte at offset {exc.start})") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{where}: the top level must be a mapping of keys")
        if bad := [key for key in loaded if not isinstance(key, str)]:
            raise ConfigError(f"{where}: key {bad[0]!r}: keys must be names (text), not {type(bad[0]).__name__}")
        data = loaded
    data.update(overrides or {})
    try:
        return VitalEdgeConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(where, exc)) from exc
    except SettingsError as exc:  # an environment variable that is not JSON where a list or mapping is expected
        raise ConfigError(_settings_error(exc)) from exc


def _settings_error(exc: SettingsError) -> str:
    # pydantic-settings says 'error parsing value for field "sources" from source "EnvSettingsSource"'.
    field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
    name = next((n for n in os.environ if n.upper() == f"{_ENV_PREFIX}{field}".upper()), None)
    if name is None:
        return f"environment: {exc}"
    return f"environment variable {name}: {field}: not valid JSON (a list or mapping is written as JSON here)"

