"""Smoke tests of ``python -m benchmarks``: every suite at its smallest size, the JSON schema, the report.

No timing is asserted: only that each suite runs, writes a record that follows the schema and
holds its raw timings.  The MFU / anchor arithmetic is checked as plain functions.
"""

import json
from pathlib import Path

import pytest
from conftest import run_cli

from benchmarks.common import check_record


def run_suite(tmp_path: Path, suite: str, *args: str, timeout: float = 300) -> dict:
    results = tmp_path / "results"
    proc = run_cli(
        "benchmarks",
        suite,
        "--quick",
        "--threads",
        "1",
        "--results-dir",
        str(results),
        *args,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = Path(proc.stdout.strip().splitlines()[-1].removeprefix("wrote "))
    assert path.parent == results and path.name.startswith(f"{suite}-")
    record = json.loads(path.read_text())
    assert check_record(record) == [], check_record(record)
    assert record["suite"] == suite and record["command"].startswith(
        f"python -m benchmarks {suite} --quick"
    )
    m = record["machine"]
    assert m["torch"] and m["cpu_model"] and m["cores"] >= 1 and m["load_avg"]
    assert (
        suite == "data" or m["torch_threads"] == 1
    )  # FFCV's loader sets torch's thread count itself
    return record


def test_models_suite_records_train_and_infer_ratios_and_memory(tmp_path):
    record = run_suite(tmp_path, "models")
    (row,) = record["rows"]
    assert (
        row["model"] == "resnet18"
        and row["dtype"] == "fp32"
        and row["memory_format"] == "contiguous"
    )
    for mode in ("train", "infer"):
        r = row[mode]
        assert r["ratio"] > 0 and len(r["raw_s"]["ours"]) == len(r["raw_s"]["torchvision"]) == 1
    for impl in ("ours", "torchvision"):
        assert row["memory"][impl]["kind"] == "rss" and row["memory"][impl]["peak_mb"] > 0


def test_data_suite_compares_ffcv_with_imagefolder(tmp_path):
    record = run_suite(tmp_path, "data", "--storage", "jpg", "--dir", str(tmp_path / "data"))
    (row,) = record["rows"]
    assert (
        row["storage"] == "jpg"
        and row["ratio"] > 0
        and row["raw_images_per_s"]
        and row["fraction_of_bound"] > 0
    )
    assert record["torchvision_raw_images_per_s"] and record["images"] == "natural"
    # the decode bound: every image the loaders deliver (64 of 64 at batch 16), decoded, with and without the crop
    assert set(record["bounds"]) == {
        "bound-tree",
        "bound-tree+crop",
        "bound-beton",
        "bound-beton+crop",
    }
    assert all(b["images"] == 64 and b["images_per_s"] > 0 for b in record["bounds"].values())


def test_natural_images_are_imagenet_sized_crops_of_the_sample_photos():
    import numpy as np

    from benchmarks.data_loading import natural_image, sample_photos

    photos = sample_photos()
    assert len(photos) >= 10  # scikit-learn's 2 + scikit-image's (the dev extra)
    rng = np.random.default_rng(0)
    for _ in range(8):
        img = natural_image(photos, rng)
        assert (
            img.dtype == np.uint8
            and img.shape[2] == 3
            and 333 <= min(img.shape[:2]) <= max(img.shape[:2]) <= 500
        )
        assert img.std() > 10  # content, not a flat fill


def test_denormal_suite_runs_on_denormal_gradients(tmp_path):
    record = run_suite(tmp_path, "denormal", "--clock", "cpu")
    (row,) = record["rows"]
    assert (
        row["model"] == "resnet20"
        and row["ratio"] > 0
        and set(row["step_s"]) == {"denormals", "flushed"}
    )
    # the vanished state puts most gradients below float32's smallest normal; flushing zeroes them
    assert (
        row["denormal_grad_fraction"]["denormals"] > 0.5
        and row["denormal_grad_fraction"]["flushed"] == 0.0
    )


def test_overhead_suite_times_lightning_and_plain_loops(tmp_path):
    record = run_suite(tmp_path, "overhead")
    assert set(record["step_s"]) == {"lightning", "plain", "plain_minimal"}
    stamps = record["raw"]["stamps"]
    assert all(len(run) == record["options"]["steps"] for runs in stamps.values() for run in runs)
    assert record["ratio"] > 0 and record["overhead_pct"] == pytest.approx(
        100 * (record["ratio"] - 1)
    )


def test_scaling_suite_sweeps_batch_resolution_and_zoo(tmp_path):
    record = run_suite(tmp_path, "scaling")
    assert [r["batch"] for r in record["batch_sweep"]["rows"]] == [2, 4]
    assert [r["resolution"] for r in record["resolution_sweep"]["rows"]] == [32, 48]
    assert {"slope", "intercept", "r2"} <= set(record["batch_sweep"]["fit"])
    assert {r["model"] for r in record["zoo"]} == {"resnet18", "mobilenet_v2"}
    assert all(r["macs"] > 0 and r["ms_per_gmac"] > 0 for r in record["zoo"])


def test_gpu_suite_skips_cleanly_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the skip path does not apply")
    record = run_suite(tmp_path, "gpu")
    assert record["skipped"] is True and "no CUDA" in record["reason"]


def test_report_regenerates_results_markdown_from_records(tmp_path):
    run_suite(tmp_path, "gpu")
    results = tmp_path / "results"
    # a record of another suite, built in-process so the test stays fast; plus a file to ignore
    from benchmarks.common import write_result

    write_result(
        "overhead",
        {
            "model": "resnet20",
            "resolution": 16,
            "batch": 4,
            "steps": 6,
            "warmup_steps": 2,
            "reps": 1,
            "precision": "32-true",
            "channels_last": False,
        },
        {
            "device": "cpu",
            "step_s": {"lightning": 0.0104, "plain": 0.01, "plain_minimal": 0.0095},
            "raw": {},
            "ratio": 1.04,
            "overhead_pct": 4.0,
            "ratio_vs_minimal": 1.095,
        },
        argv=["--quick"],
        results_dir=results,
    )
    (results / "old-format.json").write_text('{"machine": {}}')
    out = tmp_path / "RESULTS.md"
    proc = run_cli("benchmarks", "report", "--results-dir", str(results), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# Benchmark results") and "never edited by hand" in text
    assert (
        "python -m benchmarks overhead --quick" in text and "1.040" in text and "**pass**" in text
    )
    assert "no GPU was available" in text
    assert "## Model step throughput" in text and "No record." in text


def test_check_record_names_the_problems():
    assert check_record([]) == ["not a JSON object"]
    problems = check_record(
        {"schema": 1, "suite": "models", "command": "x", "options": {}, "machine": {}}
    )
    assert "missing 'rows'" in problems and "machine: missing 'cpu_model'" in problems
    assert any(p.startswith("command") for p in problems)


def test_mfu_and_anchor_arithmetic():
    from benchmarks.gpu import anchor_comparison, mfu, peak_tflops, training_flops_per_image

    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and peak_tflops("NVIDIA H200") == 989.0
    assert (
        peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
        and peak_tflops("NVIDIA GeForce RTX 3090") == 71.0
    )
    assert peak_tflops("Some Future GPU") is None and peak_tflops("Some Future GPU", 123.0) == 123.0
    assert peak_tflops(None) is None
    # ResNet-50: 4.1 GMACs forward -> 24.6 GFLOPs per training image; 3000 img/s on a 989 TFLOP/s GPU
    assert training_flops_per_image(4_100_000_000) == pytest.approx(24.6e9)
    assert mfu(4_100_000_000, 3000.0, 989.0) == pytest.approx(24.6e9 * 3000 / 989e12)
    assert mfu(4_100_000_000, 3000.0, None) is None
    (ffcv, mlperf, timm) = anchor_comparison("resnet50", 3562.5)
    assert ffcv["ratio"] is None and "73.8%" in ffcv["source"]
    assert mlperf["images_per_s_per_gpu"] == pytest.approx(7125.0) and mlperf[
        "ratio"
    ] == pytest.approx(0.5)
    assert timm["images_per_s_per_gpu"] == 1218.0 and "3090" in timm["gpu"]
    assert anchor_comparison("efficientnet_b0", 876.0)[0]["ratio"] == pytest.approx(0.5)
    assert anchor_comparison("mobilenet_v1", 1.0) == []


def test_gpu_suite_helpers_run_on_cpu():
    import torch

    from benchmarks.gpu import (
        anchor_comparison,
        build_model,
        fitting_batches,
        matmul_tflops,
        normalize_ab,
    )

    assert fitting_batches(256) == [256, 128, 64, 32, 16, 8] and fitting_batches(8) == [8]
    assert matmul_tflops("cpu", n=64, reps=2, dtype=torch.float32) > 0
    ours, tv = (
        build_model("resnext101_32x4d", "ours"),
        build_model("resnext101_32x4d", "torchvision"),
    )
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (
        count(ours) == count(tv) and abs(count(ours) - 44.18e6) < 0.05e6
    )  # DLE's ResNeXt101-32x4d: 44.18M
    dle = anchor_comparison("resnext101_32x4d", 454.0)
    assert [a["images_per_s_per_gpu"] for a in dle] == [908.0, 861.0] and dle[0][
        "ratio"
    ] == pytest.approx(0.5)
    assert anchor_comparison("resnet50", 1.0)[0]["ratio"] is None  # ffcv-imagenet: time to accuracy
    r = normalize_ab("cpu", batch=2, resolution=16, reps=1)
    assert r["output_dtype"] == {"fp32": "float32", "bf16": "bfloat16"} and r["ratio"] > 0


def test_device_normalize_in_the_autocast_dtype():
    import torch

    from datamodules.normalize import DeviceNormalize, autocast_dtype

    assert autocast_dtype("bf16-mixed") == "bf16" and autocast_dtype("16-mixed") == "fp16"
    assert autocast_dtype("32-true") is None and autocast_dtype(None) is None
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    ref = DeviceNormalize(mean, std).images(x)
    assert (
        DeviceNormalize(mean, std, dtype="bf16").images(x).dtype == torch.float32
    )  # CPU: unchanged by default
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        out = DeviceNormalize(
            mean, std, dtype=name, lowp_devices=("cpu",), channels_last=True
        ).images(x)
        assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(out.float(), ref, atol=0.04, rtol=0.01)
    with pytest.raises(ValueError, match="normalize dtype"):
        DeviceNormalize(mean, std, dtype="int8")


def test_report_keeps_sections_whose_records_are_absent(tmp_path):
    from benchmarks.report import KEPT, previous_sections, render

    old = tmp_path / "RESULTS.md"
    old.write_text(
        "# Benchmark results\n\n## Targets\n\n| target | measured | verdict |\n|---|---|---|\n"
        "| overhead on cpu (resnet20): Lightning/plain ≤ 1.05 | 1.011 | pass |\n\n"
        "## Framework overhead: Lightning vs a plain loop\n\nMachine: `vm` ... 1.011\n"
    )
    text = render([], previous_sections(old))
    assert (
        KEPT in text
        and "Machine: `vm` ... 1.011" in text
        and "| overhead on cpu (resnet20)" in text
    )
    assert text.count(KEPT) == 1 and "## Model step throughput" in text and "No record." in text
    assert render([], previous_sections(tmp_path / "missing.md")).count(KEPT) == 0


def test_unknown_suite_is_a_usage_error():
    proc = run_cli("benchmarks", "nope")
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_e2e_suite_exits_2_with_how_to_get_the_reference(tmp_path, capsys):
    from benchmarks.e2e import main, reference_script

    for argv in ([], ["--reference", str(tmp_path / "vision")]):
        assert main([*argv, "--results-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")  # one line
        assert "git clone --depth 1 https://github.com/pytorch/vision" in err
        assert "--reference DIR" in err
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "train.py").write_text(
        "import presets\nimport torch\nimport utils\nfrom sampler import RASampler\n"
    )
    (ref / "utils.py").write_text("")
    script, why = reference_script(ref)
    assert script is None and "presets.py, sampler.py missing beside train.py" in why
    (ref / "presets.py").write_text("")
    (ref / "sampler.py").write_text("")
    assert reference_script(ref) == (ref / "train.py", None) == reference_script(ref / "train.py")
    assert not list(tmp_path.glob("e2e-*.json"))  # nothing measured, nothing written


STUB_REFERENCE = """import json, sys, time
json.dump(sys.argv[1:], open("argv.json", "w"))
print("Creating model")
print("Start training")
time.sleep(0.2)
print("Epoch: [0]  [0/2]  eta: 0:00:01  lr: 0.1  loss: 2.3 (2.3)  time: 0.1500  data: 0.0420")
print("Epoch: [0] Total time: 0:00:01")
print("Test:  Acc@1 10.000 Acc@5 50.000")
"""


def test_e2e_plumbing_reads_the_reference_log_and_passes_matching_flags(tmp_path):
    """The reference's command line and log parsing, with a stand-in for its train.py (the real one
    is not part of the project); and ours' command line: same model, batch, crops, SGD."""
    import argparse

    from benchmarks.e2e import ours_command, reference_command, run_reference

    (tmp_path / "train.py").write_text(STUB_REFERENCE)
    tree = tmp_path / "tree"
    for i in range(6):
        (tree / "train" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (tree / "train" / f"c{i % 2}" / f"{i}.JPEG").write_bytes(b"")
    a = argparse.Namespace(
        script=tmp_path / "train.py",
        batch=4,
        workers=1,
        lr=0.1,
        weight_decay=1e-4,
        resolution=160,
        val_resize=182,
        threads=1,
    )
    work = tmp_path / "work"
    work.mkdir()
    r = run_reference("resnet50", tree, a, work)
    assert r["images"] == 6 and r["printed_total_s"] == 1 and r["first_batch_wait_s"] == 0.042
    assert 0.15 <= r["seconds"] < r["process_wall_s"]
    argv = json.loads((work / "argv.json").read_text())
    assert argv == reference_command("resnet50", tree, a)[3:]
    flags = dict(zip(argv[::2], argv[1::2], strict=False))
    assert flags["--model"] == "resnet50" and flags["--device"] == "cpu" and flags["-b"] == "4"
    crops = (flags["--train-crop-size"], flags["--val-resize-size"], flags["--val-crop-size"])
    assert crops == ("160", "182", "160")
    sgd = (flags["--opt"], flags["--epochs"], flags["--momentum"], flags["--wd"], flags["--lr"])
    assert sgd == ("sgd", "1", "0.9", "0.0001", "0.1")
    ours = ours_command("resnet50", tree, a, work, "run")[3:]
    for kv in (
        "model=resnet50",
        "data.batch_size=4",
        "data.resolution=160",
        "data.val_resolution=160",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "optim.momentum=0.9",
        "optim.nesterov=false",
        "optim.lr=0.1",
        "optim.weight_decay=0.0001",
        "schedule.name=constant",
        f"data.path={tree}",
    ):
        assert kv in ours, kv
    assert "data.val_crop_ratio=0.879121" in ours  # 160 / 182: the reference's resize-then-crop


def test_e2e_record_renders_in_the_report(tmp_path):
    from benchmarks.common import write_result
    from benchmarks.report import newest, render

    side = {"seconds": 10.0, "images": 256, "images_per_s": 25.6, "load_before": 3.0}
    options = {
        "models": "resnet18",
        "resolution": 160,
        "val_resize": 182,
        "images": 256,
        "classes": 10,
        "batch": 32,
        "workers": 2,
        "lr": 0.1,
        "weight_decay": 1e-4,
        "alternations": 1,
        "threads": 1,
        "script": "/x/train.py",
    }
    row = {
        "model": "resnet18",
        "ours_images_per_s": 30.0,
        "reference_images_per_s": 25.0,
        "ratio": 1.2,
        "ratio_reference_first_batch_excluded": 1.15,
        "load_before": [3.0, 3.1],
    }
    pair = {"model": "resnet18", "round": 0, "ours": side, "reference": side}
    write_result(
        "e2e",
        options,
        {"rows": [row], "pairs": [pair], "timing": "t"},
        argv=["--reference", "/x"],
        results_dir=tmp_path,
    )
    text = render(newest(tmp_path))
    assert "## End to end: platform.train vs torchvision's reference script" in text
    assert "python -m benchmarks e2e --reference /x" in text
    assert "**1.200**" in text and "| 1.150 |" in text and "| 3.0 / 3.0 |" in text
