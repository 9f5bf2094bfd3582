import pytest
from conftest import run_cli

from platform.run.config import help_text, load_config
from platform.run.schema import ConfigError, ExperimentConfig, all_keys


def test_defaults_are_the_main_job():
    cfg = load_config([])
    assert isinstance(cfg, ExperimentConfig)
    assert (cfg.model.name, cfg.data.name) == ("resnet20", "digits")


def test_selection_and_dotted_overrides():
    cfg = load_config(
        [
            "model=resnet56",
            "model.drop_path_rate=0.1",
            "data=digits",
            "data.batch_size=128",
            "optim.lr=0.2",
            "trainer.max_epochs=3",
            "schedule.milestones=[30,60]",
            "seed=3",
        ]
    )
    assert cfg.model.name == "resnet56" and cfg.model.drop_path_rate == 0.1
    assert cfg.data.batch_size == 128 and cfg.optim.lr == 0.2 and cfg.trainer.max_epochs == 3
    assert cfg.schedule.milestones == [30.0, 60.0] and cfg.seed == 3


def test_numeric_looking_strings_stay_strings():
    cfg = load_config(["run.name=2024", "trainer.devices=2"])
    assert cfg.run.name == "2024"
    assert cfg.trainer.devices == 2


@pytest.mark.parametrize(
    "arg, words",
    [
        ("optim.lrr=1", ["optim.lrr", "optim.lr"]),
        ("lr=0.1", ["'lr'", "optim.lr"]),
        ("modle.name=resnet20", ["modle.name", "model.name"]),
    ],
)
def test_unknown_key_names_it_and_the_closest(arg, words):
    with pytest.raises(ConfigError) as e:
        load_config([arg])
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("optim.lr=fast", "float"),
        ("trainer.max_epochs=1.5", "int"),
        ("model.zero_init_residual=maybe", "bool"),
    ],
)
def test_wrong_type_names_key_value_and_type(arg, expected):
    key, value = arg.split("=")
    with pytest.raises(ConfigError) as e:
        load_config([arg])
    msg = str(e.value)
    assert key in msg and value in msg and expected in msg


def test_choices_and_ranges_are_validated():
    with pytest.raises(ConfigError, match="trainer.precision"):
        load_config(["trainer.precision=bf17"])
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_config(["data.batch_size=0"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(["optim.lr"])


# the allowed values of every choice key before they moved onto the schema's fields (issue 20)
CHOICES_BEFORE = {
    "optim.name": ("sgd", "adamw", "rmsprop"),
    "schedule.name": ("cosine", "step", "exponential", "linear", "constant"),
    "schedule.warmup": ("linear", "error_threshold"),
    "data.sampler": ("random", "class_aware"),
    "data.backend": ("ffcv", "torchvision"),
    "trainer.precision": ("32-true", "bf16-mixed", "16-mixed"),
    "trainer.profiler": (None, "simple", "advanced", "pytorch"),
    "logging.wandb": ("auto", "online", "offline", "disabled"),
    "data.order": ("auto", "random", "quasi_random"),
    "data.val_split": ("test", "holdout"),
    "model.stride_on": (None, "3x3", "1x1"),
    "model.drop_path_mode": (None, "sample", "batch"),
    "model.drop_path_rule": (None, "huang", "timm", "tf"),
    "model.shortcut_downsample": (None, "stride", "avgpool"),
}


# added since (issue 24): TF RMSProp, and the per-recipe weight-decay exemption
CHOICES_ADDED = {
    "optim.name": CHOICES_BEFORE["optim.name"] + ("rmsprop_tf",),
    "optim.no_decay": ("norm_bias", "norm", "norm_bias_depthwise", "none"),
    "data.pad_mode": ("constant", "reflect"),  # issue 24: WRN's release reflects
    "data.jpeg_decode": ("full", "scaled"),  # issue 28: n/8 DCT-scaled JPEG decode
}


def test_choices_are_declared_once_and_refused_by_name():
    from platform.run.config import choices

    assert choices() == {**CHOICES_BEFORE, **CHOICES_ADDED}
    for key, allowed in {**CHOICES_BEFORE, **CHOICES_ADDED}.items():
        with pytest.raises(ConfigError) as e:
            load_config([f"{key}=nope"])
        assert str(e.value) == (
            f"bad value for {key}: 'nope'; expected one of {', '.join(map(str, allowed))}"
        )
        for value in allowed:
            if value is not None and key != "data.backend":  # ffcv may be absent: a later check
                assert load_config([f"{key}={value}"]) is not None


def test_recipe_applies_before_overrides(tmp_path, monkeypatch):
    import platform.run.config as config

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "row.yaml").write_text(
        "optim:\n  lr: 0.4\n  weight_decay: 0.0001\nmodel: resnet32\n"
    )
    monkeypatch.setattr(config, "RECIPES_DIR", tmp_path)
    cfg = load_config(["optim.lr=0.2", "recipe=paper/row"])  # override wins whatever the order
    assert cfg.optim.lr == 0.2 and cfg.optim.weight_decay == 0.0001 and cfg.model.name == "resnet32"
    (tmp_path / "bad.yaml").write_text("optim:\n  lrate: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optim.lrate"):
        load_config(["recipe=bad"])
    with pytest.raises(ConfigError, match="unknown recipe 'nope'.*paper/row"):
        load_config(["recipe=nope"])


def test_shipped_recipes_load():
    from platform.run.schema import RECIPES_DIR

    for path in RECIPES_DIR.rglob("*.yaml"):
        load_config([f"recipe={path.relative_to(RECIPES_DIR).with_suffix('')}"])


def test_help_lists_every_key_with_default_and_description():
    text = help_text()
    for key, field in all_keys().items():
        line = next((l for l in text.splitlines() if l.strip().startswith(key + " ")), None)
        assert line is not None, key
        assert field.metadata["help"] in line


def test_cli_errors_exit_nonzero_without_traceback():
    for args, words in [
        (["optim.lrr=1"], ["optim.lr"]),
        (["optim.lr=x"], ["float"]),
        (["model=resnet5"], ["resnet50", "resnet56"]),
    ]:
        proc = run_cli("platform.train", *args, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        for w in words:
            assert w in proc.stderr


def test_each_data_option_is_declared_once():
    """DataOptions (datamodules/options.py) declares every option a datamodule takes; the schema's
    DataConfig has each one the run does not set itself, under the same name and with the same
    default, and compose.datamodule_options derives one from the other (issue 29.6)."""
    import dataclasses

    from datamodules.options import DataOptions
    from platform.run.compose import RUN_DATA_OPTIONS, datamodule_options
    from platform.run.schema import DataConfig, ExperimentConfig

    options = {f.name: f for f in dataclasses.fields(DataOptions)}
    config = {f.name: f for f in dataclasses.fields(DataConfig)}
    shared = set(options) - set(RUN_DATA_OPTIONS)
    assert shared <= set(config), sorted(shared - set(config))
    defaults = DataConfig()
    for name in shared:
        value = getattr(defaults, name)
        assert value == getattr(DataOptions(), name), name
    cfg = load_config(["data.batch_size=48", "data.pad_mode=reflect", "data.scale_jitter=[16,24]"])
    o = datamodule_options(cfg)
    assert (o.batch_size, o.pad_mode, o.scale_jitter) == (48, "reflect", (16, 24))
    assert o.seed == cfg.seed and o.channels_last == cfg.trainer.channels_last
    assert isinstance(ExperimentConfig().data, DataConfig)
