"""Memory: refusing a model that cannot fit before it is built, recognising out-of-memory
errors whatever library raised them, and giving a failed run's device memory back."""

from __future__ import annotations

import gc
import os
import re

import torch

FLOAT_BYTES = 4  # parameters, gradients and optimizer state are float32

# torch raises torch.cuda.OutOfMemoryError only for its own allocator. cuBLAS and cuDNN
# failing to allocate their workspaces, MPS, and the CPU allocator raise plain RuntimeErrors.
_OUT_OF_MEMORY = re.compile(
    r"out of memory"  # CUDA's allocator, "MPS backend out of memory", HIP
    r"|ALLOC(ATION)?_FAILED"  # CUBLAS_STATUS_ALLOC_FAILED, CUDNN_STATUS_ALLOC_FAILED, cuDNN 9's
    # CUDNN_STATUS_INTERNAL_ERROR_{HOST,DEVICE}_ALLOCATION_FAILED
    r"|can't allocate memory"  # DefaultCPUAllocator
    r"|failed to allocate",
    re.IGNORECASE,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says the device (or the host) ran out of memory."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(exc)))


def out_of_memory_message(device: torch.device | None) -> str:
    where = "the device" if device is None else str(device)
    advice = "a smaller batch_size or hidden_sizes"
    if device is not None and device.type != "cpu":
        advice += ", or the cpu"
    return f"out of memory on {where}: try {advice}"


def optimizer_states(config) -> int:
    """Tensors the optimizer keeps per parameter: Adam's two moments, SGD's momentum."""
    if config.optimizer == "adam":
        return 2
    return 1 if config.sgd_momentum > 0 else 0


def training_bytes(parameters: int, config) -> int:
    """Memory the weights need while training: themselves, their gradients, the optimizer's
    state, and the copy diagnostics keep of the step before (activations are small beside
    them for any model large enough to matter here)."""
    copies = 2 + optimizer_states(config) + (1 if config.diagnostics_every > 0 else 0)
    return parameters * FLOAT_BYTES * copies


def host_memory_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # e.g. Windows has no sysconf
        return None


def device_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        return host_memory_bytes()
    return None  # MPS shares the host's memory; nothing more to ask


def planned_parameters(build) -> int | None:
    """How many parameters `build()` would create, counted on the meta device: no memory
    is allocated and no random numbers are drawn. None if the model cannot be built there
    (a layer that reads a value while it is built): then the real build is the test."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build()
    except (NotImplementedError, RuntimeError):
        return None
    return sum(parameter.numel() for parameter in model.parameters())


def check_model_fits(parameters: int | None, config, device: torch.device) -> None:
    """ValueError naming hidden_sizes when a model of `parameters` parameters cannot train
    here: it is built in host memory (its weights must fit there), then trains on `device`
    (weights, gradients and optimizer state must fit there). None: nothing to check."""
    if parameters is None:
        return
    host = host_memory_bytes()
    on_device = device_memory_bytes(device)
    needed = training_bytes(parameters, config)
    problem = None
    if host is not None and parameters * FLOAT_BYTES > host:
        problem = f"its weights alone need {_gigabytes(parameters * FLOAT_BYTES)} and this machine has {_gigabytes(host)} of memory"
    elif on_device is not None and needed > on_device:
        problem = (
            f"training it with {config.optimizer} needs about {_gigabytes(needed)} and "
            f"{device} has {_gigabytes(on_device)}"
        )
    if problem is not None:
        raise ValueError(
            f"hidden_sizes: the model would have {parameters:,} parameters: {problem}; "
            "choose fewer or narrower hidden layers"
        )


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:,.1f} GB"


def release_device_memory(device: torch.device | None) -> None:
    """Give the memory a failed run held back to the device, so the next run in the same
    process (or another process on the GPU) can have it. torch's caching allocator would
    otherwise keep it reserved; collecting first frees tensors the error's traceback held."""
    if device is None or device.type not in ("cuda", "mps"):
        return
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        torch.mps.empty_cache()
