"""Which torch device a model runs on, decided once when its actor starts, with a clear error."""
from __future__ import annotations


def resolve_device(name: str, key: str = "device") -> str:
    """``auto`` = ``cuda`` when this process sees a GPU (Ray sets CUDA_VISIBLE_DEVICES per actor), else ``cpu``.

    ``key`` is the config key the value came from, so that a GPU asked for on a GPU-less actor names it.
    """
    import torch  # only backends that run a torch model ask for a device

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"{key}: device {name!r} was asked for but this actor sees no CUDA device "
                           "(set resources.num_gpus for the stage, or device: auto)")
    return name
