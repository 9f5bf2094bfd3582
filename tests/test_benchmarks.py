import json

from conftest import run_cli


def test_model_benchmark_runs_and_records_ratios(tmp_path):
    proc = run_cli("benchmarks", "models", "--models", "resnet18", "--batch", "2", "--resolution", "64",
                   "--reps", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout
    path = proc.stdout.strip().splitlines()[-1].removeprefix("wrote ")
    record = json.loads(open(path).read())
    (row,) = record["rows"]
    assert row["model"] == "resnet18" and row["ratio"] > 0 and record["machine"]["torch"]


def test_unknown_suite_is_a_usage_error():
    proc = run_cli("benchmarks", "nope")
    assert proc.returncode == 2 and "usage" in proc.stderr
