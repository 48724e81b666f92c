"""Config inputs a user can get wrong: non-finite numbers, booleans for numbers, stray TOML keys, a file that
is not UTF-8, and credentials in --vlm-url (used for the requests, stored nowhere)."""

from __future__ import annotations

import base64
import json
import pickle
import typing

import pytest
import typer

from conftest import copy_fphab, fphab_config, hiw
from hiw.config import BuildConfig, load_config
from hiw.errors import ConfigError

FLOAT_FIELDS = [n for n, f in BuildConfig.model_fields.items() if float in (f.annotation, *typing.get_args(f.annotation))]
KEY = "sk-hiw-test-4f9c2e7a"  # a made-up API key: it must show up nowhere but in the HTTP request


def toml_error(tmp_path, text: str) -> tuple[str, object]:
    """The ConfigError message of loading ``text`` as a TOML config, and the file's path."""
    config = tmp_path / "build.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    return str(err.value), config


def one_line_usage_error(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-3000:]
    return result.stderr.strip()


# ---------------------------------------------------------------- numbers


def test_every_float_field_is_covered():
    assert {"window_s", "stride_s", "fps", "hfov_deg", "vlm_timeout_s", "task_timeout_s"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_no_float_setting_takes_inf_or_nan(name, value):
    with pytest.raises(ConfigError, match=f"^invalid config: {name}: Input should be a finite number$"):
        load_config(videos=".", **{name: value})


def test_toml_inf_and_nan_are_config_errors(tmp_path):
    message, _ = toml_error(tmp_path, "[build]\nwindow_s = inf\nmax_gap_s = nan\n")
    assert message == "invalid config: window_s: Input should be a finite number; max_gap_s: Input should be a finite number"


def test_intrinsics_must_be_finite():
    with pytest.raises(ConfigError, match="intrinsics must be four positive numbers"):
        load_config(videos=".", intrinsics="inf,500,320,240")


def test_cli_window_inf_is_one_line():
    line = one_line_usage_error(hiw("build", "--videos", ".", "--window-s", "inf"))
    assert line == "error: invalid config: window_s: Input should be a finite number"


@pytest.mark.parametrize("name", ["workers", "fit_iterations", "model_complexity", "window_s", "stride_s", "fps"])
def test_a_boolean_is_not_a_number(tmp_path, name):
    message, _ = toml_error(tmp_path, f'videos = "."\n{name} = true\n')
    assert message == f"invalid config: {name}: Input should be a number, not the boolean true"


def test_booleans_still_set_boolean_fields(tmp_path):
    config = tmp_path / "build.toml"
    config.write_text('videos = "."\nmirrored_input = true\ncompensate_head_rotation = false\nworkers = 3\n')
    cfg = load_config(config)
    assert cfg.mirrored_input and not cfg.compensate_head_rotation and cfg.workers == 3


def test_cli_integer_and_float_flags_still_parse(monkeypatch):
    """Typer turns the flag strings into ints and floats before the config sees them."""
    from typer.testing import CliRunner

    from hiw import cli

    seen = []

    def config_seen(cfg):  # stop the command once it has its config: the build itself is not the point here
        seen.append(cfg)
        raise typer.Exit(0)

    monkeypatch.setattr(cli, "run_and_report", config_seen)
    result = CliRunner().invoke(
        cli.app, ["build", "--videos", ".", "--workers", "3", "--window-s", "4", "--model-complexity", "0"]
    )
    assert result.exit_code == 0 and len(seen) == 1, result.output
    assert (seen[0].workers, seen[0].window_s, seen[0].model_complexity) == (3, 4.0, 0)


# ---------------------------------------------------------------- TOML layout and encoding


@pytest.mark.parametrize(
    "text, message",
    [
        ('videos = "."\n[build]\nwindow_s = 3.0\n', "'videos' outside the [build] table (put every setting in it)"),
        ("[build]\nwindow_s = 3.0\n[tool]\nx = 1\n", "'tool' outside the [build] table (put every setting in it)"),
        ('build = "fast"\n', "[build] must be a table of settings"),
        ('videos = "."\nwindow = 3.0\n[extras]\nx = 1\n', "unknown setting(s) 'extras', 'window' (see hiw build --help)"),
        ('[build]\nvideos = "."\nwindwo_s = 3.0\n', "unknown setting(s) 'windwo_s' (see hiw build --help)"),
    ],
)
def test_toml_keys_that_would_be_ignored_are_errors(tmp_path, text, message):
    error, config = toml_error(tmp_path, text)
    assert error == f"config file {config}: {message}"


def test_cli_key_beside_the_build_table_is_one_line(tmp_path):
    config = tmp_path / "build.toml"
    config.write_text('videos = "."\n[build]\nwindow_s = 3.0\n')
    line = one_line_usage_error(hiw("build", "--config", str(config)))
    assert line == f"error: config file {config}: 'videos' outside the [build] table (put every setting in it)"


def test_flat_and_build_table_layouts_both_work(tmp_path):
    flat, table = tmp_path / "flat.toml", tmp_path / "table.toml"
    flat.write_text('videos = "."\nwindow_s = 3.0\n')
    table.write_text('[build]\nvideos = "."\nwindow_s = 3.0\n')
    assert load_config(flat) == load_config(table) and load_config(flat).window_s == 3.0


def test_cli_latin1_toml_is_one_line_that_does_not_quote_it(tmp_path):
    config = tmp_path / "latin1.toml"
    config.write_bytes('videos = "."\n# notes of the café crew: do not share\n'.encode("latin-1"))
    line = one_line_usage_error(hiw("build", "--config", str(config)))
    assert line == f"error: config file {config} is not UTF-8 text (byte 0xe9 on line 2)"


# ---------------------------------------------------------------- credentials in --vlm-url


def test_credentials_leave_the_url_field_but_reach_the_backend():
    from hiw.flows.build import hiw_build
    from hiw.flows.stages import make_backend

    cfg = load_config(videos=".", vlm="openai", vlm_model="m", vlm_url=f"http://hiw:{KEY}@gpu-host:8000/v1")
    assert cfg.vlm_url == "http://gpu-host:8000/v1" and cfg.has_vlm_credentials()
    assert cfg.vlm_endpoint() == f"http://hiw:{KEY}@gpu-host:8000/v1"
    # every serialised form: JSON dump (build.json, version manifests), repr, and what Prefect stores for the flow run
    assert KEY not in cfg.model_dump_json() and KEY not in repr(cfg) and KEY not in str(cfg.model_dump())
    assert KEY not in json.dumps(hiw_build.serialize_parameters({"config": cfg}))
    # the credential travels with the config to worker processes and through copies
    assert pickle.loads(pickle.dumps(cfg)).vlm_endpoint() == cfg.vlm_endpoint()
    assert cfg.model_copy(update={"workers": 1}).vlm_endpoint() == cfg.vlm_endpoint()
    # a config read back from its JSON has no credential: the key then comes from HIW_VLM_API_KEY
    again = BuildConfig.model_validate(cfg.model_dump(mode="json"))
    assert not again.has_vlm_credentials() and again.vlm_endpoint() == "http://gpu-host:8000/v1"
    backend = make_backend(cfg)
    assert backend.url == "http://gpu-host:8000/v1" and KEY not in repr(backend)
    assert backend._auth is not None  # basic auth from the URL's user and password


def test_a_url_without_credentials_is_unchanged():
    cfg = load_config(videos=".", vlm_url="https://example.org:8443/v1?x=1")
    assert cfg.vlm_url == "https://example.org:8443/v1?x=1" and not cfg.has_vlm_credentials()


@pytest.mark.slow
def test_a_build_authenticates_with_the_url_credentials_and_stores_them_nowhere(tmp_path, fphab_dir):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from hiw.flows.build import build_flow
    from hiw.testing.openai_server import OpenAIServer

    inputs = tmp_path / "in"
    copy_fphab(fphab_dir, inputs, "Subject_1/charge_cell_phone/1")
    out = tmp_path / "out"
    with OpenAIServer(model="loopback-vlm") as server:
        plain = server.url
        url = plain.replace("http://", f"http://hiw:{KEY}@")
        summary = build_flow(fphab_config(inputs, out, vlm="openai", vlm_url=url, vlm_model="loopback-vlm"))
        headers = server.headers
    assert summary.clips_accepted > 0 and headers
    basic = "Basic " + base64.b64encode(f"hiw:{KEY}".encode()).decode()
    assert all(h.get("authorization") == basic for h in headers)

    stored = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "build.json" for p in stored) and any(p.parent.name == "versions" for p in stored)
    assert [p for p in stored if KEY.encode() in p.read_bytes()] == []
    assert json.loads((out / "build.json").read_text())["config"]["vlm_url"] == plain

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["hiw-build"])), sort=FlowRunSort.START_TIME_DESC, limit=50
        )
        (run,) = [r for r in runs if r.parameters.get("config", {}).get("out") == str(out)]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert run.parameters["config"]["vlm_url"] == plain and KEY not in json.dumps(run.parameters)
    assert artifacts and not [a.key for a in artifacts if KEY in str(a.data)]  # the run report


def test_deploy_refuses_credentials_in_the_url(tmp_path):
    from hiw.flows.deploy import serve_build

    cfg = load_config(videos=str(tmp_path), vlm="openai", vlm_model="m", vlm_url=f"http://hiw:{KEY}@gpu-host:8000/v1")
    said = []
    with pytest.raises(ConfigError) as err:
        serve_build(cfg, "nightly", "0 3 * * *", say=said.append)
    assert str(err.value) == (
        "hiw deploy stores the config in Prefect's database, so --vlm-url must not hold credentials (given for "
        "http://gpu-host:8000/v1); set HIW_VLM_API_KEY in the environment of `hiw deploy` instead"
    )
    assert said == []  # refused before anything was registered or served
