"""Deleting blocks of a trained net for the lesion study of Veit, Wilber & Belongie 2016
(arXiv 1605.06431 §4), and routing the backward pass along one path for their gradient
measurement (§5): an adapter over the blocks a model lists, used by platform/papers/lesion.py and
platform/papers/paths.py.

The model exposes its blocks and nothing more: `block_sites` (name, channels in/out, stride of
every block, in forward order; `models.resnet.BlockSite`) and `get_submodule(name)`. A block
with a shortcut (`block.shortcut is not None`) has a `drop_path` slot that wraps its whole
residual branch; a plain block (`shortcut is None`, He et al. 2015 §4.1) is the branch alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class _ZeroBranch(nn.Module):
    """Stands in for a block's `drop_path` during a lesion: the residual branch adds nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _NoGradient(nn.Module):
    """Wraps a block's `drop_path` or `shortcut` during a routed backward pass: the same
    forward value, no gradient back through it (Veit et al. 2016 §5)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).detach()


def is_plain(model: nn.Module) -> bool:
    """True for a net whose blocks have no shortcut (the plain nets of He et al. 2015)."""
    sites = getattr(model, "block_sites", ())
    return bool(sites) and all(model.get_submodule(s.name).shortcut is None for s in sites)


class BlockLesions:
    """Which blocks of `model` can be deleted, and deleting them for a `with` statement.

    `model` is any net with `block_sites` (models.resnet.ResidualNet): names are module
    paths, 's1.b1', 's1.b2', ...
    """

    def __init__(self, model: nn.Module) -> None:
        if not hasattr(model, "block_sites"):
            raise TypeError(f"{type(model).__name__} lists no blocks (block_sites)")
        self.model = model
        self.sites = tuple(model.block_sites)
        self.plain = is_plain(model)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """(name, block) in forward order."""
        return [(site.name, self.model.get_submodule(site.name)) for site in self.sites]

    def site(self, name: str) -> Any:
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.sites)
        raise ValueError(f"no block named {name!r} in this net; its blocks: {known}")

    def removable(self, name: str) -> bool:
        """Every residual block can be removed (its shortcut stays); a plain block only
        where the identity can take its place, i.e. where it keeps the shape."""
        site = self.site(name)
        return self.model.get_submodule(name).shortcut is not None or site.keeps_shape

    @contextmanager
    def removed(self, names: Iterable[str]) -> Iterator[nn.Module]:
        """Delete blocks for the duration of the `with` block (Veit et al. 2016 §4); yields
        the model.

        Residual block: its residual branch is replaced by zeros (through the
        `drop_path` slot every block applies to the whole branch), so the block
        computes only its shortcut: x for an identity shortcut (a post-act block's
        ReLU leaves its non-negative input unchanged), and for a downsampling block
        the strided pad or projection, as in Veit et al.'s "removing downsampling
        blocks". Plain block: replaced by the identity, which needs the block to
        keep the shape; a block that changes it cannot be removed (ValueError, before
        anything changes). Everything is restored on exit, exceptions included.
        """
        names = list(dict.fromkeys(names))  # unique, in the caller's order
        for name in names:
            if not self.removable(name):
                site = self.site(name)
                raise ValueError(
                    f"plain block {name} cannot be removed: it maps {site.in_channels} to "
                    f"{site.out_channels} channels at stride {site.stride}, and without a "
                    "shortcut nothing of the right shape is left in its place"
                )
        undo: list[tuple[nn.Module, str, nn.Module]] = []
        try:
            for name in names:
                block = self.model.get_submodule(name)
                if block.shortcut is None:
                    stage, child = name.rsplit(".", 1)
                    parent = self.model.get_submodule(stage)
                    undo.append((parent, child, block))
                    setattr(parent, child, nn.Identity())
                else:
                    undo.append((block, "drop_path", block.drop_path))
                    block.drop_path = _ZeroBranch()
            yield self.model
        finally:
            for owner, attr, original in reversed(undo):
                setattr(owner, attr, original)

    @contextmanager
    def routed(self, through_branch: Iterable[str]) -> Iterator[nn.Module]:
        """Route the backward pass along one path (Veit et al. 2016 §5) for the duration of
        the `with` block; yields the model.

        The forward pass is the whole, unchanged net. Backward, a block named in
        `through_branch` passes gradient through its residual branch only (its shortcut is
        detached) and every other block through its shortcut only (its branch is detached,
        through the `drop_path` slot): the gradient reaching the first block's input is that
        of the single path through exactly those k residual branches. A downsampling block's
        "skip" is its shortcut as built (strided pad, or projection), as in `removed`: a
        path through it is not one residual branch longer. A post-act block's ReLU after the
        addition stays on every path (its mask comes from the full forward pass). A plain
        net has no skip to route through (ValueError).
        """
        chosen = set(through_branch)
        for name in chosen:
            self.site(name)  # unknown names raise, before anything changes
        if self.plain or any(block.shortcut is None for _, block in self.blocks()):
            raise ValueError("a plain net has no shortcuts: there are no paths to route along")
        undo: list[tuple[nn.Module, str, nn.Module]] = []
        try:
            for name, block in self.blocks():
                attr = "shortcut" if name in chosen else "drop_path"
                undo.append((block, attr, getattr(block, attr)))
                setattr(block, attr, _NoGradient(getattr(block, attr)))
            yield self.model
        finally:
            for owner, attr, original in reversed(undo):
                setattr(owner, attr, original)
