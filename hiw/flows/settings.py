"""The build's settings as each module's own settings object: the only place ``BuildConfig`` meets them.

Defaults live in ``BuildConfig`` alone: the module dataclasses have none for what the build sets, so a module
default can never drift from the build's (tests/test_config.py checks what is left). Tools that run a module
outside a build (``hiw eval-fit``, benchmarks) take the build's defaults from here: ``motion_settings(BuildConfig())``.
"""

from __future__ import annotations

from dataclasses import fields

from hiw.annotators.requests import Sampling
from hiw.annotators.review import ReviewSettings
from hiw.config import BuildConfig
from hiw.motion.fit import FitSettings
from hiw.motion.pipeline import MotionSettings
from hiw.motion.quality import QualitySettings
from hiw.motion.temporal import TemporalSettings
from hiw.trackers.base import TrackerSettings
from hiw.video.clips import ClipPlan


def _named(cls, cfg: BuildConfig, prefix: str = "", **given):
    """``cls`` with each field from the config field of the same name (after ``prefix``), unless ``given``."""
    return cls(**{f.name: getattr(cfg, prefix + f.name) for f in fields(cls) if f.name not in given}, **given)


def clip_plan(cfg: BuildConfig) -> ClipPlan:
    return _named(ClipPlan, cfg, mode=cfg.clip_mode)


def tracker_settings(cfg: BuildConfig) -> TrackerSettings:
    return _named(TrackerSettings, cfg)


def temporal_settings(cfg: BuildConfig) -> TemporalSettings:
    return _named(TemporalSettings, cfg)


def motion_settings(cfg: BuildConfig) -> MotionSettings:
    return _named(
        MotionSettings,
        cfg,
        mano_dir=str(cfg.mano_dir) if cfg.mano_dir else None,
        fit=FitSettings(iterations=cfg.fit_iterations),
        temporal=temporal_settings(cfg),
    )


def quality_settings(cfg: BuildConfig) -> QualitySettings:
    return _named(QualitySettings, cfg)


def sampling(cfg: BuildConfig) -> Sampling:
    return _named(Sampling, cfg, prefix="vlm_")


def review_settings(cfg: BuildConfig) -> ReviewSettings:
    return _named(ReviewSettings, cfg, prefix="qa_")


# Each module's settings object, made from one config: what tests/test_config.py checks for drifted defaults.
ALL = (clip_plan, tracker_settings, temporal_settings, motion_settings, quality_settings, sampling, review_settings)
