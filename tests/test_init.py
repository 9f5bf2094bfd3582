"""``model.init``: transfer learning from our checkpoints and from torchvision state_dicts."""

import lightning as L
import pytest
import torch
import torchvision

import models
from platform.run.config import load_config
from platform.run.init import load_initial_weights
from platform.run.module import ClassificationModule
from platform.run.schema import ConfigError


def test_torchvision_state_dict_with_a_new_head(tmp_path):
    tv = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "tv_resnet18.pth"
    torch.save(tv.state_dict(), path)
    ours = models.create_model("resnet18", num_classes=10)
    message = load_initial_weights(ours, "resnet18", path)
    assert "torchvision state_dict" in message and "replaced the classifier head" in message
    assert "1000 classes in the checkpoint, 10 here" in message
    body = [p for n, p in ours.named_parameters() if not n.startswith("head")]
    tv_body = [p for n, p in tv.named_parameters() if not n.startswith("fc")]
    assert all(torch.equal(a, b) for a, b in zip(body, tv_body, strict=False))
    assert ours.head.fc.out_features == 10


def test_our_checkpoint_same_head_and_new_head(tmp_path):
    from datamodules.synthetic import SyntheticDataModule

    module = ClassificationModule("resnet20", num_classes=4, max_epochs=1)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        limit_val_batches=1,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(
        module, datamodule=SyntheticDataModule(size=64, num_classes=4, resolution=16, batch_size=16)
    )
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)

    same = models.create_model("resnet20", num_classes=4)
    assert "replaced" not in load_initial_weights(same, "resnet20", ckpt)
    for (_, a), (_, b) in zip(
        same.state_dict().items(), module.model.state_dict().items(), strict=False
    ):
        assert torch.equal(a, b)

    other = models.create_model("resnet20", num_classes=7)
    assert "4 classes in the checkpoint, 7 here" in load_initial_weights(other, "resnet20", ckpt)
    trained = module.model.state_dict()
    body = {k: v for k, v in other.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(v, trained[k]) for k, v in body.items())
    assert other.head.fc.out_features == 7


def test_bad_init_files_are_clear_errors(tmp_path):
    model = models.create_model("resnet20")
    with pytest.raises(ConfigError, match="no such file"):
        load_initial_weights(model, "resnet20", tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        load_initial_weights(model, "resnet20", tmp_path / "junk.pth")
    torch.save(models.create_model("resnet32").state_dict(), tmp_path / "r32.pth")
    with pytest.raises(ConfigError, match="does not fit resnet20|another architecture"):
        load_initial_weights(model, "resnet20", tmp_path / "r32.pth")


def test_init_is_a_config_key_not_a_model_knob():
    cfg = load_config(["model=resnet18", "model.init=/some/file.pth"])
    from platform.run.compose import module_kwargs

    assert "init" not in module_kwargs(cfg, 10)["model_knobs"]


def test_init_message_names_source_layout_and_head(tmp_path):
    """Issue 25.9: model.init says what it loaded (file), its layout (converted or ours) and
    whether the head was kept or replaced."""
    path = tmp_path / "tv.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    message = load_initial_weights(
        models.create_model("resnet18", num_classes=10), "resnet18", path
    )
    assert str(path) in message and "torchvision layout, converted to ours" in message
    assert "classifier head kept (10 classes)" in message
    ours = tmp_path / "ours.pth"
    torch.save(models.create_model("resnet20", num_classes=10).state_dict(), ours)
    message = load_initial_weights(models.create_model("resnet20", num_classes=3), "resnet20", ours)
    assert "our layout" in message and "replaced the classifier head" in message
