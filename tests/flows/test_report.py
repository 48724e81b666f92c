"""The run report: the printed tables and the Prefect markdown artifact say the same things."""

from __future__ import annotations

from rich.console import Console

from conftest import copy_fphab_all, fphab_config
from hiw.flows.build import REPORT_KEY, build_flow
from hiw.report import print_summary, report_markdown, report_tables


def test_the_artifact_and_the_printed_report_carry_the_same_tables(tmp_path, fphab_dir):
    from prefect.artifacts import Artifact

    copy_fphab_all(fphab_dir, tmp_path / "in", ("Subject_1/pour_milk/1", "Subject_2/squeeze_paper/5"))
    (tmp_path / "in" / "broken.txt").write_text("not a track file\n")
    cfg = fphab_config(tmp_path / "in", tmp_path / "out")
    summary = build_flow(cfg)

    artifact = Artifact.get(REPORT_KEY)
    assert artifact is not None and artifact.data == report_markdown(summary)
    console = Console(record=True, width=240)
    print_summary(summary, console)
    printed = console.export_text()
    tables = report_tables(summary)
    assert [t.title for t in tables] == ["hiw build: v1, new", "rejects by stage/reason", tables[2].title]
    for table in tables:
        assert table.title in artifact.data and table.title.split(" (")[0] in printed
        for row in table.rows:
            assert "| " + " | ".join(row) + " |" in artifact.data
            assert all(cell in printed for cell in row if cell)
    rows = dict(tables[0].rows)
    assert rows["clips accepted"] == str(summary.clips_accepted) and summary.clips_accepted > 0
    assert rows["videos found / probed"] == "3 / 2"
    assert dict(tables[1].rows) == {r: str(n) for r, n in summary.rejects_by_reason.items()}
    assert {row[0] for row in tables[2].rows} >= {"probe", "load", "motion", "write"}

    again = build_flow(cfg)  # nothing changed
    assert not again.published
    assert "nothing changed: v1 stays current, no new version" in Artifact.get(REPORT_KEY).data
