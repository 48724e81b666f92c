"""Shared test set-up: caches inside the project, real fixtures from ../shared, generated videos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CACHE = PROJECT / ".cache"
# Before anything imports prefect or matplotlib: keep their homes inside the project.
os.environ.setdefault("PREFECT_HOME", str(CACHE / "prefect-tests"))
os.environ.setdefault("MPLCONFIGDIR", str(CACHE / "matplotlib"))
os.environ.setdefault("XDG_CACHE_HOME", str(CACHE))
os.environ.setdefault("HF_HOME", str(CACHE / "huggingface"))
os.environ.pop("PREFECT_API_URL", None)  # tests use the ephemeral server

from hiw import runtime  # noqa: E402

runtime.configure()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hiw.config import BuildConfig, load_config  # noqa: E402
from hiw.flows import settings  # noqa: E402
from hiw.schemas import ClipSpec  # noqa: E402

FIXTURES = PROJECT.parent / "shared" / "fixtures"
KITCHEN = FIXTURES / "video" / "ego_kitchen_plate.mp4"
PALM = FIXTURES / "video" / "palm_third_person.mp4"
FPHAB = FIXTURES / "pose3d" / "fphab"


def fixture_file(path: Path) -> Path:
    """The shared fixture at ``path``, or skip the test saying what is missing."""
    if not path.exists():
        pytest.skip(f"shared fixture missing: {path} (tests read real data from ../shared/fixtures)")
    return path


def copy_fphab(fphab_dir: Path, folder: Path, name: str) -> Path:
    """Copy F-PHAB sequence ``name`` (e.g. "Subject_1/pour_milk/1") into ``folder`` as one track file."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(fixture_file(fphab_dir / name / "skeleton.txt"), folder / (name.replace("/", "_") + ".txt")))


def copy_fphab_all(fphab_dir: Path, folder: Path, names) -> Path:
    """Copy each F-PHAB sequence of ``names`` into ``folder`` (see ``copy_fphab``); returns ``folder``."""
    for name in names:
        copy_fphab(fphab_dir, folder, name)
    return folder


# Eight F-PHAB sequences; sorted by video_id, Subject_4/scratch_sponge/2 ends a shard group (shards.group_videos),
# so a build of them writes two groups.
FPHAB_TWO_GROUPS = [
    "Subject_2/squeeze_paper/5",
    "Subject_3/pour_milk/4",
    "Subject_3/read_letter/4",
    "Subject_4/scratch_sponge/2",
    "Subject_2/toast_wine/3",
    "Subject_2/open_juice_bottle/1",
    "Subject_2/open_juice_bottle/2",
    "Subject_1/open_letter/4",
]


# Precomputed F-PHAB tracks, 1 s windows, no hand-fit refinement: a build of a few files takes seconds.
FPHAB_SETTINGS = dict(
    tracker="precomputed", min_both_hands_frac=0, window_s=1.0, min_clip_s=0.5, min_motion_s=0.5, fit_iterations=0, workers=2
)


# The build's defaults: a module's settings in a test come from them (hiw.flows.settings), never from defaults of its own.
DEFAULTS = BuildConfig()
HIW = Path(sys.executable).with_name("hiw")


def hiw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The `hiw` command as users run it: a subprocess, 200 columns wide."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(HIW), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def clip_plan(**settings_) -> object:
    """The clip plan a build with these settings (and the defaults) uses."""
    return settings.clip_plan(BuildConfig(**settings_))


def vlm_client(url: str, model: str, **overrides):
    """The VLM client with the build's settings (``stages.make_backend``) but those a test sets."""
    from hiw.annotators.openai_backend import OpenAIBackend

    values = dict(concurrency=DEFAULTS.vlm_concurrency, timeout_s=DEFAULTS.vlm_timeout_s, retries=DEFAULTS.vlm_retries)
    return OpenAIBackend(url, model, **{**values, **overrides})


def pcot_annotator(backend, cache=None, vocab=None, **sampling):
    """The PCoT annotator with the build's settings (``stages.make_annotator``); ``sampling`` overrides the build's."""
    import dataclasses

    from hiw.annotators.pcot import PCoTAnnotator

    chosen = dataclasses.replace(settings.sampling(DEFAULTS), **sampling)
    return PCoTAnnotator(
        backend, cache, vocab, chosen, max_active_clips=DEFAULTS.vlm_concurrency, invalid_retries=DEFAULTS.vlm_invalid_retries
    )


def fphab_config(inputs: Path, out: Path, **overrides) -> BuildConfig:
    """A quick build of the F-PHAB track files in ``inputs`` (``FPHAB_SETTINGS``, then ``overrides``)."""
    return load_config(videos=str(inputs), out=out, **{**FPHAB_SETTINGS, **overrides})


def make_clip(source_path: str = "x.mp4", n_frames: int = 30, fps: float = 30.0, size=(640, 480), **fields) -> ClipSpec:
    """A ClipSpec starting at frame 0, for stage-level tests."""
    values = dict(
        clip_id="c_test",
        video_id="v_test",
        source_path=source_path,
        clip_index=0,
        plan="window",
        start_frame=0,
        end_frame=n_frames,
        start_s=0.0,
        end_s=n_frames / fps,
        source_fps=fps,
        width=size[0],
        height=size[1],
    )
    return ClipSpec(**{**values, **fields})


def write_video(path: Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    """Write RGB frames as an mp4 (MPEG-4 part 2, what opencv can encode everywhere)."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def textured_frames(n: int, width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A table-like scene with no hands: smooth colour noise that drifts over time."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(60, 200, (12, 16, 3), dtype=np.uint8), (width + n, height), interpolation=cv2.INTER_CUBIC)
    return np.stack([base[:, t : t + width] for t in range(n)])


def hawor_arrays(seed: int, seconds: float, fps: int = 30) -> dict[str, np.ndarray]:
    """HaWoR-layout MANO parameters (hand index 0 = left) of smooth, plausible two-hand motion, both hands valid
    throughout, with ``fps``: what ``np.savez`` makes a precomputed track file of."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    t = np.arange(n)[:, None] / fps

    def wave(amplitude, width):
        return amplitude * np.sin(2 * np.pi * t / rng.uniform(1.5, 3.0, width) + rng.uniform(0, 2 * np.pi, width))

    data = {"pred_trans": [], "pred_rot": [], "pred_hand_pose": []}
    for x in (-0.15, 0.15):
        axis = rng.normal(size=3)
        data["pred_rot"].append(axis / np.linalg.norm(axis) + wave(0.3, 3))
        data["pred_hand_pose"].append(rng.normal(0, 0.2, 45) + wave(0.15, 45))
        data["pred_trans"].append(np.array([x, 0.05, 0.4]) + wave(0.05, 3))
    arrays = {k: np.stack(v).astype(np.float32) for k, v in data.items()}
    return arrays | {"pred_valid": np.ones((2, n), bool), "fps": np.float32(fps)}


@pytest.fixture(scope="session")
def kitchen_video() -> Path:
    return fixture_file(KITCHEN)


@pytest.fixture(scope="session")
def palm_video() -> Path:
    return fixture_file(PALM)


@pytest.fixture(scope="session")
def fphab_dir() -> Path:
    """F-PHAB skeleton files (``S1_*_skeleton.txt`` and ``Subject_*/<action>/<n>/skeleton.txt``)."""
    return fixture_file(FPHAB)
