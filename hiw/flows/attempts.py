"""One step of a unit, run so that bad input becomes a reject and never stops the build.

``Steps`` carries what every step of a unit shares: where its rejects point (source, video, clip) and the unit's
own stage timer. A step that raises ``StageError`` (bad input) or any other error (a bug, recorded with its text)
gives a ``Reject`` labelled with the step's name (``hiw.schemas.stages``); a transient failure
(``runners.transient``: I/O, a timeout) is raised instead, so the runner retries the whole unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hiw.errors import StageError
from hiw.flows.runners import StageTimes, transient
from hiw.schemas import Reject


@dataclass(frozen=True)
class Where:
    """What a reject refers to."""

    source_path: str
    video_id: str | None = None
    clip_id: str | None = None

    def reject(self, step: str, err: StageError) -> Reject:
        return Reject.of(step, err, self.source_path, self.video_id, self.clip_id)


@dataclass
class Steps:
    where: Where
    times: StageTimes

    def run(self, step: str, fn, *args) -> tuple[Any, Reject | None]:
        """``fn(*args)``, timed under ``step``: (result, None), or (None, its Reject)."""
        with self.times.measure(step):
            try:
                return fn(*args), None
            except StageError as err:
                return None, self.where.reject(step, err)
            except Exception as err:  # noqa: BLE001 - unexpected failures are recorded with their text
                if transient(err):
                    raise  # the unit is retried
                return None, self.where.reject(
                    step, StageError("internal_error", f"{type(err).__name__}: {err}".splitlines()[0][:500])
                )
