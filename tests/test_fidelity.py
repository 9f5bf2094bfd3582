"""The fidelity report (issue 24): generated from the data, current, and honest per row."""

from __future__ import annotations

import subprocess
import sys

from platform.papers import fidelity
from platform.papers.tables import list_tables, load_table


def test_committed_report_is_the_generated_one():
    """docs/fidelity.md is what `python -m platform.fidelity` writes now (regenerate it after a
    change to the registry, a table or a recipe)."""
    r = subprocess.run(
        [sys.executable, "-m", "platform.fidelity", "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_every_table_row_has_both_verdicts():
    text = fidelity.report()
    for table in list_tables():
        assert f"## {table.name}:" in text
        for row in table.rows:
            assert f"| {row.id} | `{row.model}` |" in text


def test_a_recipe_deviation_is_named_and_a_known_architecture_deviation_too():
    verdict, evidence = fidelity.recipe(load_table("resnet_table3"))
    assert verdict == "deviates" and "a plateau is not a fixed schedule" in evidence
    verdict, _ = fidelity.recipe(load_table("efficientnet_scaling"))
    assert verdict == "n/a"
    rx = next(r for r in load_table("resnext_table3").rows if r.model == "resnet50")
    verdict, evidence = fidelity.architecture(rx)
    assert "row variant stride_on=3x3" in evidence


def test_stale_report_is_refused(tmp_path):
    out = tmp_path / "f.md"
    out.write_text("old\n")
    assert fidelity.main(["--out", str(out), "--check"]) == 1
    assert fidelity.main(["--out", str(out)]) == 0
    assert fidelity.main(["--out", str(out), "--check"]) == 0
