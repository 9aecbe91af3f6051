"""Which torch device a model runs on, and loading a model onto it, decided once when its actor starts, with a clear
error."""

from __future__ import annotations


def resolve_device(name: str, key: str = "device") -> str:
    """``auto`` = ``cuda`` when this process sees a GPU (Ray sets CUDA_VISIBLE_DEVICES per actor), else ``cpu``.

    ``key`` is the config key the value came from, so that a GPU asked for on a GPU-less actor names it.
    """
    import torch  # only backends that run a torch model ask for a device

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"{key}: device {name!r} was asked for but this actor sees no CUDA device "
            "(set resources.num_gpus for the stage, or device: auto)"
        )
    return name


def load_exported(path: str, device: str, what: str, key: str):
    """A ``torch.export`` program (``.pt2``) as a module on ``device``; any unreadable file is one
    configuration error naming ``what`` it was meant to be and the config ``key`` it came from."""
    import torch

    try:
        return torch.export.load(str(path)).module().to(device)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same configuration error
        raise RuntimeError(f"{what} {path} cannot be loaded ({key}): {type(exc).__name__}: {exc}") from None
