"""Units of work and what they need, declared by the work, not guessed by the runner.

A ``Unit`` is a named, picklable function a runner sends anywhere, with its ``Resources``:
- ``cpus``: cores one call keeps busy; a local process pool or Dask cluster starts no more workers than
  cores / cpus (``runners.worker_processes``);
- ``gpus``: GPUs one call needs; on Dask it becomes the worker resource ``GPU`` (start GPU workers with
  ``dask worker --resources GPU=1``), so such calls run only where a GPU is;
- ``tags``: Prefect tags, on which ``prefect concurrency-limit create TAG N`` caps calls across every run on the
  server (a tag is only attached when its limit exists: acquiring a slot costs a round trip per call).
A model that a unit loads is loaded once per worker process (``hiw.models``' cache keyed by checkpoint and device),
not once per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Tags of the build's work: a Prefect concurrency limit on a tag caps those tasks across every run on the server
# (`prefect concurrency-limit create hiw-tracker 4`). The VLM requests acquire the same kind of limit.
TRACKER_TAG = "hiw-tracker"
VLM_TAG = "hiw-vlm"


@dataclass(frozen=True)
class Resources:
    cpus: int = 1
    gpus: int = 0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unit:
    name: str  # the task run's name in Prefect
    fn: Callable[..., Any]
    resources: Resources = Resources()
