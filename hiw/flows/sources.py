"""Where a build's hand motion comes from, chosen once per build (``source_for``).

- ``VideoFiles``: videos, decoded and tracked (mediapipe), the camera's rotation estimated from the background,
  and the frames the VLM sees cut out of them.
- ``TrackFiles``: hand tracks made elsewhere (F-PHAB joints, HaWoR-style MANO parameters): loaded, no pixels.

A source names its inputs (``suffixes``), probes one into a ``VideoSource``, says whether it has pixels, gives a
clip's frames for the VLM (``frames_of``), and ``observe``s a clip: whatever the motion stage needs of it, as an
``Observed``. A GPU tracker or another track
format is one more class here. Stage code is imported inside the methods: `hiw build`'s usage checks read
``suffixes`` before torch is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hiw.config import BuildConfig
from hiw.flows.attempts import Steps
from hiw.schemas import ClipSpec, Reject, VideoSource
from hiw.video.discover import VIDEO_SUFFIXES


@dataclass
class Observed:
    """What observing a clip gave the steps after it; ``reject`` says why it stopped there (``tracks`` may still be
    set, for the clip's visibility figures)."""

    tracks: object | None = None  # ClipTracks
    camera: tuple | None = None  # (Intrinsics, CameraRotations | None): the camera the motion stage places hands with
    frame_paths: tuple[str, ...] = ()  # the VLM's frames
    reject: Reject | None = None


class Source(Protocol):
    name: str
    suffixes: frozenset[str]
    has_pixels: bool

    def tracker_version(self, cfg: BuildConfig) -> str: ...
    def probe(self, path: Path) -> VideoSource: ...
    def frames_of(self, clip: ClipSpec, cfg: BuildConfig) -> tuple[str, ...]: ...
    def observe(self, clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker: str, steps: Steps) -> Observed: ...


class TrackFiles:
    name = "precomputed"
    # F-PHAB skeleton.txt; HaWoR-style .npz; the CLUTCH authors' pickled .npy (hiw.trackers.precomputed)
    suffixes = frozenset({".txt", ".npz", ".npy"})
    has_pixels = False

    def tracker_version(self, cfg: BuildConfig) -> str:
        from hiw.trackers.precomputed import VERSION

        return VERSION

    def probe(self, path: Path) -> VideoSource:
        from hiw.trackers.precomputed import probe_tracks

        return probe_tracks(path)

    def frames_of(self, clip: ClipSpec, cfg: BuildConfig) -> tuple[str, ...]:
        return ()

    def observe(self, clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker: str, steps: Steps) -> Observed:
        from hiw.flows import stages
        from hiw.trackers.precomputed import load_tracks

        tracks, reject = steps.run("load", load_tracks, clip)
        if tracks is not None:
            _, reject = steps.run("filter", stages.quality_check, tracks, cfg)
        return Observed(tracks, reject=reject)


class VideoFiles:
    name = "video"
    suffixes = frozenset(VIDEO_SUFFIXES)
    has_pixels = True

    def tracker_version(self, cfg: BuildConfig) -> str:
        from hiw.flows import settings
        from hiw.trackers import make_tracker

        return make_tracker(cfg.tracker, settings.tracker_settings(cfg)).version

    def probe(self, path: Path) -> VideoSource:
        from hiw.video.probe import probe_video

        return probe_video(path)

    def frames_of(self, clip: ClipSpec, cfg: BuildConfig) -> tuple[str, ...]:
        """The clip's VLM frames as stored by the build that tracked it, or decoded again if they were removed."""
        from hiw.flows import stages

        stored = stages.stored_vlm_frames(clip, cfg)
        if stored or cfg.vlm_frames == 0:
            return stored or ()
        try:
            return stages.vlm_frames(stages.decode(clip, cfg), clip, cfg)
        except Exception:  # noqa: BLE001 - without frames the VLM still gets the clip's text context
            return ()

    def observe(self, clip: ClipSpec, rotation: int, cfg: BuildConfig, tracker: str, steps: Steps) -> Observed:
        """Tracks (from ``cache/observations`` when this clip was tracked before with these settings), the camera,
        and the VLM's frames (stored under the root); the clip is decoded at most once, and only if a step needs it."""
        from hiw.flows import observations, stages

        pixels = _Pixels(clip, cfg, rotation, steps)
        key = observations.observation_key(clip, cfg, tracker)
        seen = observations.load(cfg.out, key)
        if seen is None:
            tracks, reject = pixels.then("track", stages.track, clip, cfg)
            if reject:
                return Observed(reject=reject)
            steps.times.count_items("track", tracks.n_frames)
            seen = observations.Observation(tracks)
            observations.save(cfg.out, key, seen)
        else:
            steps.times.add("observe_cached", 0.0, items=seen.tracks.n_frames)
        _, reject = steps.run("filter", stages.quality_check, seen.tracks, cfg)
        if reject:
            return Observed(seen.tracks, reject=reject)
        if cfg.compensate_head_rotation and seen.rotations is None:
            seen.rotations, reject = pixels.then("camera", stages.camera, seen.tracks, clip, cfg)
            if reject:
                return Observed(seen.tracks, reject=reject)
            observations.save(cfg.out, key, seen)
        camera = (stages.intrinsics(clip, cfg), seen.rotations if cfg.compensate_head_rotation else None)
        frame_paths: tuple[str, ...] = ()
        if cfg.uses_vlm and cfg.vlm_frames > 0:
            frame_paths = stages.stored_vlm_frames(clip, cfg) or ()
            if not frame_paths:
                frame_paths, reject = pixels.then("frames", stages.vlm_frames, clip, cfg)
        return Observed(seen.tracks, camera, frame_paths or (), reject)


class _Pixels:
    """A clip's frames, decoded on first use (step ``decode``) and shared by the steps that need them."""

    def __init__(self, clip: ClipSpec, cfg: BuildConfig, rotation: int, steps: Steps):
        self.clip, self.cfg, self.rotation, self.steps = clip, cfg, rotation, steps
        self._decoded: tuple | None = None

    def then(self, step: str, fn, *args):
        """``fn(frames, *args)`` as ``step``: (result, None), or (None, the reject of decoding or of the step)."""
        from hiw.flows import stages

        if self._decoded is None:
            frames, reject = self.steps.run("decode", stages.decode, self.clip, self.cfg, self.rotation)
            if frames is not None:
                self.steps.times.count_items("decode", len(frames))
            self._decoded = (frames, reject)
        frames, reject = self._decoded
        return (None, reject) if reject else self.steps.run(step, fn, frames, *args)


def source_for(cfg: BuildConfig) -> Source:
    """The build's source: track files for ``--tracker precomputed``, else video files."""
    return TrackFiles() if cfg.tracker == "precomputed" else VideoFiles()
