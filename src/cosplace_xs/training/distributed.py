"""Multi-GPU (or multi-process CPU) training with torchrun and DistributedDataParallel.

Every process draws the same classes for a batch (stateless seeding) and trains on its own slice of them,
so the global batch is `batch_size` distinct classes exactly as on one device; gradients of the model
(through DDP) and of the group's classifier (all-reduced here) are averaged over processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among `world_size` training processes (1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def batch_slice(self, batch_size: int) -> slice:
        """The part of a global batch this process trains on."""
        if batch_size % self.world_size:
            raise ConfigError(f"option {flag_of(TrainConfig, 'batch_size')}={batch_size} must be divisible by the "
                              f"{self.world_size} training processes")
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)


def init_distributed(device_name: str) -> tuple[DistributedContext, str]:
    """Join the process group torchrun set up (if any); returns the context and the device to use."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(), device_name
    context = DistributedContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(context.local_rank)
        return context, f"cuda:{context.local_rank}"
    return context, "cpu"


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    """The module to call in training: DDP over `model` when several processes train."""
    if not context.enabled:
        return model
    device_ids = [context.local_rank] if next(model.parameters()).is_cuda else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def average_gradients(parameters: Iterable[nn.Parameter], context: DistributedContext) -> None:
    """Average the gradients of parameters DDP does not manage (the group's classifier)."""
    if not context.enabled:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad /= context.world_size


def average_value(value: float, context: DistributedContext, device: torch.device) -> float:
    """The mean of a scalar over processes (for the logged loss and the NaN check)."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item() / context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
