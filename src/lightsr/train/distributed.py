"""``torchrun`` set-up: the world (rank, size, local rank) from the environment, the process group
(nccl on GPU, gloo on CPU) and the few collectives the engine needs.

``torchrun --nproc_per_node N -m lightsr train ...`` runs the same command on N processes;
``--batch_size`` is per process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import LightSRError

__all__ = ["Dist", "setup_distributed"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.on:
            torch.distributed.barrier()

    def mean(self, x: float, device) -> float:
        if not self.on:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool, device) -> bool:
        if not self.on:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)


def setup_distributed(device: str | None) -> tuple[Dist, torch.device]:
    """torchrun's environment -> process group (nccl on GPU, gloo on CPU) and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LightSRError(f"device {device} requested but no CUDA GPU is available")
        if world > 1:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev
