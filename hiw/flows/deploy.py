"""Scheduled rebuilds: serve the build flow as a Prefect deployment with a cron schedule.

``hiw deploy`` serves from this machine (``flow.serve``: the process polls the server and runs each scheduled
run itself). On a cluster, ``prefect.yaml`` at the project root registers the same flow for a work pool instead.
Either way a run is an incremental rebuild: when nothing changed it ends early and publishes no version.

A deployment stores its parameters (the config) in Prefect's database for every later run, so a credential
in ``--vlm-url`` could only be kept by storing it: it is refused, and the key goes in HIW_VLM_API_KEY instead,
read by each run from the environment of the process that serves it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hiw.config import BuildConfig
from hiw.errors import ConfigError
from hiw.flows.build import hiw_build
from hiw.flows.checks import check_config


def absolute(cfg: BuildConfig) -> BuildConfig:
    """The config with every path absolute: scheduled runs do not start in the folder ``hiw deploy`` ran in."""
    paths = {k: Path(v).absolute() for k in ("manifest", "out", "vocab", "mano_dir") if (v := getattr(cfg, k)) is not None}
    videos = os.path.abspath(cfg.videos) if cfg.videos else None  # a glob stays a glob
    return cfg.model_copy(update={**paths, "videos": videos})


def check_cron(cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError as err:
        raise ConfigError(f"--cron {cron!r} is not a valid cron expression ({err.errors()[0]['msg']})") from None


def serve_build(cfg: BuildConfig, name: str, cron: str, say: Callable[[str], None] = print) -> None:
    """Register deployment ``hiw-build/<name>`` running the build with ``cfg`` on ``cron``, and serve it (blocks)."""
    from prefect.settings import PREFECT_API_URL

    check_cron(cron)
    if cfg.has_vlm_credentials():
        raise ConfigError(
            f"hiw deploy stores the config in Prefect's database, so --vlm-url must not hold credentials (given for "
            f"{cfg.vlm_url}); set HIW_VLM_API_KEY in the environment of `hiw deploy` instead"
        )
    check_config(cfg)
    cfg = absolute(cfg)
    if not PREFECT_API_URL.value():
        say(
            "note: PREFECT_API_URL is not set, so the schedule lives in a temporary Prefect server that stops with "
            "this process; point PREFECT_API_URL at a `prefect server start` to keep it (docs/ORCHESTRATION.md)"
        )
    say(f"serving deployment hiw-build/{name} on {cron!r} for {cfg.out}; Ctrl-C stops it")
    hiw_build.serve(
        name=name,
        cron=cron,
        parameters={"config": cfg.model_dump(mode="json")},
        description=f"Rebuild the hiw dataset at {cfg.out}",
        tags=["hiw"],
        print_starting_message=False,
    )
