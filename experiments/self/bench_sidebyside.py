"""False alarms and detection of comparing two commits side by side (interleaved and duet), of
the stored-baseline way and of instruction counts, measured on this machine while it loads the
machine itself (sidebyside_trials.py). Up to ten minutes per side-by-side comparison, 18 of
them: about two hours, nightly only.

    benchtrack run experiments/self -b sidebyside.detection --level nightly --no-track --format json
"""

from __future__ import annotations

from benchtrack import benchmark


@benchmark(name="sidebyside.detection", kind="track", processes=1, samples=1, warmups=0, timeout=4 * 3600,
           levels=("nightly",), tags=("sidebyside", "slow"),
           targets={
               "track.interleaved.wall_s.loaded.false_alarms.max": 0.01,
               "track.interleaved.wall_s.quiet.false_alarms.max": 0.01,
               "track.interleaved.wall_s.loaded.miss_10pct.max": 0.10,
               "track.interleaved.longest_comparison_s.max": 600.0,
               "track.interleaved.instructions.loaded.false_alarms.max": 0.0,
               "track.interleaved.instructions.loaded.miss_2pct.max": 0.05,
           })
def sidebyside_detection() -> dict[str, float]:
    import sidebyside_trials

    # +5% left out for time: +2% checks the instruction counts, +10% the times
    outcomes = list(sidebyside_trials.trials(1, (1.00, 1.02, 1.10), sidebyside_trials.WAYS, seed=20261202))
    return sidebyside_trials.score(outcomes)
