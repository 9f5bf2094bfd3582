"""``python -m platform.export --checkpoint PATH --format state_dict|torchvision|torchscript|onnx OUT [k=v ...]``

* ``state_dict``: our model's weights only (no optimizer, no pickled objects): small, and
  ``torch.load(OUT, weights_only=True)`` reads it; ``platform.after.evaluate`` / ``model.init`` take it back.
* ``torchvision``: the same weights in torchvision's key layout (``models.convert.to_torchvision``),
  for every model torchvision has; ours -> torchvision -> ours is exact.
* ``torchscript``: ``torch.jit.trace`` at the run's validation side, eval mode.
* ``onnx``: opset :data:`OPSET` (TorchScript-based exporter, ``dynamo=False``: the torch.export-based
  one took 37 s against 8 s for a ResNet-20 here), the batch axis dynamic, input ``images``
  (normalised NCHW float32), output ``logits``; checked with ``onnx.checker`` and run by onnxruntime.
Every format is checked after writing: the file is read back and its outputs (or tensors) must
equal ours on a batch, within ``--atol`` + ``--rtol`` x the largest |logit| and with the same
top-5 classes (float sums reordered by an exporter err in proportion to the logits); the file is
written under a temporary name and renamed, so a failed export leaves nothing behind.  An existing
OUT is refused unless ``--force``.  Needs ``pip install -e '.[export]'`` for ONNX.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datamodules.beton import atomic_path
from platform.after.evaluate import USER_ERRORS, EvalError, eval_datamodule, load
from platform.run import cli

FORMATS = ("state_dict", "torchvision", "torchscript", "onnx")
OPSET = 17
# Exported graphs may reorder float sums, an error that grows with the logits' scale (a ResNet-50
# reaching 3e6 differs by 0.5 at a relative 2e-7): a file is kept when every logit is within
# ATOL + RTOL * max|logit| of ours and each row's top-k classes agree (above that tolerance).
RTOL = 1e-4
ATOL = 1e-4
TOPK = 5


class ExportError(EvalError):
    """An export that cannot be made or does not reproduce our outputs."""


def input_side(cfg) -> int:
    """The run's validation side (the datamodule's default when the config leaves it unset)."""
    try:
        return int(eval_datamodule(cfg).val_resolution)
    except Exception:  # noqa: BLE001 -- a dataset not on this machine: the model's paper side
        import models

        d = cfg.data
        return int(d.val_resolution or d.resolution or models.model_info(cfg.model.name).resolution)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence fd 2 (the ONNX exporter dumps its whole IR graph there on failure)."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _same(
    ours: torch.Tensor, theirs: Any, what: str, out: Path, rtol: float = RTOL, atol: float = ATOL
) -> float:
    """Max |ours - theirs|; refuse past ``atol + rtol * max|ours|`` or when the top-k disagree."""
    theirs = torch.as_tensor(theirs)
    diff = float((ours - theirs).abs().max())
    scale = float(ours.abs().max())
    tol = atol + rtol * scale
    if diff > tol:
        raise ExportError(
            f"{out}: the {what} outputs differ from ours by up to {diff:.3g} (> {tol:.3g} = "
            f"atol {atol:g} + rtol {rtol:g} x max |logit| {scale:.3g}); not kept "
            "(--rtol/--atol to loosen)"
        )
    k = min(TOPK, ours.shape[-1])
    top = ours.topk(k, dim=-1)
    # a class of theirs outside our top-k must score below our k-th by more than the tolerance
    kth = top.values[..., -1:]
    theirs_top = theirs.topk(k, dim=-1).indices
    outside = ~(theirs_top[..., :, None] == top.indices[..., None, :]).any(-1)
    if bool((outside & (ours.gather(-1, theirs_top) < kth - 2 * tol)).any()):
        raise ExportError(f"{out}: the {what} top-{k} classes differ from ours; not kept")
    return diff


def export(
    model: nn.Module,
    name: str,
    fmt: str,
    out: str | Path,
    side: int,
    batch: int = 2,
    rtol: float = RTOL,
    atol: float = ATOL,
    force: bool = True,
) -> dict[str, Any]:
    """Write ``model`` (our ``nn.Module``, registry name ``name``) as ``fmt`` to ``out``; check it.

    Outputs must agree with ours within ``atol + rtol * max|logit|`` (:func:`_same`); an existing
    ``out`` is replaced only with ``force``."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: unknown; expected one of {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    if out.exists() and not force:
        raise ExportError(f"{out} exists; pass --force to overwrite it")
    tol = {"rtol": rtol, "atol": atol}
    model = model.eval().float().cpu()
    x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    info: dict[str, Any] = {
        "format": fmt,
        "out": str(out),
        "model": name,
        "input": [batch, 3, side, side],
    }
    if fmt in ("state_dict", "torchvision"):
        sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if fmt == "torchvision":
            from models.convert import ConversionError, to_torchvision, torchvision_builder

            try:
                sd = to_torchvision(name, sd)
            except ConversionError as e:
                raise ExportError(f"--format torchvision: {e}") from None
        with atomic_path(out) as tmp:
            torch.save(sd, tmp)
            back = torch.load(tmp, map_location="cpu", weights_only=True)
            if fmt == "torchvision":  # torchvision's own model on these weights gives our logits
                import torchvision

                tv = torchvision.models.get_model(
                    torchvision_builder(name), weights=None, num_classes=expected.shape[1]
                ).eval()
                tv.load_state_dict(back, strict=True)
                with torch.no_grad():
                    info["max_abs_diff"] = _same(expected, tv(x), "torchvision model's", out, **tol)
            elif any(not torch.equal(back[k], v) for k, v in sd.items()):
                raise ExportError(f"{out}: the state_dict read back differs from ours")
        info["tensors"] = len(sd)
    elif fmt == "torchscript":
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, x)
        except Exception as e:  # noqa: BLE001
            raise ExportError(
                f"--format torchscript: tracing {name} failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160]}); try --format onnx or state_dict"
            ) from None
        with atomic_path(out) as tmp:
            torch.jit.save(traced, str(tmp))
            loaded = torch.jit.load(str(tmp))
            with torch.no_grad():
                info["max_abs_diff"] = _same(expected, loaded(x), "TorchScript", out, **tol)
    else:
        info.update(_onnx(model, name, x, out, tol))
    info["bytes"] = out.stat().st_size
    return info


def _onnx(
    model: nn.Module, name: str, x: torch.Tensor, out: Path, tol: dict[str, float]
) -> dict[str, Any]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError(
            f"--format onnx needs onnx and onnxruntime ({e.name} is missing): "
            "pip install -e '.[export]'"
        ) from None
    with atomic_path(out) as tmp:
        try:
            with _quiet_stderr(), torch.no_grad():
                torch.onnx.export(
                    model,
                    (x,),
                    str(tmp),
                    opset_version=OPSET,
                    dynamo=False,
                    input_names=["images"],
                    output_names=["logits"],
                    dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                )
        except Exception as e:  # noqa: BLE001 -- UnsupportedOperatorError, SymbolicValueError, ...
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ExportError(
                f"--format onnx: the ONNX exporter (opset {OPSET}) cannot export {name}: "
                f"{first}; "
                "export --format torchscript or state_dict instead"
            ) from None
        onnx.checker.check_model(str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        bigger = torch.cat([x, x.flip(0), x[:1]])  # another batch size: the batch axis is dynamic
        with torch.no_grad():
            ref = model(bigger)
        got = session.run(None, {"images": bigger.numpy()})[0]
        diff = _same(ref, got, "onnxruntime", out, **tol)
    return {"opset": OPSET, "max_abs_diff": diff, "checked_batch": int(bigger.shape[0])}


def _cannot_write(out: Path, e: OSError) -> str:
    why = e.strerror or str(e)
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        why = "a part of that path is a file, not a directory"
    return (
        f"{out}: cannot write the export here ({why}, in {out.parent}); give an OUT path in a "
        "writable directory"
    )


def writable(out: Path) -> None:
    """Refuse an ``OUT`` that cannot be written (a read-only file system, a parent that is a
    file, no permission) before any work: create and remove a probe file beside it."""
    if out.is_dir():
        raise ExportError(
            f"{out}: is a directory; give the output file's path (e.g. {out}/model.pt)"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.probe-"):
            pass
    except OSError as e:
        raise ExportError(_cannot_write(out, e)) from None


@cli.entry(USER_ERRORS)
def main(argv: list[str]) -> int:
    parser = cli.command_parser("export", __doc__)
    cli.add_checkpoint(parser, help="the weights: a checkpoint of ours or a state_dict")
    parser.add_argument("--format", required=True, help="|".join(FORMATS))
    parser.add_argument("out", help="output file")
    parser.add_argument(
        "--side",
        type=int,
        default=None,
        help="input side for tracing/checking (default: the run's validation side)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=RTOL,
        help=f"allowed difference relative to the largest |logit| (default {RTOL:g})",
    )
    parser.add_argument(
        "--atol", type=float, default=ATOL, help=f"allowed absolute difference (default {ATOL:g})"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    args, overrides = cli.parse(parser, argv)
    if args.format not in FORMATS:  # before loading anything
        raise ExportError(f"--format {args.format}: unknown; expected one of {', '.join(FORMATS)}")
    out = Path(args.out).expanduser()
    if out.exists() and not args.force:  # before loading anything
        raise ExportError(f"{args.out} exists; pass --force to overwrite it")
    writable(out)  # before loading anything
    module, cfg, _ = load(args.checkpoint, overrides)
    side = args.side or input_side(cfg)
    try:
        info = export(
            module.model,
            cfg.model.name,
            args.format,
            args.out,
            side,
            rtol=args.rtol,
            atol=args.atol,
        )
    except OSError as e:  # the disk filled, or went read-only, while writing
        raise ExportError(_cannot_write(out, e)) from None
    extra = f" opset {info['opset']}" if "opset" in info else ""
    diff = f", max |diff| {info['max_abs_diff']:.2g} on a batch" if "max_abs_diff" in info else ""
    print(
        f"exported {info['model']} as {info['format']}{extra} -> {info['out']} "
        f"({info['bytes']} bytes{diff})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
