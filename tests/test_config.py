"""One definition per setting and per stage: each BuildConfig field names its stage, the stage table holds every
version and reject label, and no module keeps a default of its own for what the build sets."""

from __future__ import annotations

import dataclasses

import pytest

from hiw.config import NOT_HASHED, STAGE_FIELDS, BuildConfig
from hiw.errors import StageError
from hiw.flows import settings
from hiw.schemas import Reject
from hiw.schemas.stages import STAGES, STEPS, UNIT_LABELS, stage_of, versions


def test_every_setting_is_in_exactly_one_stage_or_not_hashed():
    fields = set(BuildConfig.model_fields)
    staged = [name for names in STAGE_FIELDS.values() for name in names]
    assert len(staged) == len(set(staged)), f"in two stages: {sorted({f for f in staged if staged.count(f) > 1})}"
    assert not set(staged) & NOT_HASHED
    assert set(staged) | NOT_HASHED == fields, f"escape the rebuild keys: {sorted(fields - set(staged) - NOT_HASHED)}"
    assert set(STAGE_FIELDS) == set(STAGES)


def test_a_stage_hash_moves_with_its_own_settings_only():
    base = BuildConfig()
    changed = BuildConfig(max_jitter_rotation=400.0)  # a quality setting
    assert [s for s in STAGES if base.stage_hash(s) != changed.stage_hash(s)] == ["quality"]
    assert base.config_hash() != changed.config_hash()
    assert BuildConfig(workers=1, out="elsewhere").config_hash() == base.config_hash()  # where and how fast: not data


@pytest.mark.parametrize("make", settings.ALL, ids=lambda f: f.__name__)
def test_no_module_default_disagrees_with_the_build(make):
    """What a build sets comes from BuildConfig; a module's own default may only repeat it (none does today)."""
    built = make(BuildConfig())
    objects = [built] + [v for v in vars(built).values() if dataclasses.is_dataclass(v)]
    for obj in objects:
        for field in dataclasses.fields(obj):
            if field.default is not dataclasses.MISSING:
                assert getattr(obj, field.name) == field.default or field.name.startswith("w_"), (type(obj), field.name)


def test_the_fit_eval_fit_measures_is_the_build_fit():
    assert settings.motion_settings(BuildConfig()).fit.iterations == BuildConfig().fit_iterations == 30


def test_the_stage_table_holds_every_reject_label_once():
    steps = [step for stage in STAGES.values() for step in stage.steps]
    assert len(steps) == len(set(steps)) and set(steps) == set(STEPS) and not set(steps) & set(UNIT_LABELS)
    assert stage_of("camera").name == "observe" and stage_of("filter").name == "quality"  # where to bump the version
    assert set(versions(per_clip=True)) == {"plan", "observe", "motion", "quality", "captions"}
    assert set(versions()) == set(STAGES)
    with pytest.raises(ValueError, match="unknown reject label 'tracking'"):
        Reject.of("tracking", StageError("x", "y"), "v.mp4")


def test_uses_vlm():
    assert not BuildConfig().uses_vlm and BuildConfig(vlm="openai", vlm_model="m").uses_vlm


def test_a_setting_at_its_neutral_value_leaves_the_hashes_alone():
    """``--track-fps 0`` is what every build did before the setting existed: datasets built then are not rebuilt."""
    base = BuildConfig()
    assert "track_fps" not in base._hashed(STAGE_FIELDS["observe"])
    strided = BuildConfig(track_fps=15)
    assert [s for s in STAGES if base.stage_hash(s) != strided.stage_hash(s)] == ["observe"]
    assert base.config_hash() != strided.config_hash()
