"""Build configuration: defaults < TOML file < command-line flags. One model, one definition.

Numbers must be finite and numbers, not booleans (TOML's ``true`` would pass as 1). Credentials in ``vlm_url``
(``http://user:KEY@host/v1``) are moved out of the field into a private attribute as the config is made: the
field, and so every serialised form of the config (``build.json``, version manifests, Prefect's flow-run
parameters), never holds them, while ``vlm_endpoint()`` still gives the backend the URL it authenticates with.
"""

from __future__ import annotations

import math
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hiw.errors import ConfigError
from hiw.schemas.ids import stable_hash
from hiw.schemas.stages import STAGES

_NONE = object()


def setting(stage: str | None, *args: Any, neutral: Any = _NONE, **kwargs: Any) -> Any:
    """A ``BuildConfig`` field and the stage whose output depends on it (``hiw.schemas.stages``): a rebuild redoes
    that stage when the value changes. None: where data comes from or goes, or how fast, not what it is (not hashed).

    ``neutral``: for a setting added after datasets were built, the value that means what builds did before it
    existed; at that value it stays out of the hashes, so adding it leaves every dataset's rebuild keys alone."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    extra = {"stage": stage} | ({"neutral": neutral} if neutral is not _NONE else {})
    return Field(*args, json_schema_extra=extra, **kwargs)


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    videos: str | None = setting(
        None,
        None,
        description="folder (searched recursively), glob or JSON index of inputs (track files for --tracker precomputed)",
    )
    manifest: Path | None = setting(
        None, None, description="CSV with columns video[,start_s,end_s,text] (Ego4D-style narrations)"
    )
    out: Path = setting(None, Path("hiw-out"), description="dataset root to write tables and catalog into")
    browse: Path | None = setting(
        None, None, description="after the build, write the browser of the current version to this folder (hiw browse)"
    )
    clip_mode: Literal["auto", "window", "narration"] = setting(
        "plan", "auto", description="auto: narration spans when a video has narrations, else fixed windows"
    )
    window_s: float = setting("plan", 8.0, gt=0, description="fixed-window clip length in seconds")
    stride_s: float | None = setting("plan", None, gt=0, description="seconds between window starts (default: window_s)")
    min_clip_s: float = setting("plan", 2.0, gt=0, description="shortest clip kept; short narrations are widened to it")
    decoder: Literal["auto", "decord", "cv2"] = setting(
        "observe", "auto", description="video decoder (auto: decord, cv2 fallback)"
    )
    track_width: int = setting("observe", 640, ge=64, description="frames are decoded at this width for tracking")
    track_fps: float = setting(
        "observe",
        0.0,
        ge=0,
        neutral=0.0,
        description="track about this many frames a second (a whole stride of the source's; 0: every frame)",
    )
    tracker: Literal["mediapipe", "precomputed"] = setting(
        "observe", "mediapipe", description="hand tracker; precomputed reads track files (F-PHAB .txt, HaWoR .npz, CLUTCH .npy)"
    )
    model_complexity: Literal[0, 1] = setting("observe", 1, description="mediapipe Hands model complexity")
    min_detection_confidence: float = setting("observe", 0.5, ge=0, le=1, description="mediapipe palm detection threshold")
    min_tracking_confidence: float = setting("observe", 0.5, ge=0, le=1, description="mediapipe landmark tracking threshold")
    mirrored_input: bool = setting("observe", False, description="input is mirrored (selfie); egocentric video is not")
    hand_model: Literal["open", "mano"] = setting(
        "motion", "open", description="open skeleton (no licence), or MANO from --mano-dir"
    )
    mano_dir: Path | None = setting(None, None, description="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (default: $MANO_DIR)")
    intrinsics: str | None = setting("observe", None, description="camera fx,fy,cx,cy in source pixels for every video")
    hfov_deg: float = setting("observe", 90.0, gt=10, lt=180, description="horizontal field of view assumed without intrinsics")
    compensate_head_rotation: bool = setting("observe", True, description="express hands in the first frame's camera orientation")
    fit_iterations: int = setting("motion", 30, ge=0, description="L-BFGS refinement steps of the hand fit")
    fps: float = setting("motion", 15.0, gt=0, description="canonical motion frame rate")
    max_gap_s: float = setting("motion", 0.5, ge=0, description="fill gaps in a hand's motion up to this long (SLERP)")
    savgol_window_s: float = setting("motion", 0.3, ge=0, description="Savitzky-Golay smoothing window, seconds (0: off)")
    savgol_order: int = setting("motion", 2, ge=1, le=5, description="Savitzky-Golay polynomial order")
    gaussian_sigma_s: float = setting(
        "motion", 0.02, ge=0, description="Gaussian smoothing after Savitzky-Golay, seconds (0: off)"
    )
    min_both_hands_frac: float = setting(
        "quality", 0.8, ge=0, le=1, description="reject clips where the tracker sees both hands in fewer frames than this"
    )
    min_motion_s: float = setting(
        "quality", 1.0, ge=0, description="reject clips whose longest span with every seen hand valid is shorter"
    )
    max_jitter_translation: float = setting(
        "quality", 50.0, gt=0, description="reject above this top-3 mean wrist acceleration, m/s^2"
    )
    max_jitter_rotation: float = setting(
        "quality", 500.0, gt=0, description="reject above this top-3 mean angular acceleration, rad/s^2"
    )
    vlm: Literal["kinematic", "openai", "vllm"] = setting(
        "annotate",
        "kinematic",
        description="captioner: kinematic (offline, from the tracks), openai (an OpenAI-compatible server such as "
        "`vllm serve`), vllm (in-process vLLM; needs the vllm package and a GPU)",
    )
    vlm_url: str = setting(None, "http://127.0.0.1:8000/v1", description="--vlm openai: the server's base URL")
    vlm_model: str | None = setting(
        "annotate", None, description="--vlm openai|vllm: the served model name (openai) or model path (vllm)"
    )
    vlm_concurrency: int = setting(None, 16, ge=1, description="most VLM requests in flight at once")
    vlm_timeout_s: float = setting(None, 120.0, gt=0, description="per-request timeout, seconds")
    vlm_retries: int = setting(None, 4, ge=0, description="retries of a request on 429/5xx/timeouts (exponential backoff)")
    vlm_invalid_retries: int = setting(
        None, 2, ge=0, description="re-asks of a VLM request whose answer is not the schema's JSON"
    )
    vlm_frames: int = setting("vlm_frames", 8, ge=0, le=64, description="frames per clip sent to the VLM (0: text only)")
    vlm_frame_width: int = setting("vlm_frames", 448, ge=64, description="width of the frames sent to the VLM, pixels")
    vlm_temperature: float = setting("annotate", 0.0, ge=0, description="VLM sampling temperature")
    vlm_max_tokens: int = setting("annotate", 512, ge=16, description="most tokens per VLM answer")
    vlm_seed: int = setting("annotate", 0, description="VLM sampling seed")
    vocab: Path | None = setting(
        "annotate",
        None,
        description="closed vocabulary: a saved vocabulary .json, or narrations (.txt lines or a .csv 'text' column)",
    )
    qa_min_agreement: float = setting(
        "annotate", 0.3, ge=-1, le=1, description="reject VLM captions less similar than this to the PCoT answers"
    )
    qa_lof_neighbors: int = setting(
        "annotate", 20, ge=2, description="neighbours of the Local Outlier Factor over caption embeddings"
    )
    qa_max_outlier_factor: float = setting(
        "annotate", 1.5, gt=1, description="reject captions whose Local Outlier Factor is above this"
    )
    workers: int = setting(
        None,
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        description="clips processed in parallel (threads, processes or local Dask workers)",
    )
    runner: Literal["thread", "process", "dask"] = setting(
        None, "thread", description="where clips run: threads or processes on this machine, or a Dask cluster"
    )
    dask_address: str | None = setting(
        None, None, description="--runner dask: scheduler address (tcp://host:8786) of an existing cluster (default: a local one)"
    )
    task_retries: int = setting(
        None, 2, ge=0, description="retries of a clip or video task after a transient failure (OSError, timeout)"
    )
    task_retry_backoff_s: float = setting(None, 2.0, ge=0, description="first retry delay, seconds; doubles on each retry")
    task_timeout_s: float = setting(
        None, 600.0, ge=0, description="a clip or video task running longer than this fails and is retried (0: no limit)"
    )
    allow_empty: bool = setting(
        None, False, description="publish a version with no clips even when the current one has clips (else it is held back)"
    )

    # vlm_url as given, credentials included; None when it has none. Private: pickled to worker processes with
    # the config, never in model_dump / JSON.
    _vlm_url_with_credentials: str | None = PrivateAttr(None)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and _takes_numbers(cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError(
                "bool_not_number", "Input should be a number, not the boolean {value}", {"value": str(value).lower()}
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> BuildConfig:
        redacted = _without_userinfo(self.vlm_url)
        if redacted != self.vlm_url:
            self._vlm_url_with_credentials = self.vlm_url
            object.__setattr__(self, "vlm_url", redacted)
        if self.stride_s is None:
            object.__setattr__(self, "stride_s", self.window_s)
        if self.intrinsics is not None:
            parts = self.intrinsics.split(",")
            if len(parts) != 4 or not all(_is_positive_number(p) for p in parts):
                raise ValueError(f"intrinsics must be four positive numbers 'fx,fy,cx,cy', got {self.intrinsics!r}")
        if self.uses_vlm and not self.vlm_model:
            raise ValueError(f"--vlm {self.vlm} needs --vlm-model (the served model name, or a model path for --vlm vllm)")
        if self.dask_address and self.runner != "dask":
            raise ValueError(f"--dask-address needs --runner dask (got --runner {self.runner})")
        if self.min_clip_s > self.window_s:
            raise ValueError(f"min_clip_s ({self.min_clip_s:g}) must not exceed window_s ({self.window_s:g})")
        return self

    @property
    def uses_vlm(self) -> bool:
        """Captions come from a vision-language model too (not only the offline kinematic captioner)."""
        return self.vlm != "kinematic"

    def vlm_endpoint(self) -> str:
        """The VLM server's URL with the credentials it was given with (for the HTTP client only: never store it)."""
        return self._vlm_url_with_credentials or self.vlm_url

    def has_vlm_credentials(self) -> bool:
        return self._vlm_url_with_credentials is not None

    def intrinsics_tuple(self) -> tuple[float, float, float, float] | None:
        return tuple(float(p) for p in self.intrinsics.split(",")) if self.intrinsics else None

    def stage_hash(self, stage: str) -> str:
        """Hash of the settings one stage depends on (``STAGE_FIELDS``: the fields that name it)."""
        return stable_hash(self._hashed(STAGE_FIELDS[stage]), length=12)

    def config_hash(self) -> str:
        """Hash of everything that shapes the data (not where it is read from or written to)."""
        return stable_hash(self._hashed([name for name in BuildConfig.model_fields if name not in NOT_HASHED]), length=12)

    def _hashed(self, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """The values of ``names`` that go into a hash: all but those at their ``neutral`` value."""
        values = self.model_dump(mode="json")
        neutral = {n: (BuildConfig.model_fields[n].json_schema_extra or {}).get("neutral", _NONE) for n in names}
        return {n: values[n] for n in names if neutral[n] is _NONE or values[n] != neutral[n]}


def _stage(name: str) -> str | None:
    return (BuildConfig.model_fields[name].json_schema_extra or {}).get("stage")


# Derived from the fields: the settings of each stage, and those no stage's output depends on.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    stage: tuple(name for name in BuildConfig.model_fields if _stage(name) == stage) for stage in STAGES
}
NOT_HASHED: frozenset[str] = frozenset(name for name in BuildConfig.model_fields if _stage(name) is None)


def _is_positive_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _takes_numbers(annotation: Any) -> bool:
    """Whether a field holds a number (int, float, a Literal of numbers; optional or not), not a bool."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
    return any(_takes_numbers(a) for a in args if a is not type(None))


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (the rest as given); unchanged when it has none or is not a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def load_config(toml_path: Path | None = None, **overrides: Any) -> BuildConfig:
    """Merge a TOML file (flat keys, or all of them under [build]) with overrides that are not None."""
    values: dict[str, Any] = {}
    if toml_path is not None:
        values.update(_read_toml(Path(toml_path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BuildConfig(**values)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid config: {problems}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    """The settings of a TOML config file; ConfigError (one line, quoting no more than a key) if it has others."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file does not exist: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    if "build" in table:
        outside = sorted(set(table) - {"build"})
        if outside:
            raise ConfigError(f"config file {path}: {_names(outside)} outside the [build] table (put every setting in it)")
        table = table["build"]
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [build] must be a table of settings")
    unknown = sorted(set(table) - set(BuildConfig.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {_names(unknown)} (see hiw build --help)")
    return table


def _names(keys: list[str], most: int = 8) -> str:
    shown = ", ".join(repr(k[:40]) for k in keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")
