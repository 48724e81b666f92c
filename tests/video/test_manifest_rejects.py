"""Manifests: a bad row is a reject and the rest builds; a manifest unusable as a whole is one usage-error line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FPHAB_SETTINGS, clip_plan, fixture_file, hiw
from hiw.errors import ConfigError
from hiw.schemas import Narration, VideoSource
from hiw.storage import read_table
from hiw.storage.verify import verify_version
from hiw.video.clips import plan_clips
from hiw.video.discover import check_inputs, read_manifest

HEADER = "video,start_s,end_s,text\n"


def one_line_usage_error(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-3000:]
    return result.stderr.strip()


@pytest.mark.parametrize(
    "row, reason, detail",
    [
        ("x.mp4,3,1,#C C waves", "narration_ends_before_start", "narration '#C C waves' ends at 1 s, not after its start at 3 s"),
        ("x.mp4,2,2,#C C waves", "narration_ends_before_start", "ends at 2 s, not after its start at 2 s"),
        ("x.mp4,-1,2,#C C waves", "narration_negative_time", "narration '#C C waves' has a negative time (-1 to 2 s)"),
        ("x.mp4,abc,2,#C C waves", "narration_bad_time", "start_s 'abc' is not a number"),
        ("x.mp4,0,inf,#C C waves", "narration_bad_time", "end_s 'inf' is not a finite number"),
        ("x.mp4,nan,1,#C C waves", "narration_bad_time", "start_s 'nan' is not a finite number"),
        ("x.mp4,,1,#C C waves", "narration_bad_time", "a narration needs start_s (the cell is empty)"),
        (" ,0,1,#C C waves", "manifest_no_video", "the video cell is empty"),
    ],
)
def test_a_bad_row_is_a_reject_naming_the_file_and_line(tmp_path, row, reason, detail):
    manifest = tmp_path / "m.csv"
    manifest.write_text(HEADER + "x.mp4,0,1,#C C nods\n" + row + "\n,,,\ny.mp4,,,\n")
    rows = read_manifest(manifest)
    (bad,) = rows.rejects
    assert (bad.source, bad.reason) == (f"{manifest.absolute()}:3", reason)
    assert bad.detail.startswith(f"manifest {manifest} line 3: ") and bad.detail.endswith(detail)
    # the good rows stand; the row of empty cells lists nothing; the bad row does not list its video
    assert rows.videos == [tmp_path / "x.mp4", tmp_path / "y.mp4"]
    assert rows.narrations == {tmp_path / "x.mp4": [Narration(start_s=0, end_s=1, text="#C C nods")]}


def test_a_long_narration_is_quoted_short(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(HEADER + f"x.mp4,5,1,#C C {'stirs ' * 5000}\n")
    (bad,) = read_manifest(manifest).rejects
    assert len(bad.detail) < len(str(manifest)) + 150 and "#C C stirs stirs" in bad.detail


@pytest.mark.parametrize(
    "content, message",
    [
        (
            HEADER.encode() + "x.mp4,0,1,#C C café\n".encode("latin-1"),
            "is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8",
        ),
        (b"path,start_s\nx.mp4,0\n", "needs a 'video' column in its first line (has: 'path', 'start_s')"),
        (b"", "needs a 'video' column in its first line (has: nothing)"),
        (HEADER.encode() + b'x.mp4,0,1,"' + b"a" * 200_000, "is not valid CSV (line 2: field larger than field limit (131072))"),
    ],
)
def test_a_manifest_unusable_as_a_whole_fails_before_the_build_starts(tmp_path, content, message):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        check_inputs(None, manifest)  # what `check_config` runs before the flow starts
    assert str(err.value) == f"manifest {manifest} {message}"


def test_a_byte_order_mark_is_not_part_of_the_video_column(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"x.mp4,0,1,#C C nods\n")
    assert read_manifest(manifest).videos == [tmp_path / "x.mp4"]


def test_cli_latin1_manifest_is_one_line_that_does_not_quote_it(tmp_path):
    manifest = tmp_path / "latin1.csv"
    secret = "#C C opens the safe with code 4711 " * 20
    manifest.write_bytes((HEADER + f"x.mp4,0,1,{secret}café\n").encode("latin-1"))
    line = one_line_usage_error(hiw("build", "--manifest", str(manifest), "--out", str(tmp_path / "out")))
    assert line == f"error: manifest {manifest} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    assert not (tmp_path / "out").exists()  # refused before the build started


def video(duration_s: float, fps: float = 30.0) -> VideoSource:
    n = round(duration_s * fps)
    return VideoSource(
        video_id="v_test",
        path="x.mp4",
        size_bytes=1,
        width=320,
        height=240,
        fps=fps,
        n_frames=n,
        duration_s=n / fps,
        codec="x",
        rotation=0,
    )


def test_narrations_past_the_end_one_reject_per_reason_and_a_partly_past_one_is_cut_and_said():
    narrations = [
        Narration(start_s=0.0, end_s=30.0, text="#C C wipes the table"),  # runs past the 4 s end: cut there
        Narration(start_s=5.0, end_s=6.0, text="#C C leaves"),
        Narration(start_s=7.0, end_s=8.0, text="#C C comes back"),
    ]
    clips, problems = plan_clips(video(4.0), narrations, clip_plan(min_clip_s=1.0))
    assert [(c.start_frame, c.end_frame, c.narration) for c in clips] == [(0, 120, "#C C wipes the table")]
    cut, problem = problems  # a reject's id is (stage, video, reason): two rows of one reason would collide
    assert cut.reason == "narration_cut_at_end"
    assert cut.detail == "narration at 0-30 s runs past the video's end (4.00 s); its clip ends there: '#C C wipes the table'"
    assert problem.reason == "narration_out_of_range"
    assert problem.detail == (
        "2 narrations: narration at 5-6 s starts after the video ends (4.00 s): '#C C leaves'; "
        "narration at 7-8 s starts after the video ends (4.00 s): '#C C comes back'"
    )


def test_a_narration_listed_twice_makes_one_clip():
    twice = [Narration(start_s=1.0, end_s=2.0, text="#C C nods"), Narration(start_s=1.0, end_s=2.0, text="#C C nods")]
    clips, problems = plan_clips(video(4.0), twice, clip_plan(min_clip_s=1.0))
    assert len(clips) == 1 and [(p.reason, p.detail) for p in problems] == [
        ("duplicate_narration", "narration '#C C nods' at 1-2 s is listed twice")
    ]


def test_many_narrations_past_the_end_list_only_the_first_few():
    narrations = [Narration(start_s=10.0 + i, end_s=11.0 + i, text=f"#C C step {i}") for i in range(20)]
    _, (problem,) = plan_clips(video(4.0), narrations, clip_plan(min_clip_s=1.0))
    assert problem.detail.startswith("20 narrations: ") and problem.detail.endswith("'#C C step 4'; and 15 more")


# F-PHAB track files (precomputed tracks, 30 fps): 5.87 s and 3.53 s
LONG, SHORT = "Subject_1/clean_glasses/1", "Subject_1/charge_cell_phone/1"


@pytest.mark.slow
def test_bad_rows_become_rejects_and_the_rest_of_the_manifest_builds(tmp_path, fphab_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, target in ((LONG, "glasses.txt"), (SHORT, "phone.txt")):
        shutil.copy(fixture_file(fphab_dir / name / "skeleton.txt"), inputs / target)
    manifest = inputs / "narrations.csv"
    manifest.write_text(
        HEADER
        + "glasses.txt,0.5,2.0,#C C wipes the glasses\n"  # line 2: good
        + "glasses.txt,2,1,#C C drops the glasses\n"  # 3: ends before it starts
        + "glasses.txt,-1,2,#C C waves\n"  # 4: negative
        + "glasses.txt,abc,2,#C C points\n"  # 5: not a number
        + "glasses.txt,7,8,#C C leaves\n"  # 6, 7: start after the end (one plan reject)
        + "glasses.txt,9,10,#C C comes back\n"
        + "phone.txt,0,30,#C C charges the phone\n"  # 8: runs past the end, cut there
        + "glasses.txt,0.5,2.0,#C C wipes the glasses\n"  # 9: line 2 again
        + ",,,\n"
    )
    out = tmp_path / "out"
    settings = [f"--{k.replace('_', '-')}={v}" for k, v in FPHAB_SETTINGS.items()]
    result = hiw("build", "--manifest", str(manifest), "--out", str(out), *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    rejects = sorted((r["stage"], r["reason"], r["source_path"], r["detail"]) for r in read_table(out, "rejects").to_pylist())
    where = f"manifest {manifest} line"
    assert rejects == [
        ("discover", "narration_bad_time", f"{manifest}:5", f"{where} 5: start_s 'abc' is not a number"),
        (
            "discover",
            "narration_ends_before_start",
            f"{manifest}:3",
            f"{where} 3: narration '#C C drops the glasses' ends at 1 s, not after its start at 2 s",
        ),
        (
            "discover",
            "narration_negative_time",
            f"{manifest}:4",
            f"{where} 4: narration '#C C waves' has a negative time (-1 to 2 s)",
        ),
        (
            "plan",
            "duplicate_narration",
            str(inputs / "glasses.txt"),
            "narration '#C C wipes the glasses' at 0.5-2 s is listed twice",
        ),
        (
            "plan",
            "narration_cut_at_end",
            str(inputs / "phone.txt"),
            "narration at 0-30 s runs past the video's end (3.53 s); its clip ends there: '#C C charges the phone'",
        ),
        (
            "plan",
            "narration_out_of_range",
            str(inputs / "glasses.txt"),
            (
                "2 narrations: narration at 7-8 s starts after the video ends (5.87 s): '#C C leaves'; "
                "narration at 9-10 s starts after the video ends (5.87 s): '#C C comes back'"
            ),
        ),
    ]
    clips = sorted((Path(c["source_path"]).name, c["narration"], c["end_frame"]) for c in read_table(out, "clips").to_pylist())
    assert clips == [("glasses.txt", "#C C wipes the glasses", 60), ("phone.txt", "#C C charges the phone", 106)]
    assert verify_version(out) == []  # reject ids unique, tables consistent
