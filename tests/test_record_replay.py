"""Record and replay: bit-exact round trips, damaged sessions, pacing, lifecycle, and the must-show:
`vitaledge record` of the simulated rig, then fusion (and `vitaledge run`) on the replay, gives the
same VitalsRecords as the live rig."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from drivers.e4_csv import E4CsvSource
from drivers.replay import MANIFEST, ReplaySource, iter_session
from drivers.synthetic import SimulatedRig
from edge.build import build_fusion, build_source
from edge.cli import main
from edge.config import VitalEdgeConfig, load_config
from edge.publish.wire import json_dict_from_record
from edge.recorder import Recorder, ffv1_available
from fusion.errors import SourceError, SourceUnavailableError, UnavailableReason, VitalEdgeError
from fusion.samples import PlanckConstants, Sample, SkinTemperature, ThermalFrame, VisibleFrame
from fusion.vitals import VitalsRecord
from tests.mosquitto import MosquittoBroker

T0 = 5_000_000_000
PLANCK = PlanckConstants(r1=17837.5, r2=0.0123, b=1450.4, f=1.0, o=-1143.0, provenance="test unit")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _hand_made() -> list[Sample]:
    """Every kind of sample and field the recorder must keep, including a frame-size change."""
    rng = np.random.default_rng(7)
    out: list[Sample] = []
    for k in range(5):
        t = T0 + k * 100_000_000
        shape = (48, 64, 3) if k < 3 else (40, 32, 3)  # the camera reconnects at another resolution
        out.append(
            VisibleFrame(
                t_mono=t,
                t_wall=1.7e9 + k / 10,
                source="webcam",
                seq=k,
                image=_frozen(rng.integers(0, 256, shape, dtype=np.uint8)),
                greyscale=k == 4,
                meta={"fps": 30.0, "shift": (k, -k), "gain": np.float32(1.25), "nested": {"a": [1, (2, 3)]}},
            )
        )
        out.append(
            SkinTemperature(
                t_mono=t + 1,
                t_wall=1.7e9 + k / 10,
                source="band",
                seq=k,
                celsius=33.0 + k / 100,
                device="e4-x",
                meta={"true_skin_c": 33.123456789},
            )
        )
    for k in range(4):
        side = (6, 8) if k < 3 else (12, 16)
        celsius = rng.normal(30.0, 2.0, side).astype(np.float32)
        out.append(
            ThermalFrame(
                t_mono=T0 + k * 115_000_000 + 7,
                t_wall=1.7e9 + k * 0.115,
                source="thermal",
                seq=k,
                celsius=_frozen(celsius),
                raw=_frozen(rng.integers(0, 16384, side, dtype=np.uint16)) if k != 1 else None,
                visible=_frozen(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) if k % 2 == 0 else None,
                ffc=k == 2,
                planck=PLANCK if k < 2 else None,
                meta={"offset_error_c": 0.5 * k},
            )
        )
    return sorted(out, key=lambda s: s.t_mono)


def _skin(k: int, period_ns: int) -> SkinTemperature:
    return SkinTemperature(t_mono=T0 + k * period_ns, t_wall=1.7e9, source="band", seq=k, celsius=33.0)


def _same(a: Sample, b: Sample) -> None:
    assert type(a) is type(b)
    assert (a.t_mono, a.t_wall, a.source, a.seq) == (b.t_mono, b.t_wall, b.source, b.seq)
    assert dict(a.meta) == dict(b.meta)
    assert [type(v) for v in a.meta.values() if isinstance(v, tuple)] == [
        type(v) for v in b.meta.values() if isinstance(v, tuple)
    ]  # tuples come back as tuples
    if isinstance(a, VisibleFrame) and isinstance(b, VisibleFrame):
        assert a.image.dtype == b.image.dtype and np.array_equal(a.image, b.image)
        assert a.greyscale == b.greyscale and not b.image.flags.writeable
    elif isinstance(a, ThermalFrame) and isinstance(b, ThermalFrame):
        assert b.celsius.dtype == np.float32 and np.array_equal(a.celsius, b.celsius)
        assert (a.raw is None) == (b.raw is None)
        if a.raw is not None and b.raw is not None:
            assert b.raw.dtype == np.uint16 and np.array_equal(a.raw, b.raw)
        assert (a.visible is None) == (b.visible is None)
        if a.visible is not None and b.visible is not None:
            assert np.array_equal(a.visible, b.visible)
        assert (a.ffc, a.planck) == (b.ffc, b.planck)
    else:
        assert a == b


async def _replay(path: Path, speed: float | None = None) -> tuple[ReplaySource, list[Sample]]:
    source = ReplaySource("replay", path=path, speed=speed)
    async with source:
        return source, [s async for s in source.samples()]


def test_this_build_writes_ffv1(tmp_path: Path) -> None:
    if not ffv1_available(tmp_path):
        pytest.skip("this OpenCV build cannot write FFV1 bit-exactly: recordings fall back to PNG")
    assert list(tmp_path.iterdir()) == []  # the probe cleans up after itself


@pytest.mark.parametrize("codec", ["ffv1", "png"])
async def test_round_trip_is_bit_exact(tmp_path: Path, codec: str) -> None:
    samples = _hand_made()
    with Recorder(tmp_path / "s", video_codec=codec, chunk_frames=2) as recorder:  # type: ignore[arg-type]
        for s in samples:
            recorder.write(s)
    source, back = await _replay(tmp_path / "s")
    assert len(back) == len(samples)
    for a, b in zip(samples, back, strict=True):
        _same(a, b)
    assert source.decode_errors == {}
    header = json.loads((tmp_path / "s" / "session.json").read_text())
    assert header["counts"] == {"visible": 5, "skin": 5, "thermal": 4}
    assert header["video_codec"] == codec and header["ended_wall"] is not None
    if codec == "ffv1":
        assert sorted(p.name for p in (tmp_path / "s" / "video").iterdir()) == [
            "thermal_sled_000.mkv",
            "webcam_webcam_000.mkv",
            "webcam_webcam_001.mkv",
        ]

    # the wristband as an E4-style CSV, readable by the e4-csv source
    band = E4CsvSource("band", path=tmp_path / "s" / "wristband" / "band_TEMP.csv", speed=None)
    async with band:
        rows = [s async for s in band.samples()]
    assert band.header is not None and band.header.rate_hz == 10.0 and band.header.start_unix == pytest.approx(1.7e9)
    assert [r.celsius for r in rows] == [33.0, 33.01, 33.02, 33.03, 33.04]


def test_iter_session_for_evaluations(tmp_path: Path) -> None:
    samples = _hand_made()
    with Recorder(tmp_path / "s") as recorder:
        for s in samples:
            recorder.write(s)
    (tmp_path / "s" / "video" / "thermal_sled_000.mkv").unlink()  # thermal frames 0 and 2 lose their sled image
    errors: list[str] = []
    back = list(iter_session(tmp_path / "s", errors))
    assert len(back) == len(samples) - 2 and len(errors) == 2
    kept = [s for s in samples if not (isinstance(s, ThermalFrame) and s.visible is not None)]
    for a, b in zip(kept, back, strict=True):
        _same(a, b)


async def test_damaged_session_costs_only_the_damaged_samples(tmp_path: Path) -> None:
    with Recorder(tmp_path / "s", chunk_frames=2) as recorder:
        for s in _hand_made():
            recorder.write(s)
    (tmp_path / "s" / "thermal" / "thermal_000000.npz").unlink()  # frame 0 (frame 1 has no raw: next chunk)
    with (tmp_path / "s" / MANIFEST).open("a") as f:
        f.write('{"n": 99, "type": "skin", "t_mo')  # a crash mid-line
    source, back = await _replay(tmp_path / "s")
    assert len(back) == 14 - 1
    assert sorted(s.seq for s in back if isinstance(s, ThermalFrame)) == [1, 2, 3]
    assert source.decode_errors == {"manifest": 1, "missing": 1}


async def test_replay_is_paced_at_speed(tmp_path: Path) -> None:
    with Recorder(tmp_path / "s") as recorder:
        for k in range(4):  # 0.6 s of samples
            recorder.write(
                SkinTemperature(t_mono=T0 + k * 200_000_000, t_wall=1.7e9, source="band", seq=k, celsius=33.0)
            )
    t0 = time.monotonic()
    _, back = await _replay(tmp_path / "s", speed=2.0)
    assert len(back) == 4
    assert 0.25 <= time.monotonic() - t0 < 1.5


async def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError) as info:
        await ReplaySource("replay", path=tmp_path / "none").__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT and "no recorded session" in str(info.value)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "session.json").write_text('{"format": "something-else"}')
    with pytest.raises(SourceError, match="not a vitaledge session"):
        await ReplaySource("replay", path=tmp_path / "other").__aenter__()
    with pytest.raises(VitalEdgeError, match="already holds a recorded session"):
        Recorder(tmp_path / "other")


def test_config_and_build(tmp_path: Path) -> None:
    cfg = load_config(None, {"sources": [{"kind": "replay", "path": str(tmp_path), "speed": 4}]})
    source = build_source(cfg.sources[0])
    assert isinstance(source, ReplaySource)
    assert (source.name, source._path, source._speed) == ("replay", tmp_path, 4.0)


# --- must show: record the rig, replay it, same VitalsRecords -------------------------------------

RIG_SECONDS = 5.0
REPO = Path(__file__).resolve().parents[1]


def _fuse(cfg: VitalEdgeConfig, samples: list[Sample]) -> list[VitalsRecord]:
    fusion = build_fusion(cfg)
    return [record for s in samples for record in fusion.push(s)]


@pytest.fixture(scope="module")
def rig_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`vitaledge record` of the simulated rig (as fast as it renders), through the real CLI entry point."""
    folder = tmp_path_factory.mktemp("rig")
    config = folder / "rig.yaml"
    config.write_text(
        "device_id: rig-replay\nheart_rate: {window_s: 4}\n"
        f"sources:\n  - {{kind: synthetic, name: rig, seed: 5, realtime: false, duration_s: {RIG_SECONDS}}}\n",
        encoding="utf-8",
    )
    assert main(["record", "--seconds", "300", str(folder / "session"), "--config", str(config), "--json"]) == 0
    return folder / "session", config


@pytest.fixture(scope="module")
def live_run(rig_session: tuple[Path, Path]) -> tuple[list[Sample], list[VitalsRecord]]:
    """The live rig over the same time base as the recording (its first sample is the rig's time zero),
    and the records fusion makes from it."""
    session, config = rig_session
    with (session / "samples.jsonl").open() as f:
        first = json.loads(f.readline())
    rig = SimulatedRig(name="rig", seed=5, realtime=False)
    live = list(rig.stream(RIG_SECONDS, t0_mono_ns=first["t_mono"], t0_wall=first["t_wall"]))
    return live, _fuse(load_config(config), live)


@pytest.mark.slow
async def test_replay_of_a_recording_gives_the_live_vitals(
    rig_session: tuple[Path, Path], live_run: tuple[list[Sample], list[VitalsRecord]]
) -> None:
    session, config = rig_session
    live, live_records = live_run
    _, replayed = await _replay(session)
    assert len(replayed) == len(live) > 200
    for a, b in zip(live, replayed, strict=True):  # bit for bit, ground truth in meta included
        _same(a, b)
    replay_records = _fuse(load_config(config), replayed)
    assert len(live_records) >= 4
    assert any(r.thermal.face_corrected_c is not None for r in live_records)
    assert repr(replay_records) == repr(live_records)  # repr: exact floats, and NaN equals NaN


@pytest.mark.slow
async def test_vitaledge_run_on_the_replay_publishes_the_live_vitals(
    rig_session: tuple[Path, Path],
    live_run: tuple[list[Sample], list[VitalsRecord]],
    mosquitto: MosquittoBroker,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    session, _ = rig_session
    config = tmp_path / "replay.yaml"
    config.write_text(
        f"device_id: {topic_prefix}\nheart_rate: {{window_s: 4}}\n"
        f"sources:\n  - {{kind: replay, path: '{session}', speed: null}}\n"
        f"mqtt: {{url: '{mosquitto.url}'}}\noutbox: {{path: '{tmp_path / 'outbox.sqlite'}'}}\n"
        "overlay: {enabled: false}\nmetrics: {enabled: false}\n",
        encoding="utf-8",
    )
    got: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"sub-{topic_prefix}") as client:
        await client.subscribe(f"vitaledge/{topic_prefix}/vitals", qos=1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VITALEDGE_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.cli", "run", "--config", str(config),
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 180)  # the replay ends, so does the run
        assert proc.returncode == 0, err.decode()[-2000:]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                async for message in client.messages:
                    got.append(json.loads(bytes(message.payload)))

    _, live_records = live_run
    boots = {body.get("boot_id") for body in got}
    assert len(boots) == 1, "one run, one boot id"
    (boot,) = boots
    expected = [  # the app numbers records from 0 (a fresh outbox)
        json.loads(json.dumps({**json_dict_from_record(r), "device_id": topic_prefix, "seq": seq, "boot_id": boot}))
        for seq, r in enumerate(live_records)
    ]
    assert len(expected) >= 4
    assert got == expected
