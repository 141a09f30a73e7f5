"""timeline_chart writes readable PNGs for every shape of timeline, and leaves no figure open."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from benchtrack.analysis.leaks import LeakVerdict, detect_leak
from benchtrack.report.charts import smoothed_rate, timeline_chart
from benchtrack.results import OomEvent, Phase, Timeline

MIB = 1024.0 * 1024.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _leaking(minutes: float = 20, rate_mb_per_min: float = 2.0, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.8, 1.2, int(minutes * 60)))
    mb = 200 + rate_mb_per_min * times / 60 + 10 * ((times % 45) / 45) + rng.normal(0, 0.5, times.size)
    return times, mb * MIB


def _full_timeline() -> Timeline:
    times, memory = _leaking()
    return Timeline(
        target="container web-1", started_at=time.time(), times_s=tuple(times), memory_bytes=tuple(memory),
        limit_bytes=300 * MIB,
        phases=(Phase("warm-up", 0, 120), Phase("load test", 120, 1000), Phase("burst", 600, 700),
                Phase("overlapping", 650, 1100)),
        oom_events=(OomEvent(1100, "oom_kill", "oom_kill counter 0 -> 1"), OomEvent(1150, "restart", "restarts 1")),
    )


def _assert_png(path: Path, min_kb: float = 20) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_kb * 1024
    image = matplotlib.image.imread(path)
    assert image.ndim == 3
    assert image.shape[0] >= 400
    assert image.shape[1] >= 600
    assert float(image[..., :3].std()) > 0.05  # something was drawn, not a blank canvas
    return image


@pytest.fixture(autouse=True)
def _no_figure_left_open() -> Iterator[None]:
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == []


def test_chart_with_phases_limit_oom_events_and_a_leak_verdict(tmp_path: Path) -> None:
    timeline = _full_timeline()
    leak = detect_leak(timeline.times_s, timeline.memory_bytes)
    assert leak.detected
    path = timeline_chart(timeline, tmp_path / "web.png", title="web-1 under load", leak=leak)
    assert path == tmp_path / "web.png"
    _assert_png(path)


def test_chart_without_leak_verdict(tmp_path: Path) -> None:
    _assert_png(timeline_chart(_full_timeline(), tmp_path / "plain.png", title="plain"))


def test_pillow_reads_it_as_a_png_when_available(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    path = timeline_chart(_full_timeline(), tmp_path / "web.png", title="t")
    with image_module.open(path) as image:
        assert image.format == "PNG"
        image.verify()


def test_a_limit_far_above_the_data_is_noted_not_drawn(tmp_path: Path) -> None:
    times, memory = _leaking(minutes=2)
    timeline = Timeline("pid 1", time.time(), tuple(times), tuple(memory), limit_bytes=64 * 1024 * MIB)
    _assert_png(timeline_chart(timeline, tmp_path / "far.png", title="far limit"))


def test_a_profile_of_a_few_seconds_with_steps(tmp_path: Path) -> None:
    times = np.linspace(0, 2, 41)
    mb = np.where((times > 0.4) & (times < 1.2), 70.0, 20.0)
    timeline = Timeline("job", time.time(), tuple(times), tuple(mb * MIB),
                        phases=(Phase("alloc", 0.4, 0.8), Phase("free", 0.8, 1.2), Phase("cpu", 1.2, 2.0)))
    _assert_png(timeline_chart(timeline, tmp_path / "steps.png", title="steps"))


@pytest.mark.parametrize("samples", [0, 1, 2])
def test_tiny_timelines_still_give_a_chart(tmp_path: Path, samples: int) -> None:
    times = tuple(float(i) for i in range(samples))
    memory = tuple(10 * MIB for _ in range(samples))
    leak = detect_leak(times, memory) if samples else None
    if leak is not None:
        assert math.isnan(leak.slope_mb_per_min)  # "no verdict" must draw too
    timeline = Timeline("tiny", time.time(), times, memory, limit_bytes=20 * MIB,
                        oom_events=(OomEvent(0.5, "exit_137", "exit code 137"),))
    _assert_png(timeline_chart(timeline, tmp_path / f"tiny{samples}.png", title="tiny", leak=leak), min_kb=5)


def test_no_leak_verdict_is_drawn(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    times = np.arange(0, 600, 1.0)
    memory = (100 + rng.normal(0, 0.3, times.size)) * MIB
    leak = detect_leak(times, memory)
    assert isinstance(leak, LeakVerdict)
    assert not leak.detected
    _assert_png(timeline_chart(Timeline("flat", time.time(), tuple(times), tuple(memory)), tmp_path / "flat.png",
                               title="flat", leak=leak))


def test_mismatched_series_are_refused(tmp_path: Path) -> None:
    timeline = Timeline("bad", 0.0, (0.0, 1.0), (1.0,))
    with pytest.raises(ValueError, match="differ in length"):
        timeline_chart(timeline, tmp_path / "bad.png", title="bad")
    assert not (tmp_path / "bad.png").exists()


def test_smoothed_rate_recovers_a_linear_slope_on_uneven_timestamps() -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.5, 1.5, 300))
    mb = 50 + 3.0 * times / 60  # 3 MB/min
    rate = smoothed_rate(times, mb, window_s=20.0)
    assert rate.shape == times.shape
    assert np.all(np.isfinite(rate))
    assert rate == pytest.approx(np.full(times.size, 3.0), rel=1e-6)


def test_smoothed_rate_is_nan_where_a_window_holds_one_reading() -> None:
    rate = smoothed_rate(np.array([0.0, 10.0, 20.0]), np.array([1.0, 2.0, 3.0]), window_s=1.0)
    assert np.all(np.isnan(rate))
    assert smoothed_rate(np.array([0.0]), np.array([1.0]), 1.0).shape == (1,)
