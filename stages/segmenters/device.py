"""Which torch device an actor's model runs on, decided once at start-up with a clear error."""
from __future__ import annotations


def resolve_device(name: str) -> str:
    """``auto`` = ``cuda`` when this process sees a GPU (Ray sets CUDA_VISIBLE_DEVICES per actor), else ``cpu``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but this actor sees no GPU "
                           "(set resources.num_gpus for the stage, or device: auto)")
    return name
