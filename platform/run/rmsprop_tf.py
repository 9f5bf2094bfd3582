"""TensorFlow's RMSProp (``tf.compat.v1.train.RMSPropOptimizer``), as EfficientNet and the TF-slim
Inception/MobileNet releases train with it.

It differs from ``torch.optim.RMSprop`` in three ways, each of which changes the update:

* epsilon is inside the square root: ``g / sqrt(ms + eps)`` (PyTorch: ``g / (sqrt(ms) + eps)``);
* the mean-square accumulator starts at 1 (PyTorch: 0), so the first steps are small, not huge;
* the learning rate is folded into the momentum buffer: ``mom = m * mom + lr * g / sqrt(ms + eps)``,
  ``p -= mom`` (PyTorch: ``buf = m * buf + g / ...``, ``p -= lr * buf``), so a changing learning rate
  scales only the new gradient, not the accumulated velocity.

Weight decay is an L2 term added to the gradient (TF: a regulariser in the loss).  Written from the
TF kernel's equations (``training_ops.cc`` ApplyRMSProp); timm's ``RMSpropTF`` reads them the same way.
"""

from __future__ import annotations

import torch


class RMSpropTF(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr: float = 0.01,
        alpha: float = 0.9,
        eps: float = 1e-10,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps <= 0 or not 0 <= alpha < 1 or not 0 <= momentum < 1:
            raise ValueError(
                f"RMSpropTF: bad lr={lr}, eps={eps}, alpha={alpha}, momentum={momentum}"
            )
        defaults = dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            momentum, wd = group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if wd:
                    grad = grad.add(p, alpha=wd)
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)  # TF: initialised to 1
                    state["momentum_buffer"] = torch.zeros_like(p)
                ms = state["square_avg"]
                ms.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                step = grad / (ms + eps).sqrt_()  # eps inside the square root
                if momentum > 0:
                    mom = state["momentum_buffer"]
                    mom.mul_(momentum).add_(step, alpha=lr)  # lr folded into the momentum
                    p.sub_(mom)
                else:
                    p.sub_(step, alpha=lr)
        return loss
