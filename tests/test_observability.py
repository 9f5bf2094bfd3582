"""Issue 17: seeing what a run does (throughput, log lines, train.log, chatter), the Lightning knobs,
config composition."""

import json
import re
import warnings

import pytest
import torch
import yaml
from conftest import cli_env, run_cli

from platform.run.config import from_dict, help_text, load_config, to_yaml
from platform.run.schema import ConfigError

CHATTER = (
    "The `srun` command is available on your system but is not used",
    "Tip: For seamless",
    "LeafSpec",
    "The anonymous setting has no effect",
)


# ---------------------------------------------------------------------------- knobs
def test_limit_batches_keep_their_type_and_meaning():
    from platform.run.compose import lightning_knobs

    one, all_ = (
        load_config(["trainer.limit_train_batches=1"]),
        load_config(["trainer.limit_train_batches=1.0"]),
    )
    assert (
        lightning_knobs(one)["limit_train_batches"] == 1
        and type(one.trainer.limit_train_batches) is int
    )
    assert type(all_.trainer.limit_train_batches) is float
    saved = yaml.safe_load(to_yaml(one))
    assert (
        saved["trainer"]["limit_train_batches"] == 1
        and type(saved["trainer"]["limit_train_batches"]) is int
    )
    assert type(from_dict(yaml.safe_load(to_yaml(all_))).trainer.limit_train_batches) is float
    for bad in ("1.5", "-2", "abc"):
        with pytest.raises(ConfigError, match="limit_train_batches"):
            load_config([f"trainer.limit_train_batches={bad}"])
    knobs = lightning_knobs(
        load_config(
            [
                "trainer.accumulate_grad_batches=4",
                "trainer.check_val_every_n_epoch=2",
                "trainer.fast_dev_run=true",
                "trainer.overfit_batches=3",
            ]
        )
    )
    assert knobs["accumulate_grad_batches"] == 4 and knobs["check_val_every_n_epoch"] == 2
    assert knobs["fast_dev_run"] is True and knobs["overfit_batches"] == 3


def test_devices_and_precision_are_validated():
    with pytest.raises(ConfigError, match=r"trainer\.devices: 'two'"):
        load_config(["trainer.devices=two"])
    assert load_config(["trainer.devices=[0,1]"]).trainer.devices == [0, 1]
    assert load_config(["trainer.devices=2"]).trainer.devices == 2
    assert load_config(["trainer.precision=bf16"]).trainer.precision == "bf16-mixed"
    assert load_config(["trainer.precision=16"]).trainer.precision == "16-mixed"
    with pytest.raises(ConfigError, match="expected one of 32-true, bf16-mixed, 16-mixed$"):
        load_config(["trainer.precision=64"])
    with pytest.raises(ConfigError, match="profiler"):
        load_config(["trainer.profiler=fancy"])
    with pytest.raises(ConfigError, match="accumulate_grad_batches"):
        load_config(["trainer.accumulate_grad_batches=0"])
    assert "32-true | bf16-mixed | 16-mixed" in help_text()


def test_accumulation_scales_lr_by_the_effective_batch():
    from platform.run.compose import module_kwargs
    from platform.run.module import ClassificationModule

    lr = lambda *o: (
        ClassificationModule(
            **module_kwargs(load_config(["optim.reference_batch_size=32", *o]), 10)
        ).peak_lr
    )  # noqa: E731
    assert lr("data.batch_size=32", "trainer.accumulate_grad_batches=2") == pytest.approx(
        lr("data.batch_size=64")
    )
    assert lr("data.batch_size=64") == pytest.approx(0.2)


def _one_step_weights(batch: int, accumulate: int) -> dict[str, torch.Tensor]:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from platform.run.compose import module_kwargs
    from platform.run.module import ClassificationModule

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g)
    )
    cfg = load_config(
        [
            "model=highway19",
            f"data.batch_size={batch}",
            "optim.reference_batch_size=16",
            f"trainer.accumulate_grad_batches={accumulate}",
            "trainer.max_epochs=1",
        ]
    )
    torch.manual_seed(0)
    module = ClassificationModule(**module_kwargs(cfg, 10))
    for (
        m
    ) in module.modules():  # the released highway19 has dropout: masks of 2x8 and 16 would differ
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=1,
        accumulate_grad_batches=accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(data, batch_size=batch, shuffle=False))
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def test_accumulate_2_is_the_doubled_batch_after_one_step():
    """BN-free highway19: two accumulated half-batches (8) give the full batch's (16) mean gradient and LR
    (the issue's 32 vs 64, at a quarter of the cost)."""
    torch.set_flush_denormal(
        True
    )  # as platform.run.train does on the CPU: denormal gradients crawl
    try:
        a, b = _one_step_weights(8, 2), _one_step_weights(16, 1)
    finally:
        torch.set_flush_denormal(False)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    torch.manual_seed(0)
    from platform.run.compose import module_kwargs
    from platform.run.module import ClassificationModule

    init = ClassificationModule(
        **module_kwargs(load_config(["model=highway19"]), 10)
    ).model.state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)  # a step was taken


# ---------------------------------------------------------------------------- composition
def test_recipe_paths_and_lists(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("optim:\n  lr: 0.3\ntrainer:\n  max_epochs: 7\n")
    cfg = load_config([f"recipe={mine}"])
    assert cfg.optim.lr == 0.3 and cfg.trainer.max_epochs == 7
    both = load_config([f"recipe=[resnet_cifar,{mine}]"])
    assert (
        both.optim.lr == 0.3 and both.schedule.name == "step"
    )  # the later file wins; the earlier's rest stays
    assert load_config([f"recipe=[resnet_cifar,{mine}]", "optim.lr=0.05"]).optim.lr == 0.05
    with pytest.raises(ConfigError, match="no such file"):
        load_config([f"recipe={tmp_path / 'none.yaml'}"])


def test_config_file_reruns_a_saved_run(tmp_path):
    saved = load_config(["recipe=resnet_cifar", "model=resnet56", "trainer.limit_train_batches=3"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(saved))
    again = load_config([f"config={path}"])
    assert again == saved
    changed = load_config([f"config={path}", "optim.lr=0.02", "model=resnet20"])
    assert (
        changed.optim.lr == 0.02
        and changed.model.name == "resnet20"
        and changed.schedule.name == "step"
    )
    path.write_text("optim:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"config file .*unknown config key 'optim.lrr'"):
        load_config([f"config={path}"])


def test_print_config_writes_nothing(tmp_path, capsys, monkeypatch):
    from platform.run.train import main

    monkeypatch.chdir(tmp_path)
    assert main(["--print-config", "model=resnet56", f"run.root={tmp_path / 'runs'}"]) == 0
    assert from_dict(yaml.safe_load(capsys.readouterr().out)).model.name == "resnet56"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- start of run, chatter
def test_likely_mistakes_are_named():
    from platform.run.console import likely_mistakes

    warns = likely_mistakes(
        load_config(["model=resnet50", "data.path=/data"]), 32, 224, (2048, 1, 1)
    )
    assert any("224-px" in w and "1x1" in w for w in warns)
    assert any(w.startswith("data.path='/data' is ignored by data=digits") for w in warns)
    assert likely_mistakes(load_config(["model=resnet20"]), 32, 32, (64, 8, 8)) == []


def test_chatter_filters_keep_real_warnings():
    from platform.run.console import quiet_library_chatter

    quiet_library_chatter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_chatter()  # the filters go on top of "always"
        warnings.warn("The `srun` command is available on your system but is not used. HINT: ...")
        warnings.warn("a real warning")
    assert [str(w.message) for w in caught] == ["a real warning"]


def test_train_log_appends_every_segment(tmp_path, capsys):
    import logging

    from platform.run.console import start_console_log, stop_console_log

    handler = logging.StreamHandler()  # made before the log starts, like logging.basicConfig's
    logger = logging.getLogger("test_observability")
    logger.addHandler(handler)
    try:
        for segment in ("one", "two"):
            start_console_log(tmp_path)
            print(f"segment {segment}")
            logger.warning("logged %s", segment)
            stop_console_log()
    finally:
        logger.removeHandler(handler)
    text = (tmp_path / "train.log").read_text()
    assert text.count("==== segment started") == 2
    assert (
        text.index("segment one")
        < text.index("logged one")
        < text.index("segment two")
        < text.index("logged two")
    )
    assert "segment two" in capsys.readouterr().out  # the console still shows everything


@pytest.mark.slow
@pytest.mark.timeout(900)  # one training run; slow only on a crowded machine
def test_non_tty_run_lines_train_log_and_no_chatter(tmp_path, digits_cache):
    """Captured stdout (not a TTY): a line per epoch with img/s; limit_train_batches=1 is one batch;
    stderr holds none of the four chatter lines (W&B offline, not silenced); train.log holds the console."""
    env = cli_env(tmp_path)
    env.pop("WANDB_SILENT")
    proc = run_cli(
        "platform.train",
        f"data.cache_dir={digits_cache}",
        f"run.root={tmp_path / 'runs'}",
        "run.name=obs",
        "data.num_workers=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=1",
        "trainer.max_epochs=2",
        env=env,
        timeout=850,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # issue 25.6: every run line starts with the time; epochs count from 1 for people
    stamped = [ln for ln in proc.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d epoch ", ln)]
    assert stamped and all(" done, step " in ln or " step " in ln for ln in stamped)
    lines = [ln[9:] if re.match(r"\d\d:\d\d:\d\d ", ln) else ln for ln in proc.stdout.splitlines()]
    assert "accelerator auto -> cpu" in proc.stdout or "accelerator cpu" in proc.stdout
    final = proc.stdout.rstrip().splitlines()[-1]
    assert re.search(r"\| best epoch [12]: \S+best-epoch00[01]\.ckpt", final), final
    epoch_lines = [line for line in lines if " done, step " in line]
    assert len(epoch_lines) == 2 and all("img/s" in line and "eta" in line for line in epoch_lines)
    assert epoch_lines[0].startswith("epoch 1/2 done, step 1 ")
    step_lines = [line for line in lines if line.startswith("epoch 2/2 step 2 [1/1] | loss ")]
    assert len(step_lines) == 1 and "data " in step_lines[0]
    for chatter in CHATTER:
        assert chatter not in proc.stderr
    assert "wandb:" in proc.stderr  # W&B did talk (so its warning was not merely silenced)
    run = tmp_path / "runs" / "obs"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # one batch per epoch
    assert all(r["perf/train_img_s"] > 0 and 0 <= r["perf/data_wait_frac"] <= 1 for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["params"] > 0 and summary["macs"] > 0 and summary["mean_train_img_s"] > 0
    assert summary["best_epoch"] in (0, 1) and summary["best_checkpoint"].endswith(".ckpt")
    assert summary["peak_mem_mib"] > 0
    text = (run / "train.log").read_text()
    assert text.count("==== segment started") == 1 and "model      resnet20" in text
    assert text.count(" done, step ") == 2 and text.rstrip().splitlines()[-1].startswith(
        "finished: resnet20"
    )


# ---------------------------------------------------------------------------- launch helpers
def test_compact_array_ranges():
    from platform.papers.launch import compact_ranges

    assert compact_ranges(range(30)) == "0-29"
    assert compact_ranges([0, 1, 2, 3, 5, 7, 8, 9]) == "0-3,5,7-9"
    assert compact_ranges([4]) == "4"


def test_sweep_without_data_path_is_refused_and_swept_keys_stay_swept(capsys, tmp_path):
    from platform.papers.sweep import main

    sweep, runs = "sweeps/resnext_table3.yaml", f"run.root={tmp_path / 'runs'}"
    assert main([sweep, runs]) == 2
    assert "data=imagenet needs data.path" in capsys.readouterr().err
    # issue 25.8: a dry run prints the commands with the placeholder and a warning
    assert main([sweep, "--dry-run", runs]) == 0
    out, err = capsys.readouterr()
    assert "warning: " in err and "data=imagenet needs data.path" in err and "SET_DATA_PATH" in err
    assert out.count("data.path=SET_DATA_PATH") == 30
    # ... and with --data-path each command carries data.path once
    assert main([sweep, "--dry-run", "--data-path", "/in1k", runs]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "platform.train" in ln]
    assert len(lines) == 30 and all(ln.count("data.path=") == 1 for ln in lines), lines[0]
    assert "data.path=/in1k" in lines[0]
    assert main([sweep, "--dry-run", "--data-path", "/in1k", runs, "model=resnet18"]) == 2
    assert "override(s) model set a key the sweep varies" in capsys.readouterr().err
    assert main([sweep, "--dry-run", "--slurm", "--data-path", "/in1k", runs]) == 0
    plan, command = capsys.readouterr().out.strip().splitlines()
    assert plan.startswith("# 30 run(s), about ") and "GPU-hours" in plan and "2470 img/s" in plan
    assert command.startswith(
        "sbatch --array=0-29 slurm/sweep.sh sweeps/resnext_table3.yaml data.path=/in1k"
    )


def test_reproduce_launch_refuses_missing_data_path(capsys, tmp_path):
    from platform.papers.reproduce import main

    assert main(["table3", "--launch", "local", f"run.root={tmp_path}"]) == 2
    assert "--data-path DIR" in capsys.readouterr().err
    # issue 25.8: a dry run warns and prints runnable-looking commands with a visible placeholder
    assert main(["table3", "--launch", "local", "--dry-run", f"run.root={tmp_path}"]) == 0
    out, err = capsys.readouterr()
    assert "warning: " in err and "--data-path DIR" in err
    lines = [ln for ln in out.splitlines() if "platform.train" in ln]
    assert lines and all(ln.count("data.path=SET_DATA_PATH") == 1 for ln in lines)
    assert main(["table3", "--launch", "wandb", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "warning: " in err and "sweeps/resnext_table3.yaml" in out  # the committed file
    # a W&B dry run with --data-path names a file it did not write: it shows its content
    assert main(["table3", "--launch", "wandb", "--dry-run", "--data-path", "/in1k"]) == 0
    out = capsys.readouterr().out
    assert "(not written by a dry run) would hold:" in out and "value: /in1k" in out


def test_cifar_launch_asks_for_the_python_pickles(capsys):
    from platform.papers.launch import check_data_path

    with pytest.raises(ConfigError, match="cifar-10-batches-py/, the python pickles") as e:
        check_data_path([load_config(["data=cifar10", "model=resnet20"])], "sweep.yaml")
    assert ".beton" not in str(e.value)


def test_a_skipped_sweep_row_names_the_run_that_matched(capsys, tmp_path):
    from platform.papers.sweep import main

    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "parameters:\n  model:\n    values: [resnet20, resnet32]\n  data:\n    value: digits\n"
    )
    runs = tmp_path / "runs"
    done = runs / "r20-done"
    done.mkdir(parents=True)
    (done / "config.yaml").write_text(to_yaml(load_config(["model=resnet20", "data=digits"])))
    (done / "summary.json").write_text(
        json.dumps({"status": "finished", "model": "resnet20", "data": "digits"})
    )
    assert main([str(sweep), "--dry-run", f"run.root={runs}"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 configurations already have a finished or running run; skipped:" in out, out
    assert str(done) in out and "model=resnet20" in out


def test_gpu_hours_scale_with_macs_images_and_epochs():
    from platform.papers.launch import REFERENCE_IMG_S, REFERENCE_MACS, gpu_hours

    rn50 = load_config(["model=resnet50", "data=imagenet", "trainer.max_epochs=90"])
    hours = gpu_hours([rn50])
    from models.complexity import complexity

    expected = (
        complexity("resnet50", 224).macs
        * 1_281_167
        * 90
        / (REFERENCE_MACS * REFERENCE_IMG_S)
        / 3600
    )
    assert (
        hours == pytest.approx(expected) and 10 < hours < 20
    )  # NVIDIA's README: ~14 hours for 90 epochs
    assert gpu_hours([rn50, rn50]) == pytest.approx(2 * hours)


# ---------------------------------------------------------------------------- small commands
def test_doctor_prints_verdicts(capsys, monkeypatch):
    from importlib.metadata import version

    from platform.run.doctor import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "ok    W&B offline: WANDB_MODE=offline" in out
    import ffcv

    said = (
        "" if ffcv.__version__ == version("ffcv") else f"; ffcv.__version__ says {ffcv.__version__}"
    )
    assert f"ok    ffcv {version('ffcv')} (importlib.metadata{said})" in out
    assert any(line.split()[1] in ("GPU:", "no") for line in out if "GPU" in line)
    assert any("dataset cache" in line for line in out) and any("sbatch" in line for line in out)
    assert main(["--json"]) == 0 and json.loads(capsys.readouterr().out)["ffcv"] == version("ffcv")


def test_models_cache_is_keyed_by_sources(tmp_path, monkeypatch, capsys):
    import models.__main__ as zoo

    monkeypatch.setattr(zoo, "CACHE_DIR", tmp_path)
    rows = zoo.rows("resnet2*")
    (cache,) = tmp_path.glob("models-counts-*.json")
    assert cache.name == f"models-counts-{zoo.cache_key()}.json"
    assert {r["name"] for r in rows} == set(json.loads(cache.read_text()))
    fake = json.loads(cache.read_text())
    fake["resnet20"]["params"] = 1
    cache.write_text(json.dumps(fake))
    assert zoo.rows("resnet20")[0]["params"] == 1  # read from the cache, not recounted ...
    assert (
        zoo.rows("resnet20", use_cache=False)[0]["params"] == 269_722
    )  # ... unless asked (He et al.: 0.27M)
    assert zoo.main(["resnt2*"]) == 2 and "closest: " in capsys.readouterr().err


def test_benchmarks_help_lists_suites():
    proc = run_cli("benchmarks", "--help")
    assert proc.returncode == 0 and "suites:" in proc.stdout
    assert all(f"\n  {s} " in proc.stdout for s in ("models", "data", "overhead", "commands"))
    proc = run_cli("benchmarks", "nope")
    assert proc.returncode == 2 and "unknown suite 'nope'" in proc.stderr


def test_schedule_plot_uses_the_real_steps_per_epoch(tmp_path):
    from platform.run.schedules import main

    assert main(["recipe=resnet_cifar", "data=cifar10", f"--out={tmp_path / 'lr.png'}"]) == 0
    assert (tmp_path / "lr.png").is_file()
    from platform.run.schedules import lr_curve

    steps, lrs = lr_curve(load_config(["recipe=resnet_cifar", "data=cifar10"]))
    assert max(lrs) == pytest.approx(0.1) and lrs[-1] == pytest.approx(
        0.001
    )  # 390 steps/epoch: the step schedule
    _, flat = lr_curve(load_config(["recipe=resnet_cifar", "data=synthetic"]), steps_per_epoch=390)
    assert max(flat) == pytest.approx(0.1)
    _, rn50 = lr_curve(load_config(["recipe=ffcv_rn50", "data=imagenet"]))
    assert max(rn50) == pytest.approx(2.0, rel=1e-3)  # the recipe comment's peak


# ---------------------------------------------------------------------------- a TTY without a size
def _run_in_pty(args: list[str], rows: int, cols: int, timeout: float, env=None) -> str:
    """Run ``python ARGS`` from the root with stdout/stderr on a pseudo-terminal of rows x cols."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from conftest import ROOT

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=slave, stderr=slave, env=env or cli_env()
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=timeout)
    os.close(master)
    return out.decode(errors="replace")


def test_a_tty_without_a_size_gets_lines_not_the_bar():
    """Issue 25.7: a 0x0 TTY (some terminals, `script`) gets the line format; a sized one the bar."""
    code = (
        "import sys, cnn_platform; from platform.run.compose import console_is_terminal as t; "
        "print('TERMINAL', sys.stdout.isatty(), t())"
    )
    assert "TERMINAL True False" in _run_in_pty(["-c", code], 0, 0, 120)
    assert "TERMINAL True True" in _run_in_pty(["-c", code], 24, 80, 120)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_on_a_tty_without_a_size_prints_lines(tmp_path, digits_cache):
    args = [
        "-m",
        "platform.train",
        f"data.cache_dir={digits_cache}",
        f"run.root={tmp_path / 'runs'}",
        "data.num_workers=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",  # 1 is issue 25.1 (another fix)
        "trainer.log_every_n_steps=1",
        "trainer.max_epochs=1",
    ]
    out = _run_in_pty(args, 0, 0, 850, env=cli_env(tmp_path))
    assert re.search(r"\d\d:\d\d:\d\d epoch 1/1 step 1 \[1/2\]", out), out[-3000:]
    assert "epoch 1/1 done, step 2" in out, out[-3000:]


def test_a_small_beton_trained_large_is_named(digits_cache):
    """Issue 25.9: data=beton of 32-px images at data.resolution=224 warns (upsampled 7x)."""
    from datamodules import create_datamodule
    from platform.run.console import likely_mistakes, stored

    path = next(digits_cache.glob("digits-*"))
    dm = create_datamodule("beton", path=str(path))
    assert stored(dm) == 32
    cfg = load_config(["model=resnet20", "data=beton", f"data.path={path}"])
    warns = likely_mistakes(cfg, 224, 32, (64, 56, 56), stored(dm))
    assert any("stores images of about 32 px" in w and "224 px" in w for w in warns), warns
    assert likely_mistakes(cfg, 32, 32, (64, 8, 8), stored(dm)) == []


@pytest.mark.timeout(600)
def test_a_cifar_path_error_leaves_no_run_directory(tmp_path):
    """Issue 25.9: the CIFAR files are looked for inside fit (the datamodule's set-up); a fresh
    run that fails there is a set-up error: exit 2 and no run directory, as the README promises."""
    empty = tmp_path / "empty"
    empty.mkdir()
    runs = tmp_path / "runs"
    proc = run_cli(
        "platform.train",
        "data=cifar10",
        f"data.path={empty}",
        f"run.root={runs}",
        "run.name=c",
        "logging.wandb=disabled",
        "trainer.max_epochs=1",
        env=cli_env(tmp_path),
    )
    assert proc.returncode == 2 and "no CIFAR10 files found" in proc.stderr, proc.stderr[-2000:]
    assert not (runs / "c").exists()
