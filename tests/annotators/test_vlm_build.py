"""`hiw build --vlm openai` end to end: real video, real tracking, the real HTTP client and a loopback
OpenAI-compatible server (standing in for `vllm serve` on a GPU), real Prefect flows in a subprocess."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from conftest import fixture_file, hiw
from hiw.prompts import PCOT
from hiw.testing.openai_server import Behaviour, OpenAIServer

pytestmark = pytest.mark.slow
MODEL = "loopback-vlm"
PROMPTS = sorted([*(p.name for p in PCOT), "summarise", "closed_vocab"])


def query(root, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def summary(root) -> dict:
    return json.loads((root / "build.json").read_text())["summary"]


def vlm_args(server: OpenAIServer, *extra: str) -> list[str]:
    return ["--vlm", "openai", "--vlm-url", server.url, "--vlm-model", MODEL, *extra]


@pytest.fixture(scope="module")
def kitchen_inputs(tmp_path_factory, kitchen_video):
    videos = tmp_path_factory.mktemp("vlm-kitchen-in")
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    (videos / "narrations.csv").write_text(
        f"video,start_s,end_s,text\n{kitchen_video.name},0.0,5.0,#C C picks up the plate with both hands\n"
    )
    return videos


def test_kitchen_video_gets_pcot_and_closed_vocabulary_captions_and_a_rebuild_calls_nothing(kitchen_inputs, tmp_path):
    out = tmp_path / "out"
    args = ["build", "--manifest", str(kitchen_inputs / "narrations.csv"), "--out", str(out), "--min-both-hands-frac", "0.5"]
    with OpenAIServer(model=MODEL) as server:
        first = hiw(*args, *vlm_args(server, "--vlm-frames", "4"))
        assert first.returncode == 0, first.stderr[-3000:]
        calls = len(server.requests)
        assert calls == 6  # one accepted clip: four PCoT questions, the summary, the closed-vocabulary caption
        assert all(sum(p["type"] == "image_url" for p in r["messages"][1]["content"]) == 4 for r in server.requests)
        same = hiw(*args, *vlm_args(server, "--vlm-frames", "4"))
        assert same.returncode == 0, same.stderr[-3000:]
        assert len(server.requests) == calls and not summary(out)["published"]  # nothing changed: no work, no version
        # a QA setting changed: the annotation is redone (no tracking), every answer from the response cache
        again = hiw(*args, *vlm_args(server, "--vlm-frames", "4", "--qa-min-agreement", "0.2"))
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.requests) == calls
    done = summary(out)
    assert done["vlm_calls"] == 0 and done["vlm_cache_hits"] == 6 and done["version"] == "v2" and done["published"]
    assert done["videos_processed"] == 0 and done["videos_reused"] == 1 and "track" not in done["stage_times"]
    rows = query(out, "SELECT prompt, status, cached, model, n_frames FROM responses ORDER BY prompt")
    assert [r[0] for r in rows] == PROMPTS and {r[1:] for r in rows} == {("ok", True, MODEL, 4)}
    kinds = dict(query(out, "SELECT kind, count(*) FROM captions GROUP BY kind"))
    assert kinds == {"kinematic": 1, "narration": 1, "pcot_summary": 1, "closed_vocab": 1}
    [(prompt_version, response_ok)] = query(
        out,
        "SELECT c.prompt_version, r.status = 'ok' FROM captions c JOIN responses r USING (response_id) "
        "WHERE c.kind = 'pcot_summary'",
    )
    assert prompt_version.startswith("v1+") and response_ok
    vocab = query(out, "SELECT kind, word FROM vocabulary ORDER BY kind, word")
    assert ("verb", "pick up") in vocab and ("object", "plate") in vocab
    [(clip_id,)] = query(out, "SELECT clip_id FROM clips WHERE status = 'accepted'")
    assert len(list((out / "cache" / "frames" / f"{clip_id}-4x448").glob("*.jpg"))) == 4
    assert "VLM calls / cache hits" in again.stdout and "0 / 6" in again.stdout


@pytest.fixture(scope="module")
def fphab_inputs(tmp_path_factory, fphab_dir):
    """Three real F-PHAB sequences (one right hand, no video): text-only prompts."""
    inputs = tmp_path_factory.mktemp("vlm-fphab-in")
    rows = ["video,start_s,end_s,text"]
    for source, name, text in [
        ("S1_write_1_skeleton.txt", "write_1.txt", "#C C writes on the paper"),
        ("S1_stir_1_skeleton.txt", "stir_1.txt", "#C C stirs the cup with a spoon"),
        ("Subject_1/open_juice_bottle/3/skeleton.txt", "open_juice_bottle_3.txt", "#C C opens the juice bottle"),
    ]:
        shutil.copy(fixture_file(fphab_dir / source), inputs / name)
        rows.append(f"{name},0.0,30.0,{text}")
    (inputs / "narrations.csv").write_text("\n".join(rows) + "\n")
    return inputs


def fphab_args(inputs, out) -> list[str]:
    return ["build", "--manifest", str(inputs / "narrations.csv"), "--out", str(out), "--tracker", "precomputed"]


def test_caption_giving_the_missing_hand_an_action_is_rejected(fphab_inputs, tmp_path):
    """F-PHAB records only the right hand: a VLM that says the left hand acts is hallucinating."""
    out = tmp_path / "out"
    answers = {
        "hand_role": {"left_role": "active", "left_action": "holds the cup", "right_role": "active", "right_action": "stirs"},
        "summarise": {
            "caption": "The left hand holds the cup while the right hand stirs.",
            "verbs": ["hold"],
            "objects": ["cup"],
        },
    }

    def script(body: dict, n: int) -> Behaviour:
        answer = answers.get(body["response_format"]["json_schema"]["name"])
        return Behaviour.ok(json.dumps(answer) if answer else None)

    vocab = tmp_path / "narrations.txt"  # --vocab: the closed vocabulary from another corpus's narrations
    vocab.write_text("#C C holds the mug\n#C C stirs the tea with a spoon\n#C C writes a note in the notebook\n")
    with OpenAIServer(model=MODEL, script=script) as server:
        result = hiw(*fphab_args(fphab_inputs, out), "--min-both-hands-frac", "0", "--vocab", str(vocab), *vlm_args(server))
    assert result.returncode == 0, result.stderr[-3000:]
    words = {w for (w,) in query(out, "SELECT word FROM vocabulary")}
    assert {"hold", "stir", "write", "mug", "tea", "notebook"} <= words and "juice" not in words
    accepted = query(out, "SELECT count(*) FROM clips WHERE status = 'accepted'")[0][0]
    assert accepted >= 2
    assert query(out, "SELECT count(*) FROM responses WHERE n_frames = 0")[0][0] == 6 * accepted  # text only
    flagged = query(out, "SELECT qa_passed, qa_notes FROM captions WHERE kind = 'pcot_summary'")
    assert len(flagged) == accepted and all(not ok and any(n.startswith("grounding:") for n in notes) for ok, notes in flagged)
    reasons = query(out, "SELECT reason, count(*) FROM rejects WHERE stage = 'caption_qa' GROUP BY reason")
    assert ("pcot_summary.grounding", accepted) in reasons
    # the motion and the kinematic captions are untouched by the VLM's failure
    assert query(out, "SELECT count(*) FROM captions WHERE kind = 'kinematic'")[0][0] == accepted


def test_unreachable_server_records_failures_and_keeps_the_motion(fphab_inputs, tmp_path):
    out = tmp_path / "out"
    with OpenAIServer(model=MODEL) as server:
        url = server.url  # the port is free again once the server is gone
    result = hiw(
        *fphab_args(fphab_inputs, out), "--min-both-hands-frac", "0", "--vlm", "openai", "--vlm-url", url,
        "--vlm-model", MODEL, "--vlm-retries", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    accepted = query(out, "SELECT count(*) FROM clips WHERE status = 'accepted'")[0][0]
    assert accepted >= 2 and query(out, "SELECT count(*) FROM motion")[0][0] == accepted
    statuses = query(out, "SELECT status, attempts, count(*) FROM responses GROUP BY ALL")
    assert statuses == [("error", 2, 4 * accepted)]
    assert query(out, "SELECT reason, count(*) FROM rejects WHERE stage = 'annotate' GROUP BY reason") == [
        ("pcot_failed", accepted)
    ]
    assert summary(out)["vlm_failed_calls"] == 4 * accepted


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vlm", "openai"], "--vlm openai needs --vlm-model"),
        (["--vlm", "openai", "--vlm-model", MODEL, "--vocab", "/no/such/vocab.txt"], "vocabulary file does not exist"),
        (["--vlm", "openai", "--vlm-model", MODEL, "--vlm-concurrency", "0"], "vlm_concurrency"),
    ],
)
def test_vlm_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    result = hiw("build", "--videos", str(tmp_path), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
