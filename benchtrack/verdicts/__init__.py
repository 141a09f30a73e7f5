"""Judging: verdict policy, compare operands, the one history query, calibration, and judging
after a run. The statistics themselves live in benchtrack.analysis (pure)."""

from benchtrack.verdicts.policy import (
    VERDICTS,
    PromotionDecision,
    Report,
    SuiteShift,
    compare_results,
    promotion_decision,
)

__all__ = ["VERDICTS", "PromotionDecision", "Report", "SuiteShift", "compare_results", "promotion_decision"]
