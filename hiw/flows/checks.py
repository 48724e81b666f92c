"""Usage errors a build would only meet later, after a server and workers have started, checked before anything
heavy is imported: `hiw build` with a typo answers in about a second, not after loading torch and Prefect."""

from __future__ import annotations

from hiw.config import BuildConfig
from hiw.errors import ConfigError
from hiw.flows.runners import check_api
from hiw.video.discover import VIDEO_SUFFIXES, check_inputs


def input_suffixes(cfg: BuildConfig) -> set[str]:
    """What a build's inputs are named: videos, or track files for the precomputed tracker."""
    if cfg.tracker == "precomputed":
        from hiw.trackers.precomputed import TRACK_SUFFIXES  # torch: only when the build reads track files

        return TRACK_SUFFIXES
    return VIDEO_SUFFIXES


def check_config(cfg: BuildConfig) -> None:
    check_inputs(cfg.videos, cfg.manifest, input_suffixes(cfg))
    check_api(cfg)
    if cfg.vlm != "kinematic" and cfg.vocab is not None and not cfg.vocab.is_file():
        raise ConfigError(f"vocabulary file does not exist: {cfg.vocab}")
