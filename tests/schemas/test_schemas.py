import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from hiw.schemas import TABLES, Caption, HandTrack, MotionRecord, arrow_schema, to_table


def _motion(n: int, clip: str = "c_1") -> MotionRecord:
    rng = np.random.default_rng(n)
    kp = rng.normal(size=(n, 21, 3)).astype(np.float32)
    hands = {}
    for side, valid in (("left", np.ones(n, bool)), ("right", np.zeros(n, bool))):
        nan_if_missing = np.where(valid[:, None], 1.0, np.nan)
        hands |= {
            f"{side}_valid": valid,
            f"{side}_filled": np.zeros(n, bool),
            f"{side}_global_orient": rng.normal(size=(n, 3)) * nan_if_missing,
            f"{side}_hand_pose": rng.normal(size=(n, 45)) * nan_if_missing,
            f"{side}_transl": rng.normal(size=(n, 3)) * nan_if_missing,
            f"{side}_betas": [],
            f"{side}_rest_keypoints": rng.normal(size=63).tolist(),
            f"{side}_keypoints_2d": kp * nan_if_missing[:, :, None],
            f"{side}_keypoints_3d": kp * 0.01 * nan_if_missing[:, :, None],
            f"{side}_fit_error_mm": rng.random(n) * nan_if_missing[:, 0],
        }
    return MotionRecord(
        clip_id=clip,
        video_id="v_1",
        fps=15.0,
        n_frames=n,
        hand_model="open-skeleton-v1",
        coordinate_frame="camera",
        processing="test",
        camera_rotations=np.tile(np.eye(3).reshape(1, 9), (n, 1)),
        head_rotation_deg=0.0,
        swapped_frames=0,
        dropped_frames=0,
        jitter_translation=1.0,
        jitter_rotation=2.0,
        motion_s=n / 15.0,
        **hands,
        tracker="mediapipe",
        tracker_version="t",
        config_hash="h",
        code_version="0",
    )


def test_arrays_become_fixed_size_float32_lists():
    schema = arrow_schema(MotionRecord)
    assert schema.field("left_keypoints_3d").type == pa.list_(pa.list_(pa.float32(), 63))
    assert schema.field("left_valid").type == pa.list_(pa.bool_())
    assert schema.field("left_hand_pose").type == pa.list_(pa.list_(pa.float32(), 45))
    assert schema.field("left_fit_error_mm").type == pa.list_(pa.float32())
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert not schema.field("clip_id").nullable


def test_optional_and_list_fields_map_to_nullable_and_lists():
    schema = arrow_schema(Caption)
    assert schema.field("prompt_version").nullable
    assert schema.field("verbs").type == pa.list_(pa.string())


def test_every_table_schema_derives():
    for name, model in TABLES.items():
        assert len(arrow_schema(model)) == len(model.model_fields), name


def test_to_table_round_trips_arrays_exactly():
    records = [_motion(5, "a"), _motion(9, "b")]
    table = to_table(MotionRecord, records)
    assert table.num_rows == 2
    back = np.array(table.column("left_keypoints_3d")[1].as_py(), np.float32)
    np.testing.assert_array_equal(back, records[1].left_keypoints_3d)
    assert table.column("right_valid")[0].as_py() == [False] * 5


def test_array_fields_reject_wrong_widths():
    with pytest.raises(ValidationError, match="frames x 63"):
        HandTrack(side="left", valid=np.ones(3, bool), keypoints_2d=np.zeros((3, 20)), keypoints_3d=np.zeros((3, 63)))


def test_motion_quality_applies_the_both_hands_filter_to_the_finished_motion():
    from hiw.config import load_config
    from hiw.errors import StageError
    from hiw.flows.stages import motion_quality

    record = _motion(30)  # left hand valid throughout, right hand never
    with pytest.raises(StageError) as err:
        motion_quality(record, load_config(videos=".", min_both_hands_frac=0.8))
    assert err.value.reason == "both_hands_rarely_valid" and "0%" in err.value.detail
    motion_quality(record, load_config(videos=".", min_both_hands_frac=0.0))  # one-handed data may opt out
