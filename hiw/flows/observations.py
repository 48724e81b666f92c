"""The per-clip cache of what tracking saw: a rebuild whose tracker settings are unchanged never decodes or
tracks a clip twice, even when motion, filter or caption settings changed.

Entries are ``ROOT/cache/observations/<clip_id>-<key>.npz`` (arrays only, no pickle), keyed by (clip id, the observe
stage's settings and version, tracker version): the tracks of both hands and, once computed, the camera's
rotations. Written atomically, so a killed build leaves whole entries or none; an entry that cannot be read
(a damaged disk, a copy cut short) is moved aside and the clip observed again.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hiw.caches import OBSERVATIONS_DIR, quarantine
from hiw.config import BuildConfig
from hiw.motion.camera import CameraRotations
from hiw.schemas import HANDS, ClipSpec, HandTrack
from hiw.schemas.ids import stable_hash
from hiw.schemas.stages import STAGES
from hiw.trackers import ClipTracks


@dataclass
class Observation:
    tracks: ClipTracks
    rotations: CameraRotations | None = None  # None until the camera stage ran for this clip


def observation_key(clip: ClipSpec, cfg: BuildConfig, tracker_name: str) -> str:
    """``<clip_id>-o_<hash>``: the clip id first, so ``hiw gc`` can tell the entries of clips no version holds."""
    return f"{clip.clip_id}-o_" + stable_hash(
        clip.clip_id, cfg.stage_hash("observe"), tracker_name, STAGES["observe"].version, length=24
    )


def load(root: Path, key: str) -> Observation | None:
    path = root / OBSERVATIONS_DIR / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            hands = {
                side: HandTrack(
                    side=side, valid=z[f"{side}_valid"], keypoints_2d=z[f"{side}_kp2d"], keypoints_3d=z[f"{side}_kp3d"]
                )
                for side in HANDS
            }
            tracks = ClipTracks(fps=float(z["fps"]), hands=hands, coordinate_frame=str(z["coordinate_frame"]))
            rotations = None
            if "cam_rotations" in z:
                rotations = CameraRotations(z["cam_rotations"], z["cam_ok"], z["cam_inliers"])
            return Observation(tracks, rotations)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - truncated (BadZipFile, EOFError), wrong keys or shapes: observe again
        quarantine(path, f"{type(err).__name__}: {err}")
        return None


def save(root: Path, key: str, obs: Observation) -> None:
    folder = root / OBSERVATIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"fps": np.float64(obs.tracks.fps), "coordinate_frame": np.str_(obs.tracks.coordinate_frame)}
    for side in HANDS:
        hand = obs.tracks.hands[side]
        arrays |= {f"{side}_valid": hand.valid, f"{side}_kp2d": hand.keypoints_2d, f"{side}_kp3d": hand.keypoints_3d}
    if obs.rotations is not None:
        r = obs.rotations
        arrays |= {"cam_rotations": r.rotations, "cam_ok": r.ok, "cam_inliers": r.n_inliers}
    tmp = folder / f".{key}.{uuid.uuid4().hex}.npz"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, folder / f"{key}.npz")
