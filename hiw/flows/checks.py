"""Usage errors a build would only meet later, after a server and workers have started, checked before anything
heavy is imported: `hiw build` with a typo answers in about a second, not after loading torch and Prefect."""

from __future__ import annotations

from hiw.config import BuildConfig
from hiw.errors import ConfigError
from hiw.flows.runners import check_api
from hiw.flows.sources import source_for
from hiw.video.discover import check_inputs


def check_config(cfg: BuildConfig) -> None:
    check_inputs(cfg.videos, cfg.manifest, source_for(cfg).suffixes)
    check_api(cfg)
    if cfg.uses_vlm and cfg.vocab is not None and not cfg.vocab.is_file():
        raise ConfigError(f"vocabulary file does not exist: {cfg.vocab}")
