"""Videos with a display rotation tag (phone footage): probed, decoded and given intrinsics as displayed.

The test videos are written by OpenCV, then their mp4 ``tkhd`` matrix is patched to the standard rotation
matrices. ffmpeg's convention, which OpenCV and decord both follow: tag 90 means the frame is shown turned 90
degrees clockwise (PyAV reports such a file's frame.rotation as -90, ffmpeg's counter-clockwise angle).
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import clip_plan, textured_frames, write_video
from hiw.config import load_config
from hiw.errors import StageError
from hiw.flows import stages
from hiw.video.clips import plan_clips
from hiw.video.decode import decode_clip, working_size
from hiw.video.probe import probe_video

W, H, N_FRAMES = 320, 240, 60
TRACK_WIDTH = 160  # below both sides, so each decoder scales, in the displayed orientation
ROTATIONS = (0, 90, 180, 270)


def tkhd_matrix(degrees: int, width: int, height: int) -> tuple[int, ...]:
    """QuickTime's matrix for a clockwise display rotation: a, b, u, c, d, v, tx, ty, w (16.16 and 2.30 fixed point)."""
    one, w30 = 1 << 16, 1 << 30
    a, b, c, d, tx, ty = {
        0: (1, 0, 0, 1, 0, 0),
        90: (0, 1, -1, 0, height, 0),
        180: (-1, 0, 0, -1, width, height),
        270: (0, -1, 1, 0, 0, width),
    }[degrees]
    return (a * one, b * one, 0, c * one, d * one, 0, tx * one, ty * one, w30)


def tag_rotation(src: Path, dst: Path, degrees: int) -> Path:
    """Copy ``src`` to ``dst`` with its (single) track's tkhd matrix set to a display rotation."""
    data = bytearray(src.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data.find(b"tkhd", at + 4) < 0, "expected one track header"
    version = data[at + 4]
    # after version+flags: times, track id, reserved, duration (20 bytes in v0, 32 in v1), then reserved (8),
    # layer, alternate group, volume, reserved (2 each), then the matrix
    matrix_at = at + 4 + 4 + (20 if version == 0 else 32) + 16
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", *tkhd_matrix(degrees, W, H))
    dst.write_bytes(bytes(data))
    return dst


def source_frames() -> np.ndarray:
    """Smooth texture with a red block in the top-left corner: every rotation and flip looks different."""
    frames = textured_frames(N_FRAMES, W, H)
    frames[:, 10:70, 10:90] = (230, 20, 20)
    return frames


def red_centre(frame: np.ndarray) -> tuple[float, float]:
    """(x, y) of the red block as a fraction of the frame's width and height."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    ys, xs = np.nonzero((r > 170) & (g < 90) & (b < 90))
    assert len(xs) > 50, "red marker not found"
    return xs.mean() / frame.shape[1], ys.mean() / frame.shape[0]


def displayed(frames: np.ndarray, degrees: int) -> np.ndarray:
    """What a player shows for a tag: the stored frames turned ``degrees`` clockwise."""
    return np.rot90(frames, k=-degrees // 90, axes=(1, 2))


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> tuple[np.ndarray, dict[int, Path]]:
    folder = tmp_path_factory.mktemp("rot")
    frames = source_frames()
    src = write_video(folder / "src.mp4", frames)
    return frames, {r: tag_rotation(src, folder / f"rot{r}.mp4", r) for r in ROTATIONS}


@pytest.mark.parametrize("degrees", ROTATIONS)
def test_probe_reports_displayed_size_and_tag(tagged, degrees):
    _, paths = tagged
    video = probe_video(paths[degrees])
    shown_w, shown_h = (H, W) if degrees in (90, 270) else (W, H)
    assert (video.width, video.height, video.rotation) == (shown_w, shown_h, degrees)
    clip = plan_clips(video, [], clip_plan(window_s=1.0, min_clip_s=1.0))[0][0]
    K = stages.intrinsics(clip, load_config(videos="."))
    assert (K.cx, K.cy) == (shown_w / 2, shown_h / 2)


@pytest.mark.parametrize("decoder", ["decord", "cv2"])
@pytest.mark.parametrize("degrees", ROTATIONS)
def test_decoded_frames_are_as_displayed(tagged, degrees, decoder):
    source, paths = tagged
    video = probe_video(paths[degrees])
    clips, _ = plan_clips(video, [], clip_plan(window_s=1.0, min_clip_s=1.0))
    clip = clips[1]  # starts after a seek
    cfg = load_config(videos=".", track_width=TRACK_WIDTH, decoder=decoder, min_clip_s=1.0)
    frames = stages.decode(clip, cfg, video.rotation)
    expected = displayed(source[clip.start_frame : clip.end_frame], degrees)
    w, h = working_size(expected.shape[2], expected.shape[1], TRACK_WIDTH)
    assert frames.shape == (clip.n_frames, h, w, 3)
    np.testing.assert_allclose(red_centre(frames[0]), red_centre(expected[0]), atol=0.03)
    scaled = np.stack([cv2.resize(np.ascontiguousarray(f), (w, h), interpolation=cv2.INTER_AREA) for f in expected])
    assert np.abs(frames.astype(int) - scaled.astype(int)).mean() < 10  # the whole picture, not only the marker


def test_cv2_refuses_to_squash_a_frame_into_the_wrong_orientation(tagged):
    """A clip whose size is the stored (not displayed) one must fail, not be resized out of shape."""
    _, paths = tagged
    video = probe_video(paths[90])
    clip = plan_clips(video, [], clip_plan(window_s=1.0, min_clip_s=1.0))[0][0]
    stored = clip.model_copy(update={"width": video.height, "height": video.width})
    with pytest.raises(StageError) as err:
        decode_clip(stored, target_width=TRACK_WIDTH, decoder="cv2")
    assert err.value.reason == "decode_failed" and "240x320" in str(err.value)
