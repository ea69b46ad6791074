"""Throughput, memory and efficiency of the multistep residual networks against timm's ResNets.

For every model and mode (eager, channels_last, torch.compile) the script measures inference and training
(forward + backward + SGD step) throughput, the peak memory of a step, params and GMACs, and the achieved GMAC/s;
it compares every model with a timm ResNet of the same block type measured in the same run, prints a markdown table,
writes it with a CSV, a JSON and a PNG chart to ``--out-dir``, and ends with the target checks (PASS / MISS).

Usage::

    python benchmarks/benchmark.py                     # the default set, ~15 min on 2 quiet cores (cold compile cache)
    python benchmarks/benchmark.py --quick             # smoke configuration, well under a minute
    python benchmarks/benchmark.py --models default,imagenet-basic   # + the 224x224 basic-block families
    python benchmarks/benchmark.py --threads 1 --timer cpu            # on a busy machine: CPU time, 1 thread
    python benchmarks/benchmark.py --models 'zerosnet5*' --modes eager,compile --batch-size 16
    python benchmarks/benchmark.py --device cuda --amp --batch-size 256 --batch-size-cifar 512

See benchmarks/README.md for what each column means and how the pairs are chosen.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import errno
import fnmatch
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

if __package__ in (None, ""):  # run as a script: make the repository importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import timm_zerosnet  # noqa: E402,F401  (registers our models with timm)
from timm_zerosnet.cpu_heap import ALLOCATOR_ENV  # noqa: E402
from timm_zerosnet.run_layout import file_in_the_way  # noqa: E402

_RESULT_MARK = "@@BENCH_RESULT@@ "
OURS = ("zerosnet", "lmresnet", "preresnet", "tauresnet")  # families of this package
CHECKED = ("zerosnet", "lmresnet", "preresnet")  # the families the target checks are about
MODES = ("eager", "channels_last", "compile", "compile_cl")
PHASES = ("infer", "train")
MACS_FACTOR = {"infer": 1, "train": 3}  # training = forward + backward (input grads + weight grads) ~ 3x forward

DEFAULT_MODELS = [
    # 32x32, basic blocks: the three schemes on one skeleton + timm's ResNetV2 / ResNet classes built in that shape
    "zerosnet20_cifar",
    "lmresnet20_cifar",
    "preresnet20_cifar",
    "timm-resnetv2_20_cifar",
    "timm-resnet20_cifar",
    # 224x224, bottleneck blocks: timm's pre-activation ResNet-50 (the reference of target 1) and its ResNet-50
    "zerosnet50",
    "lmresnet50",
    "preresnet50",
    "resnet50",
    "resnetv2_50",
]
# the 224x224 basic-block set (add with --models default,imagenet-basic; resnet18 is added as their reference)
MODEL_SETS = {
    "default": DEFAULT_MODELS,
    "imagenet-basic": ["zerosnet18", "lmresnet18", "preresnet18", "resnetv2_18", "resnet18"],
}
QUICK_MODELS = ["zerosnet20_cifar", "lmresnet20_cifar", "preresnet20_cifar", "timm-resnetv2_20_cifar"]

RESULTS = Path(__file__).resolve().parent / "results"  # the published results (README)
QUICK_RESULTS = RESULTS / "quick"  # smoke runs: never over the published files (git-ignored)

# (full, quick) defaults of the options that --quick changes; an explicit option always wins
PRESETS: dict[str, tuple[Any, Any]] = {
    "out_dir": (str(RESULTS), str(QUICK_RESULTS)),
    "models": (",".join(DEFAULT_MODELS), ",".join(QUICK_MODELS)),
    "modes": ("eager,channels_last,compile", "eager,channels_last"),
    "baseline": ("resnet50", "timm-resnet20_cifar"),
    "batch_size": (8, 2),
    "batch_size_cifar": (64, 8),
    "img_size": (None, 64),
    "warmup": (2, 1),
    "reps": (3, 2),
    "min_rep_s": (0.5, 0.0),
    "isolate": ("subprocess", "none"),
    "threads": (None, 1),  # None: all cores
    "mem_steps": (3, 1),
    "mem_batch": ("32", ""),
}

# ----------------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------------

_CIFAR_REF = re.compile(r"^timm-resnet(v2_)?(\d+)_cifar$")


def _cifar_ref_layout(depth: int):
    """(block, layers, channels) of timm-resnet<depth>_cifar, or None where no such network is defined."""
    from timm.models.resnet import BasicBlock, Bottleneck

    if depth in (18, 34):  # the 4-stage CIFAR ResNet-18/34 (widths 64..512), as preresnet18_cifar
        return BasicBlock, {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth], (64, 128, 256, 512)
    if depth >= 164 and (depth - 2) % 9 == 0:
        n = (depth - 2) // 9
        return Bottleneck, (n, n, n), (16, 32, 64)
    if depth >= 8 and (depth - 2) % 6 == 0:
        n = (depth - 2) // 6
        return BasicBlock, (n, n, n), (16, 32, 64)
    return None


def timm_cifar_resnet(depth: int, num_classes: int = 10, device=None, preact: bool = False) -> nn.Module:
    """timm's own ResNet classes in the CIFAR shape of our *_cifar models: a 3x3 stride-1 stem conv and no max-pool;
    3 stages of widths 16/32/64 (x4 for bottleneck) for depth 6n+2 (basic: 20, 32, 44, 56, 110) and 9n+2 >= 164
    (bottleneck: 164), or 4 stages of widths 64..512 for depth 18 and 34 (the usual CIFAR ResNet-18/34).

    ``preact=False``: ``timm-resnet<depth>_cifar``, timm's ``ResNet`` (post-activation BasicBlock / Bottleneck,
    in-place ReLU, BN-ReLU after the stem). ``preact=True``: ``timm-resnetv2_<depth>_cifar``, timm's ``ResNetV2``
    (pre-activation PreActBasic / PreActBottleneck with BatchNormAct2d, as timm's resnetv2_18 / resnetv2_50: the
    block type of our ZeroSNet, LM-ResNet and PreResNet).
    """
    from timm.models.resnet import BasicBlock

    layout = _cifar_ref_layout(depth)
    name = f"timm-resnet{'v2_' if preact else ''}{depth}_cifar"
    if layout is None:
        raise ValueError(f"{name}: depth must be 18, 34, 6n+2 (basic) or 9n+2 >= 164 (bottleneck).")
    block, layers, channels = layout
    stem = channels[0] if len(layers) == 4 else 16
    if preact:
        from timm.layers import BatchNormAct2d, create_conv2d
        from timm.models.resnetv2 import ResNetV2

        basic = block is BasicBlock
        model = ResNetV2(
            list(layers),
            channels=channels if basic else tuple(4 * c for c in channels),
            num_classes=num_classes,
            stem_chs=stem,
            basic=basic,
            bottle_ratio=1.0 if basic else 0.25,
            conv_layer=create_conv2d,
            norm_layer=BatchNormAct2d,
            device=device,
        )
        model.stem = nn.Sequential(nn.Conv2d(3, stem, 3, stride=1, padding=1, bias=False, device=device))
    else:
        from timm.models.resnet import ResNet

        # a 'deep' stem of width stem/2 makes the stem output (the first stage input) `stem` channels; its three
        # convs are then replaced by the single 3x3 stride-1 conv of the CIFAR skeleton
        model = ResNet(
            block,
            layers,
            channels=channels,
            stem_type="deep",
            stem_width=stem // 2,
            num_classes=num_classes,
            device=device,
        )
        model.conv1 = nn.Conv2d(3, stem, 3, stride=1, padding=1, bias=False, device=device)
        model.maxpool = nn.Identity()
        if len(layers) == 3:
            model.layer4 = nn.Identity()  # timm's forward always calls layer1..layer4; this skeleton has 3 stages
    model.pretrained_cfg = dict(input_size=(3, 32, 32), num_classes=num_classes, architecture=name)
    return model


def split_name(spec: str) -> tuple[str, int | None]:
    """'resnet18@32' -> ('resnet18', 32): an explicit input resolution; 'resnet18' -> ('resnet18', None). A name of
    weights (a pretrained tag, hf-hub: / local-dir:) is refused: weights do not change what is measured."""
    arch = spec.rsplit("@", 1)[0]
    if ":" in arch or "." in arch:
        # a tag failed deep in timm where its reference pair has no such tag (preresnet20_cifar.digits)
        plain = "its model name (e.g. zerosnet50)" if ":" in arch else arch.split(".")[0]
        raise ValueError(
            f"{spec!r} names weights, not an architecture: the benchmarks build untrained models, as weights do not "
            f"change speed or memory; pass {plain}"
        )
    if "@" in spec:
        name, size = spec.rsplit("@", 1)
        if not size.isdigit() or int(size) < 1:
            raise ValueError(f"{spec!r}: the input size after '@' must be a whole number of pixels, e.g. resnet18@32")
        return name, int(size)
    return spec, None


def create_bench_model(spec: str, device=None) -> nn.Module:
    name, _ = split_name(spec)
    m = _CIFAR_REF.match(name)
    if m:
        return timm_cifar_resnet(int(m.group(2)), device=device, preact=bool(m.group(1)))
    return timm.create_model(name, device=device)


def is_known(spec: str) -> bool:
    try:
        name, _ = split_name(spec)
    except ValueError:
        return False
    m = _CIFAR_REF.match(name)
    if m:
        return _cifar_ref_layout(int(m.group(2))) is not None
    return timm.is_model(name)


def family_of(name: str) -> str:
    for fam in OURS:
        if name.startswith(fam):
            return fam
    return "timm"


def block_type(model: nn.Module) -> str:
    net = getattr(model, "net", None)
    if net is not None and getattr(net, "block", None) in ("basic", "bottleneck"):
        return net.block
    kinds = {type(m).__name__ for m in model.modules()}
    if any("Bottleneck" in k for k in kinds):
        return "bottleneck"
    if any("Basic" in k for k in kinds):
        return "basic"
    return "other"


def is_preact(model: nn.Module) -> bool:
    """Pre-activation blocks (BN-ReLU before each conv: our ZeroSNet / LM-ResNet / PreResNet, timm's ResNetV2)."""
    return any(type(m).__name__.startswith("PreAct") for m in model.modules())


def count_macs(model: nn.Module, input_size: tuple[int, int, int], device="meta") -> float:
    """GMACs of one forward of one image: conv / linear / matmul multiply-adds (torch's FlopCounterMode; norms,
    activations and the elementwise multistep combination are not counted), GMACs = flops / 2 / 1e9."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    x = torch.empty((1, *input_size), device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def model_info(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Static facts of one model: family, style, block type, input, batch, params and GMACs (on the meta device)."""
    name, size = split_name(spec)
    try:
        model = create_bench_model(spec, device="meta")
        meta = True
    except Exception:  # a model that cannot be built on meta: count on CPU instead
        model = create_bench_model(spec)
        meta = False
    default_size = int(model.pretrained_cfg["input_size"][-1])
    # the style (batch size, reference network) is the architecture's, whatever size --img-size (or --quick) runs
    # a 224-style model at; an explicit @SIZE <= 64 ('resnet18@32') asks for a CIFAR-style measurement
    style = "cifar" if default_size <= 64 or (size is not None and size <= 64) else "imagenet"
    if size is None:
        size = default_size if (default_size <= 64 or args.img_size is None) else args.img_size
    input_size = (3, size, size)
    try:
        gmacs = count_macs(model, input_size, "meta" if meta else "cpu")
    except Exception:
        gmacs = count_macs(create_bench_model(spec), input_size, "cpu")
    m = re.search(r"(\d+)", name.replace("v2_", "_"))  # resnetv2_50 -> 50, not 2
    return dict(
        model=spec,
        family=family_of(name),
        style=style,
        arch_style="cifar" if default_size <= 64 else "imagenet",  # the skeleton's, whatever size it runs at
        block=block_type(model),
        preact=is_preact(model),
        depth=int(m.group(1)) if m else None,
        downsample=getattr(getattr(model, "net", None), "downsample", "conv"),
        img_size=size,
        batch=args.batch_size_cifar if style == "cifar" else args.batch_size,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        gmacs=gmacs,
        num_classes=int(getattr(model, "num_classes", 1000) or 1000),
    )


def reference_for(info: dict[str, Any], args: argparse.Namespace, activation: str | None = None) -> str | None:
    """The timm ResNet of the same block type and style that this model's efficiency is compared with (target 1):
    pre-activation models get timm's ResNetV2 (PreActBasic / PreActBottleneck), post-activation ones timm's ResNet.
    ``activation='post'`` asks for the post-activation reference whatever the model's blocks are."""
    pre = info.get("preact", False) if activation is None else activation == "pre"
    # the reference has the model's skeleton (a 224-style bottleneck net at @64 is still compared with resnetv2_50)
    # and runs at the model's explicit @SIZE too; timm's own nets at @SIZE <= 64 ('resnet18@32') stand for CIFAR
    style = info.get("arch_style", info["style"]) if info.get("family") in OURS else info["style"]
    _, size = split_name(info["model"])
    at = f"@{size}" if size is not None and style == "imagenet" else ""
    if info.get("downsample", "conv") != "conv":
        return None  # DiffStride / spectral pooling: full-resolution convs, then pooling; no timm ResNet does that work
    if style == "cifar":
        template = args.ref_preact_cifar if pre else args.ref_cifar
    elif info["block"] == "bottleneck":
        template = args.ref_preact_bottleneck if pre else args.ref_bottleneck
    elif info["block"] == "basic":
        template = args.ref_preact_basic if pre else args.ref_basic
    else:
        return None
    if "{depth}" in template and info["depth"] is None:
        return None
    # a template names the reference of the model's depth (resnetv2_{depth}: zerosnet34 against resnetv2_34)
    ref = template.format(depth=info["depth"]) + ("" if style == "cifar" else at)
    return None if ref == info["model"] or not is_known(ref) else ref


def post_reference_for(info: dict[str, Any], args: argparse.Namespace) -> str | None:
    """For a pre-activation model, the post-activation timm ResNet of the same skeleton (the 'x post' column)."""
    return reference_for(info, args, "post") if info.get("preact") else None


def euler_for(spec: str) -> str | None:
    """The PreResNet with the same skeleton (zerosnet50_tra -> preresnet50): isolates the cost of the scheme."""
    name, size = split_name(spec)
    fam = family_of(name)
    if fam not in OURS or fam == "preresnet":
        return None
    euler = "preresnet" + name[len(fam) :].replace("_tra", "").replace("_nobn", "")
    return euler + (f"@{size}" if size else "") if timm.is_model(euler) else None


def expand_models(patterns: str) -> list[str]:
    """Comma / space separated names or wildcards ('zerosnet*_cifar', 'resnet50', 'resnet18@32', 'timm-resnet*')."""
    out: list[str] = []
    refs = [f"timm-resnet{v}{d}_cifar" for v in ("", "v2_") for d in (18, 20, 32, 34, 44, 56, 110, 164)]
    pats = [p for p in re.split(r"[,\s]+", patterns.strip()) if p]
    if not pats:  # '' or ',': a run of no model wrote empty tables
        raise SystemExit(
            f"--models {patterns!r} names no model; give names, wildcards or a set ({', '.join(MODEL_SETS)}), "
            "or leave the option out for the default set"
        )
    pats = [m for p in pats for m in MODEL_SETS.get(p, [p])]
    for pat in pats:
        try:
            name, size = split_name(pat)
        except ValueError as e:
            raise SystemExit(f"--models: {e}") from None
        if any(c in name for c in "*?["):
            found = sorted(set(timm.list_models(name)) | set(fnmatch.filter(refs, name)))
            if not found:
                raise SystemExit(f"--models: no model matches {name!r}")
            names = [n + (f"@{size}" if size else "") for n in found]
        else:
            if not is_known(pat):
                raise SystemExit(f"--models: unknown model {name!r} (not registered with timm)")
            names = [pat]
        out += [n for n in names if n not in out]
    return out


# ----------------------------------------------------------------------------------------------------------------
# memory helpers (Linux /proc; graceful fallback elsewhere)
# ----------------------------------------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


PINNED_EARLY = "own process, malloc mmap threshold pinned before the model was built"  # see measure()


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Collect garbage and hand freed malloc memory back to the OS, so that RSS follows the live tensors."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def pin_malloc(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold (this also turns off its dynamic growth up to 32 MB): from now on every block
    >= ``threshold`` is its own mapping, returned to the OS when freed, so that RSS follows the live tensors and the
    peak of a step is reproducible. It slows allocations down: call it only after the timed steps."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def minor_faults() -> int:
    """Minor page faults of this process so far (a page the OS had to map in, e.g. memory the heap gave back)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rss_mb() -> float:
    kb = _proc_status_kb("VmRSS")
    if kb is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


def peak_rss_mb() -> float:
    kb = _proc_status_kb("VmHWM")
    if kb is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


# ----------------------------------------------------------------------------------------------------------------
# one measurement: a model in one mode, inference then training (runs in a worker subprocess by default)
# ----------------------------------------------------------------------------------------------------------------


def setup_model(
    spec: str, batch: int, img_size: int, device: Any = "cpu", fmt: torch.memory_format = torch.contiguous_format
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.optim.Optimizer]:
    """What every benchmark here times: the model of ``spec`` (seed 0), one random batch and its labels in the
    memory format ``fmt``, and SGD with momentum."""
    torch.manual_seed(0)
    model = create_bench_model(spec).to(device=device, memory_format=fmt)
    num_classes = int(getattr(model, "num_classes", 1000) or 1000)
    x = torch.randn(batch, 3, img_size, img_size, device=device).contiguous(memory_format=fmt)
    target = torch.randint(num_classes, (batch,), device=device)
    return model, x, target, torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)


def steps_per_rep(min_rep_s: float, step_s: float, max_iters: int) -> int:
    """Steps in one timed repetition, so that it lasts at least ``min_rep_s`` given a step of ``step_s`` seconds (one
    step when ``min_rep_s`` is 0, at most ``max_iters``)."""
    if min_rep_s <= 0:
        return 1
    return int(min(max(math.ceil(min_rep_s / max(step_s, 1e-6)), 1), max_iters))


def make_steps(run: Callable, optimizer, x: torch.Tensor, target: torch.Tensor, amp=None) -> dict[str, Callable]:
    """The two phases as step functions: 'infer' (forward under no_grad) and 'train' (zero_grad, cross-entropy,
    backward, optimizer step); ``amp`` is an autocast context or None."""

    def infer_step():
        with torch.no_grad():
            if amp is None:
                run(x)
            else:
                with amp:
                    run(x)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        if amp is None:
            loss = F.cross_entropy(run(x), target)
        else:
            with amp:
                loss = F.cross_entropy(run(x), target)
        loss.backward()
        optimizer.step()

    return {"infer": infer_step, "train": train_step}


def time_steps(
    step: Callable[[], None],
    sync: Callable[[], None],
    warmup: int,
    reps: int,
    min_rep_s: float,
    max_iters: int,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Run ``warmup`` steps (the first one compiles / initialises), then ``reps`` timed repetitions of ``iters``
    steps each, ``iters`` chosen so that a repetition lasts at least ``min_rep_s``. Returns seconds per step
    (``first_s``: wall-clock seconds of the first step)."""
    t0 = time.perf_counter()
    step()
    sync()
    first_s = time.perf_counter() - t0
    last = first_s
    for _ in range(max(warmup - 1, 0)):
        t0 = timer()
        step()
        sync()
        last = timer() - t0
    iters = steps_per_rep(min_rep_s, last, max_iters)
    samples = []
    for _ in range(reps):
        t0 = timer()
        for _ in range(iters):
            step()
        sync()
        samples.append((timer() - t0) / iters)
    return dict(first_s=first_s, iters=iters, step_s=samples)


def memory_step(
    step: Callable[[], None], sync: Callable[[], None], device: torch.device, rss_base: float, can_reset: bool
) -> dict[str, Any]:
    """Peak memory of one more (untimed) step, less ``rss_base`` (the memory in use before the model was built).
    CUDA: allocator peak (``rss_base`` is then the allocated CUDA memory, which earlier in-process models may have
    left). CPU: process peak RSS (VmHWM, reset first)."""
    trim_heap()
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        step()
        sync()
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        method = "cuda max_memory_allocated, less what was allocated before the model was built"
        return dict(mem_mb=peak - rss_base, step_mem_mb=peak - before, peak_mb=peak, mem_method=method)
    before = rss_mb()
    if can_reset:
        reset_peak_rss()
    step()
    sync()
    peak = peak_rss_mb()
    method = "VmHWM reset before the step" if can_reset else "lifetime peak RSS (no reset possible)"
    return dict(mem_mb=peak - rss_base, step_mem_mb=peak - before, peak_mb=peak, mem_method=method)


def saved_activation_mb(model: nn.Module, x: torch.Tensor, amp=None) -> float:
    """Exact activation memory of training: the bytes of the distinct tensors that one forward saves for backward,
    parameters and buffers excluded (saved_tensors_hooks; deterministic, unlike the peak RSS)."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in own:
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        # detached: packing the tensor itself would make a node that saves its own output hold that output, and its
        # grad_fn the node: a cycle through C++ that garbage collection never frees (the activations would leak)
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if amp is None:
            out = model(x)
        else:
            with amp:
                out = model(x)
    del out
    return sum(seen.values()) / 2**20


class LiveTensorBytes(TorchDispatchMode):
    """Peak of the bytes held by live tensors while the mode is active: the CPU counterpart of
    ``torch.cuda.max_memory_allocated`` (no allocator slack, no library scratch; deterministic). Every op output is
    counted once per storage until the last tensor that the mode saw on that storage is freed; ``keep`` are the
    tensors alive before (parameters, buffers, optimizer state, the batch)."""

    def __init__(self, keep: list[torch.Tensor]):
        super().__init__()
        self.count: Counter[int] = Counter()
        self.size: dict[int, int] = {}
        self.live = self.peak = 0
        self._keep = list(keep)
        for t in self._keep:
            self._track(t, owned=False)

    def _track(self, t: torch.Tensor, owned: bool = True) -> None:
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr == 0:
            return
        if self.count[ptr] == 0:
            self.size[ptr] = st.nbytes()
            self.live += st.nbytes()
            self.peak = max(self.peak, self.live)
        self.count[ptr] += 1
        if owned:
            weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        self.count[ptr] -= 1
        if self.count[ptr] == 0:
            self.live -= self.size.pop(ptr)
            del self.count[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t)
        return out


def tensor_peak_mb(step: Callable[[], None], keep: list[torch.Tensor]) -> float:
    """Peak live tensor bytes (MB) during one eager step (see ``LiveTensorBytes``); slow, run it once."""
    with LiveTensorBytes(keep) as tracker:
        step()
    return tracker.peak / 2**20


def cuda_device(device: torch.device) -> torch.device:
    """``cuda`` as ``cuda:0``: torch.cuda.set_device refuses a device without an index."""
    return device if device.index is not None else torch.device("cuda", 0)


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build one model, time inference and training in one mode, and measure the peak memory of each phase."""
    device = torch.device(cfg["device"])
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    if device.type == "cuda":
        device = cuda_device(device)
        torch.backends.cudnn.benchmark = True
        torch.cuda.set_device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    mode = cfg["mode"]
    channels_last = mode in ("channels_last", "compile_cl")
    compiled = mode in ("compile", "compile_cl")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if cfg["amp"] else None

    # "start": a memory-only worker fixes glibc's policy before anything is allocated, so that every step of the
    # process, the first one included, frees its large blocks to the OS and the peak RSS carries no heap history
    pin = cfg.get("pin_malloc", False) if device.type == "cpu" else False  # "start", True (after timing) or False
    pinned_early = pin == "start" and pin_malloc()
    trim_heap()
    can_reset = reset_peak_rss()
    if device.type == "cuda":
        sync()
        torch.cuda.empty_cache()
    rss_base = rss_mb() if device.type == "cpu" else torch.cuda.memory_allocated(device) / 2**20
    model, x, target, optimizer = setup_model(cfg["model"], cfg["batch"], cfg["img_size"], device, fmt)
    run = model
    if compiled:
        kwargs = {"backend": cfg["compile_backend"]}
        if cfg.get("compile_mode"):
            kwargs["mode"] = cfg["compile_mode"]
        run = torch.compile(model, **kwargs)
    result: dict[str, Any] = dict(
        model=cfg["model"],
        mode=mode,
        phases={},
        rss_base_mb=rss_base,
        rss_model_mb=rss_mb() if device.type == "cpu" else 0.0,
    )

    steps = make_steps(run, optimizer, x, target, amp)
    timer = time.process_time if cfg.get("timer") == "cpu" else time.perf_counter
    for phase in cfg["phases"]:  # first all the timing ...
        model.train(phase == "train")
        try:
            timing = time_steps(
                steps[phase], sync, cfg["warmup"], cfg["reps"], cfg["min_rep_s"], cfg["max_iters"], timer
            )
            result["phases"][phase] = dict(**timing, status="ok")
        except Exception as e:  # compile failures (no C++ compiler, unsupported op) are recorded, not fatal
            if not compiled:
                raise
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
            result["phases"][phase] = dict(status=f"compile failed: {reason}")
            result["compile_error"] = reason
    # ... then the memory: one more step per phase, training first (its optimizer state exists after the timing),
    # inference after the optimizer state and gradients are dropped again
    pinned = pin is True and pin_malloc()
    for phase in sorted(cfg["phases"], key=lambda ph: ph != "train"):
        if result["phases"][phase]["status"] != "ok":
            continue
        if phase == "infer":
            optimizer.zero_grad(set_to_none=True)
            optimizer.state.clear()
        model.train(phase == "train")
        runs = [memory_step(steps[phase], sync, device, rss_base, can_reset) for _ in range(cfg.get("mem_steps", 1))]
        mem = {k: statistics.median(m[k] for m in runs) for k in ("mem_mb", "step_mem_mb", "peak_mb")}
        mem.update(mem_method=runs[0]["mem_method"], mem_mb_runs=[m["mem_mb"] for m in runs])
        if pinned_early:
            mem["mem_method"] += ", " + PINNED_EARLY
        elif pinned:
            mem["mem_method"] += ", malloc mmap threshold pinned after the timed steps"
        result["phases"][phase].update(mem)
        if not compiled and device.type == "cpu":  # exact figures (the CUDA allocator peak is exact already)
            state = [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
            if phase == "train":
                optimizer.zero_grad(set_to_none=True)
            keep = [*model.parameters(), *model.buffers(), x, target, *state]
            result["phases"][phase]["tensor_mb"] = tensor_peak_mb(steps[phase], keep)
        if phase == "train" and not compiled:
            result["phases"][phase]["saved_mb"] = saved_activation_mb(model, x, amp)
    if compiled:
        torch._dynamo.reset()
    return result


def prime(device: str) -> None:
    """One tiny training and inference step, so that one-time lazy initialisation (oneDNN, autograd engine) is not
    charged to the first model measured in-process."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).to(device)
    x = torch.randn(2, 3, 16, 16, device=device)
    F.cross_entropy(net(x), torch.zeros(2, dtype=torch.long, device=device)).backward()
    with torch.no_grad():
        net.eval()(x)
    trim_heap()


def run_isolated(cfg: dict[str, Any], timeout: float | None = None, script: Path | None = None) -> dict[str, Any]:
    """``measure`` in a fresh interpreter (``script``, default this file, with ``--worker``): a per-model peak RSS,
    no leftovers. Another benchmark script passes itself and calls ``worker_main`` with its own measurement."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    cmd = [sys.executable, str(Path(script or __file__).resolve()), "--worker", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(model=cfg["model"], mode=cfg["mode"], error=f"worker timed out after {timeout:.0f} s", phases={})
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(
        model=cfg["model"],
        mode=cfg["mode"],
        phases={},
        error=f"worker exited with {proc.returncode}: " + " | ".join(tail)[:400],
    )


def worker_main(payload: str, fn: Callable[[dict[str, Any]], dict[str, Any]] = measure) -> None:
    cfg = json.loads(payload)
    try:
        result = fn(cfg)
    except Exception as e:
        traceback.print_exc()
        result = dict(model=cfg["model"], mode=cfg["mode"], phases={}, error=f"{type(e).__name__}: {e}"[:400])
    print(_RESULT_MARK + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------------------------
# statistics, ratios, checks
# ----------------------------------------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def make_rows(infos: dict[str, dict], results: list[dict], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (model, mode, phase), with throughput statistics and the ratios to the paired models."""
    pooled: dict[tuple[str, str, str], dict[str, Any]] = {}
    for res in results:  # pool the repetitions of all rounds
        for phase in PHASES:
            key = (res["model"], res["mode"], phase)
            slot = pooled.setdefault(key, dict(step_s=[], mem=[], status=None, first_s=None, iters=None))
            ph = res.get("phases", {}).get(phase)
            if ph is None:
                if res.get("error") and phase in args.phases:
                    slot["status"] = slot["status"] or f"error: {res['error']}"
                continue
            if ph.get("status") != "ok":
                slot["status"] = slot["status"] or ph["status"]
                continue
            slot["step_s"] += ph["step_s"]
            slot["mem"].append(ph)
            slot["first_s"] = ph["first_s"] if slot["first_s"] is None else min(slot["first_s"], ph["first_s"])
            slot["iters"] = ph["iters"]
    rows = []
    for (model, mode, phase), slot in pooled.items():
        if phase not in args.phases:
            continue
        info = infos[model]
        row: dict[str, Any] = {
            k: info[k] for k in ("model", "family", "style", "block", "img_size", "batch", "params_m", "gmacs")
        }
        row.update(
            mode=mode,
            phase=phase,
            amp=bool(args.amp),
            device=args.device,
            macs_factor=MACS_FACTOR[phase],
            status=slot["status"] or ("ok" if slot["step_s"] else "no data"),
        )
        if slot["step_s"]:
            s = slot["step_s"]
            q1, med, q3 = quartiles(s)
            batch, macs = info["batch"], info["gmacs"] * MACS_FACTOR[phase]
            mem = {k: statistics.median(d[k] for d in slot["mem"]) for k in ("mem_mb", "step_mem_mb", "peak_mb")}
            mem["mem_mb_runs"] = [v for d in slot["mem"] for v in d.get("mem_mb_runs", [d["mem_mb"]])]
            for key in ("saved_mb", "tensor_mb"):  # deterministic: the first round's value
                vals = [d[key] for d in slot["mem"] if d.get(key) is not None]
                mem[key] = vals[0] if vals else None
            row.update(
                n=len(s),
                iters=slot["iters"],
                step_ms=med * 1e3,
                img_s=batch / med,
                img_s_q1=batch / q3,
                img_s_q3=batch / q1,
                img_s_min=batch / max(s),
                img_s_max=batch / min(s),
                gmac_s=macs * batch / med,
                gmac_s_q1=macs * batch / q3,
                gmac_s_q3=macs * batch / q1,
                first_s=slot["first_s"],
                **mem,
                mem_method=slot["mem"][0]["mem_method"],
            )
        rows.append(row)

    index = {(r["model"], r["mode"], r["phase"]): r for r in rows}

    def ratio(row, other, key="gmac_s"):
        o = index.get((other, row["mode"], row["phase"])) if other else None
        if o is None or "gmac_s" not in row or "gmac_s" not in o:
            return None
        return row[key] / o[key], row[key + "_q1"] / o[key + "_q3"], row[key + "_q3"] / o[key + "_q1"]

    for r in rows:
        r["ref"] = reference_for(infos[r["model"]], args)
        r["post"] = post_reference_for(infos[r["model"]], args)
        r["euler"] = euler_for(r["model"])
        r["baseline"] = args.baseline or None
        pairs = (("x_ref", r["ref"]), ("x_post", r["post"]), ("x_euler", r["euler"]), ("x_base", r["baseline"]))
        for col, other in pairs:
            got = ratio(r, other)
            r[col], r[col + "_lo"], r[col + "_hi"] = got if got else (None, None, None)
        got = ratio(r, r["baseline"], "img_s")
        r["x_base_img_s"] = got[0] if got else None
        eager_mode = "channels_last" if r["mode"] == "compile_cl" else "eager"
        e = index.get((r["model"], eager_mode, r["phase"]))
        r["compile_speedup"] = (
            r["img_s"] / e["img_s"] if r["mode"].startswith("compile") and e and "img_s" in e and "img_s" in r else None
        )
    order = {m: i for i, m in enumerate(infos)}
    rows.sort(key=lambda r: (PHASES.index(r["phase"]), order[r["model"]], MODES.index(r["mode"])))
    return rows


def verdict(ok: bool, lo: float | None, hi: float | None, threshold: float) -> str:
    """PASS / MISS, with '(within noise)' where the threshold lies inside the measured range [lo, hi]."""
    word = "PASS" if ok else "MISS"
    if lo is not None and hi is not None and lo <= threshold <= hi:
        word += " (within noise)"
    return word


def _memory_checks(model: str, euler: str, mine: dict, theirs: dict, args, label: str = "") -> list[dict[str, Any]]:
    """Check 2 lines: peak RSS as the issue states it (CPU), then the exact live-tensor bytes (the CPU counterpart of
    CUDA's max_memory_allocated)."""
    out = []
    for key, name in (("mem_mb", "2 memory"), ("tensor_mb", "2 memory (live tensors, exact)")):
        if not (mine.get(key) and theirs.get(key)):
            continue
        q = mine[key] / theirs[key]
        detail = f"{mine[key]:.0f} MB vs {theirs[key]:.0f} MB"
        runs_a, runs_b = mine.get(key + "_runs"), theirs.get(key + "_runs")
        if runs_a and runs_b and len(runs_a) > 1:
            detail += f"; over {len(runs_a)} memory steps the ratio ranges {min(runs_a) / max(runs_b):.2f}-"
            detail += f"{max(runs_a) / min(runs_b):.2f}"
        out.append(
            dict(
                check=name + label,
                model=model,
                phase="train",
                mode="eager",
                against=euler,
                measured=q,
                lo=None,
                hi=None,
                target=f"<= {args.mem_tol:.2f}",
                result="PASS" if q <= args.mem_tol else "MISS",
                detail=detail,
            )
        )
    return out


def run_checks(
    rows: list[dict[str, Any]], args: argparse.Namespace, mem_extra: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The three targets of the issue, one line per (model, phase, mode) they apply to."""
    index = {(r["model"], r["mode"], r["phase"]): r for r in rows}
    checks = []
    # (1) efficiency: achieved GMAC/s within 5% of the timm ResNet of the same block type
    for r in rows:
        if r["family"] in CHECKED and r["mode"] in ("eager", "compile") and r.get("x_ref") is not None:
            ok = r["x_ref"] >= 1 - args.eff_tol
            checks.append(
                dict(
                    check="1 efficiency",
                    model=r["model"],
                    phase=r["phase"],
                    mode=r["mode"],
                    against=r["ref"],
                    measured=r["x_ref"],
                    lo=r["x_ref_lo"],
                    hi=r["x_ref_hi"],
                    target=f">= {1 - args.eff_tol:.2f}",
                    result=verdict(ok, r["x_ref_lo"], r["x_ref_hi"], 1 - args.eff_tol),
                )
            )
    # (2) memory: training peak memory of ZeroSNet at most 1.10x that of the PreResNet of the same skeleton, at the
    # batch of the run and at the extra batches of --mem-batch
    by_key = {(m["model"], m["batch"]): m for m in mem_extra or []}
    for r in rows:  # the timed workers' own memory step, where no memory-only worker measured that batch
        if r["family"] == "zerosnet" and r["phase"] == "train" and r["mode"] == "eager" and "mem_mb" in r:
            e = index.get((r["euler"], r["mode"], "train"))
            if e is not None and e.get("mem_mb", 0) > 0 and (r["model"], r["batch"]) not in by_key:
                checks += _memory_checks(
                    r["model"], r["euler"], r, e, args, f" @ batch {r['batch']} (after the timed steps)"
                )
    for m in mem_extra or []:
        euler = euler_for(m["model"])
        if m["model"] == m["pair"] and (euler, m["batch"]) in by_key:
            pinned = (m.get("mem_method") or "").endswith(PINNED_EARLY)
            label = f" @ batch {m['batch']}" + (" (memory-only process)" if pinned else "")
            checks += _memory_checks(m["model"], euler, m, by_key[(euler, m["batch"])], args, label)
    # (3) torch.compile speed-up of ours at least that of the baseline (timm resnet50)
    for r in rows:
        if r["family"] in CHECKED and r["mode"] == "compile" and r.get("compile_speedup") is not None:
            b = index.get((args.baseline, "compile", r["phase"]))
            if b is None or b.get("compile_speedup") is None:
                continue
            q = r["compile_speedup"] / b["compile_speedup"]
            detail = f"{r['compile_speedup']:.2f}x vs {b['compile_speedup']:.2f}x"
            ref = index.get((r["ref"], "compile", r["phase"]))
            if r["ref"] != args.baseline and ref and ref.get("compile_speedup") is not None:
                detail += f"; {r['ref']} (same block type): {ref['compile_speedup']:.2f}x"
            checks.append(
                dict(
                    check="3 compile speed-up",
                    model=r["model"],
                    phase=r["phase"],
                    mode="compile",
                    against=args.baseline,
                    measured=q,
                    lo=None,
                    hi=None,
                    target=">= 1.00",
                    result="PASS" if q >= 1.0 else "MISS",
                    detail=detail,
                )
            )
    return checks


# ----------------------------------------------------------------------------------------------------------------
# output: markdown, CSV, JSON, PNG
# ----------------------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def core_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# what keep_heap() defers to, and the arena count, which changes the faults without deciding whether memory is kept
MALLOC_ENV = (*ALLOCATOR_ENV, "MALLOC_ARENA_MAX_")


def malloc_settings() -> str:
    """The environment that changes how CPU memory is allocated (and so how many page faults a step pays), as
    the workers inherit it; "glibc defaults" when none is set."""
    found = [f"{k}={os.environ[k]}" for k in MALLOC_ENV if os.environ.get(k)]
    return ", ".join(found) if found else "glibc defaults"


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu, cores = cpu_name(), core_count()
    info = dict(
        cpu=cpu,
        cores=cores,
        threads=args.threads or torch.get_num_threads(),
        torch=torch.__version__,
        timm=timm.__version__,
        python=platform.python_version(),
        device=args.device,
        device_name=torch.cuda.get_device_name(0) if args.device.startswith("cuda") else cpu,
        loadavg_start=os.getloadavg() if hasattr(os, "getloadavg") else None,
        malloc=malloc_settings(),
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    try:
        info["commit"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


def _f(v: Any, fmt: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def _ratio_cell(r: dict[str, Any], col: str) -> str:
    if r.get(col) is None:
        return "-"
    return f"{r[col]:.2f} ({r[col + '_lo']:.2f}-{r[col + '_hi']:.2f})"


def foreign_load(machine: dict[str, Any]) -> float:
    """Load from other processes: the 1-minute load average before the run, and at its end minus the benchmark's
    own worker threads (which the load average counts)."""
    la, la_end = machine.get("loadavg_start"), machine.get("loadavg_end")
    if not la or not la_end:
        return 0.0
    own = machine.get("threads") or 1
    return max(la[0], la_end[0] - own, 0.0)


def markdown_report(
    machine: dict[str, Any], infos: dict[str, dict], rows: list[dict], checks: list[dict], args: argparse.Namespace
) -> str:
    la = machine.get("loadavg_start")
    la_end = machine.get("loadavg_end")
    mem_method = next((r["mem_method"] for r in rows if r.get("mem_method")), "-")
    out = [
        "# timm-zerosnet benchmark",
        "",
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads; device "
        f"{machine['device']} ({machine['device_name']}); CPU allocator: {machine.get('malloc', '-')}",
        f"- torch {machine['torch']}, timm {machine['timm']}, python {machine['python']}, commit "
        f"{machine.get('commit') or '-'}, {machine['date']}"
        + (f", load average {la[0]:.2f} at start / {la_end[0]:.2f} at end" if la and la_end else ""),
        f"- batch {args.batch_size} at 224-style inputs, {args.batch_size_cifar} at 32x32; amp (bf16 autocast) "
        f"{'on' if args.amp else 'off'}; warm-up {args.warmup} steps, {args.reps} timed repetitions x {args.rounds} "
        f"round(s), each repetition >= {args.min_rep_s} s; isolation: {args.isolate}; timer: "
        f"{'process CPU time (not wall clock)' if args.timer == 'cpu' else 'wall clock'}",
        *(
            [
                f"- **WARNING: a load of {foreign_load(machine):.1f} besides this benchmark on {machine['cores']} "
                f"cores: other processes competed for the CPU, the timings (not the GMACs, params or saved MB) are "
                f"unreliable**"
            ]
            if foreign_load(machine) > 0.5 * machine["cores"]
            else []
        ),
        "- img/s: median with the interquartile range [q1-q3] over the repetitions; GMACs: conv/linear multiply-adds "
        "of one image (FlopCounterMode); GMAC/s = GMACs x img/s x (1 inference, 3 training)",
        f"- x ref / x post / x euler / x base: achieved GMAC/s divided by that of the paired model in the same mode "
        f"and phase (ref: timm ResNet of the same block type and style - timm's pre-activation ResNetV2 for "
        f"pre-activation models; post: timm's post-activation ResNet of the same skeleton; euler: the PreResNet of "
        f"the same skeleton; base: {args.baseline or '-'}), with the range q1/q3 .. q3/q1 in brackets",
        f"- mem MB: peak memory of one step minus the process baseline (torch imported, nothing built) - {mem_method}; "
        f"step MB: the part allocated during the step itself (activations, grads, temporaries); tensor MB (CPU, eager "
        f"modes): exact peak of the bytes of live tensors during a step, weights and optimizer state included (the "
        f"CPU counterpart of cuda max_memory_allocated); saved MB (training, eager modes): exact bytes of the "
        f"activations one forward saves for backward",
        "- check 2 (memory) at a batch marked 'memory-only process': peak RSS of a training step in a worker that "
        "times nothing and fixes glibc's mmap threshold before it builds the model, so that every large block goes "
        "back to the OS when freed and the peak does not depend on the heap that earlier steps left. That is not "
        "the allocator a training run has (zerosnet-train keeps the heap; glibc's defaults return it): there the "
        "ratio follows the heap's fragmentation too (the README gives both), and the tables' mem MB, measured in "
        "the timed workers after their timed steps, can differ from the check's figure",
        "",
        "## Models",
        "",
        "| model | family | style | block | input | batch | params (M) | GMACs | ref | post | euler |",
        "|---|---|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for spec, i in infos.items():
        block = ("pre-act " if i.get("preact") else "") + i["block"]
        out.append(
            f"| {spec} | {i['family']} | {i['style']} | {block} | {i['img_size']} | {i['batch']} | "
            f"{i['params_m']:.2f} | {i['gmacs']:.3f} | {reference_for(i, args) or '-'} | "
            f"{post_reference_for(i, args) or '-'} | {euler_for(spec) or '-'} |"
        )
    for phase, title in (("infer", "Inference"), ("train", "Training (forward + backward + SGD step)")):
        prows = [r for r in rows if r["phase"] == phase]
        if not prows:
            continue
        out += [
            "",
            f"## {title}",
            "",
            "| model | mode | img/s [q1-q3] | ms/step | GMAC/s | x ref | x post | x euler | x base | compile x | "
            "mem MB | step MB | tensor MB | saved MB | first call s | status |",
            "|---|---|---|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in prows:
            ips = f"{r['img_s']:.1f} [{r['img_s_q1']:.1f}-{r['img_s_q3']:.1f}]" if "img_s" in r else "-"
            out.append(
                f"| {r['model']} | {r['mode']} | {ips} | {_f(r.get('step_ms'))} | {_f(r.get('gmac_s'))} | "
                f"{_ratio_cell(r, 'x_ref')} | {_ratio_cell(r, 'x_post')} | {_ratio_cell(r, 'x_euler')} | "
                f"{_ratio_cell(r, 'x_base')} | "
                f"{_f(r.get('compile_speedup'), '.2f')} | {_f(r.get('mem_mb'), '.0f')} | "
                f"{_f(r.get('step_mem_mb'), '.0f')} | {_f(r.get('tensor_mb'), '.0f')} | "
                f"{_f(r.get('saved_mb'), '.0f')} | {_f(r.get('first_s'), '.1f')} | {r['status']} |"
            )
    out += ["", "## Target checks", "", checks_text(checks)]
    return "\n".join(out) + "\n"


def checks_text(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "(no check applies to the models and modes of this run)"
    lines = [
        "| check | model | phase | mode | against | measured | target | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        meas = f"{c['measured']:.3f}"
        if c.get("lo") is not None:
            meas += f" ({c['lo']:.2f}-{c['hi']:.2f})"
        if c.get("detail"):
            meas += f" [{c['detail']}]"
        lines.append(
            f"| {c['check']} | {c['model']} | {c['phase']} | {c['mode']} | {c['against']} | {meas} | "
            f"{c['target']} | {c['result']} |"
        )
    n_pass = sum(c["result"].startswith("PASS") for c in checks)
    lines += ["", f"{n_pass}/{len(checks)} PASS, {len(checks) - n_pass} MISS"]
    return "\n".join(lines)


CSV_FIELDS = [
    "model",
    "family",
    "style",
    "block",
    "img_size",
    "batch",
    "mode",
    "phase",
    "amp",
    "device",
    "params_m",
    "gmacs",
    "macs_factor",
    "n",
    "iters",
    "step_ms",
    "img_s",
    "img_s_q1",
    "img_s_q3",
    "img_s_min",
    "img_s_max",
    "gmac_s",
    "gmac_s_q1",
    "gmac_s_q3",
    "ref",
    "x_ref",
    "x_ref_lo",
    "x_ref_hi",
    "post",
    "x_post",
    "x_post_lo",
    "x_post_hi",
    "euler",
    "x_euler",
    "x_euler_lo",
    "x_euler_hi",
    "baseline",
    "x_base",
    "x_base_lo",
    "x_base_hi",
    "x_base_img_s",
    "compile_speedup",
    "mem_mb",
    "step_mem_mb",
    "peak_mb",
    "tensor_mb",
    "saved_mb",
    "mem_method",
    "first_s",
    "status",
]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_chart(path: Path, rows: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    index = {(r["model"], r["mode"], r["phase"]): r for r in rows}
    panels = [
        ("infer", "gmac_s", "inference GMAC/s"),
        ("train", "gmac_s", "training GMAC/s"),
        ("train", "mem_mb", "training peak memory after the timed steps (MB)"),
    ]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(8.0, 0.8 * len(models) * max(len(modes), 1) / 2 + 3), 11), squeeze=False
    )
    width = 0.8 / max(len(modes), 1)
    for ax, (phase, key, label) in zip(axes[:, 0], panels):
        for j, mode in enumerate(modes):
            xs, ys, err = [], [], [[], []]
            for i, m in enumerate(models):
                r = index.get((m, mode, phase))
                if r is None or r.get(key) is None:
                    continue
                xs.append(i + (j - (len(modes) - 1) / 2) * width)
                ys.append(r[key])
                lo, hi = r.get(key + "_q1", r[key]), r.get(key + "_q3", r[key])
                err[0].append(max(r[key] - lo, 0))
                err[1].append(max(hi - r[key], 0))
            ax.bar(xs, ys, width, yerr=err if key != "mem_mb" else None, label=mode, capsize=2)
        ax.set_ylabel(label)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_title(
        f"{machine['device_name']} ({machine['threads']} threads), torch {machine['torch']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the None of options whose default comes from PRESETS (their help says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def check_ranges(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    counts: tuple[str, ...] = (),
    at_least_0: tuple[str, ...] = (),
    positive: tuple[str, ...] = (),
    fractions: tuple[str, ...] = (),
) -> None:
    """One usage error naming every numeric option out of its range (an option left unset, None, is not checked):
    ``counts`` at least 1, ``at_least_0`` at least 0, ``positive`` above 0, ``fractions`` in [0, 1). The benchmark
    scripts share it, so that a bad number is refused before anything is built instead of ending in a traceback
    (``torch.set_num_threads(0)``) or in a run that measures nothing (``--max-iters 0``)."""
    rules = [(counts, lambda v: v >= 1, "at least 1"), (at_least_0, lambda v: v >= 0, "at least 0")]
    rules += [(positive, lambda v: v > 0, "above 0"), (fractions, lambda v: 0 <= v < 1, "in [0, 1)")]
    bad = [
        f"--{k.replace('_', '-')} {getattr(args, k)} (must be {need})"
        for keys, ok, need in rules
        for k in keys
        if getattr(args, k) is not None and not ok(getattr(args, k))
    ]
    if bad:
        p.error("; ".join(bad))


_REF_DEPTHS = (18, 20, 32, 34, 44, 50, 56, 101, 110, 152, 164, 1202)
"""Depths a reference template ('resnetv2_{depth}', 'resnet{depth}@32') is tried at: ours and timm's ResNets'."""


def check_compile(p: argparse.ArgumentParser, backend: str, mode: str | None, options: str) -> None:
    """A ``torch.compile`` backend and mode that torch accepts (``options`` names them in the error), asked of
    torch.compile itself, which builds nothing until the first call: a misspelt one ended every compiled
    measurement in an error row (or, in-process, in a traceback), after the eager ones had run."""
    kwargs = {"backend": backend} | ({"mode": mode} if mode else {})
    try:
        torch.compile(nn.Identity(), **kwargs)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        p.error(f"{options}: {reason}")


def _refuse(p: argparse.ArgumentParser | None, message: str) -> NoReturn:
    """A usage error of ``p`` (exit status 2), or without a parser a SystemExit with the message."""
    if p is None:
        raise SystemExit(message)
    p.error(message)


def check_output(
    p: argparse.ArgumentParser | None, option: str, value: str | Path, file_example: str | None = None
) -> None:
    """Refuse, before any measurement, an output that cannot be written: the folder ``option`` names (``value``), or
    with ``file_example`` the file it names (then a folder is refused, ``file_example`` being the file name the
    message suggests in it). A file where a folder must be, and a folder that cannot be made or written in (read-only,
    /proc, no permission), are found by making the missing folders and a probe file, which are removed again: every
    benchmark script writes its results only after the whole measurement, which such a path lost in a traceback.
    ``p`` None (a check outside the parse step): a SystemExit with the message instead of a usage error."""
    path = Path(value).expanduser()
    if file_example is not None and path.is_dir():
        _refuse(p, f"{option} {value} is a folder; give the file to write, e.g. {path / file_example}")
    folder = path.parent if file_example is not None else path
    if (blocker := file_in_the_way(folder)) is not None:
        if file_example is None:
            _refuse(
                p, f"{option} {value}: {blocker} is a file, and the results are written into a folder; choose a folder"
            )
        _refuse(
            p, f"{option} {value}: {blocker} is a file, and {path.name} is written into a folder; choose another path"
        )
    missing = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
        if file_example is not None and path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, f"{path.name} is read-only")
    except OSError as e:
        kind = "file" if file_example is not None else "folder"
        _refuse(p, f"{option} {value}: cannot write there ({e.strerror or e}); pass another {kind}")
    finally:
        for d in missing:
            with contextlib.suppress(OSError):
                d.rmdir()


def check_device(p: argparse.ArgumentParser | None, value: str, option: str = "--device") -> torch.device:
    """The torch device ``value`` names, refused before any work where torch cannot parse it ('foo') or cannot use
    it here (CUDA without a GPU or beyond the GPUs there are, MPS or XLA in a build without them; 'meta' holds no
    data to time). Every worker ended in the same error row otherwise, after the whole sweep, or the in-process run
    in a traceback. CUDA is asked without making a context in this process (the workers make their own)."""
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _refuse(p, f"{option} {value}: not a device torch knows ({reason}); pass e.g. --device cpu or --device cuda")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            _refuse(p, f"{option} {value}: torch sees no CUDA device here; run on a GPU machine or pass --device cpu")
        if device.index is not None and device.index >= count:
            which = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            _refuse(p, f"{option} {value}: torch sees {count} CUDA device(s) here; pass {which}")
        return device
    if device.type == "meta":
        _refuse(p, f"{option} {value}: meta tensors hold no data, there is nothing to run; pass --device cpu")
    try:
        torch.empty(1, device=device)
    except Exception as e:  # NotImplementedError, ModuleNotFoundError, RuntimeError, by backend
        reason = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        _refuse(p, f"{option} {value}: not available here ({reason}); pass --device cpu")
    return device


def check_references(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The ``--ref-*`` options name models that exist (a misspelt one dropped every ratio against it, silently).
    Each may be a template with ``{depth}``: it must give a known model at one of ``_REF_DEPTHS`` at least (at the
    others a model simply has no reference); the 224-style ones get the model's ``@SIZE``."""
    bad = []
    keys = ("ref_preact_basic", "ref_preact_bottleneck", "ref_basic", "ref_bottleneck", "ref_preact_cifar", "ref_cifar")
    for key in keys:
        template = getattr(args, key)
        try:
            names = [template.format(depth=d) for d in _REF_DEPTHS]
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):  # '{dept}', '{depth[0]}', '{depth.x}'
            names = []
        if not any(is_known(name) for name in names):
            bad.append(f"--{key.replace('_', '-')} {template!r}")
    if bad:
        p.error(
            f"{', '.join(bad)}: not a known model (timm's, ours or timm-resnet<depth>_cifar; a reference may use "
            "{depth}, e.g. 'resnetv2_{depth}' or 'timm-resnetv2_{depth}_cifar')"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter)
    p.add_argument(
        "--models",
        default=None,
        help="comma/space separated names, wildcards or sets (" + ", ".join(MODEL_SETS) + "); "
        f"NAME@SIZE sets the input size (default: {','.join(DEFAULT_MODELS)})",
    )
    p.add_argument(
        "--compile-models",
        default="auto",
        help="which models the compile modes run: 'auto' (ours and the models their compiled ratios and "
        "checks read: references, PreResNet counterparts, baseline), 'all', or names / wildcards",
    )
    p.add_argument(
        "--modes", default=None, help=f"comma separated, from {','.join(MODES)} (default: eager,channels_last,compile)"
    )
    p.add_argument("--phases", default="infer,train", help="comma separated, from infer,train")
    p.add_argument(
        "--baseline", default=None, help="model every row is also compared with ('' for none; default resnet50)"
    )
    p.add_argument(
        "--ref-preact-basic",
        default="resnetv2_{depth}",
        help="timm reference of 224-style pre-activation basic-block models; {depth} is the model's depth",
    )
    p.add_argument(
        "--ref-preact-bottleneck",
        default="resnetv2_{depth}",
        help="timm reference of 224-style pre-activation bottleneck models; {depth} is the model's depth",
    )
    p.add_argument(
        "--ref-preact-cifar",
        default="timm-resnetv2_{depth}_cifar",
        help="reference of 32x32 pre-activation models; {depth} is the model's depth",
    )
    p.add_argument(
        "--ref-basic",
        default="resnet{depth}",
        help="post-activation reference of 224-style basic-block models ('x post'); {depth} is the model's depth",
    )
    p.add_argument(
        "--ref-bottleneck",
        default="resnet{depth}",
        help="post-activation reference of 224-style bottleneck models; {depth} is the model's depth",
    )
    p.add_argument(
        "--ref-cifar",
        default="timm-resnet{depth}_cifar",
        help="post-activation reference of 32x32 models; {depth} is the model's depth (e.g. 'resnet18@32' to "
        "compare with timm's ImageNet resnet18 run at 32x32)",
    )
    p.add_argument(
        "--no-auto-add",
        action="store_true",
        help="do not add the references, PreResNet counterparts and baseline the ratios need",
    )
    p.add_argument("--batch-size", "-b", type=int, default=None, help="batch of 224-style models (default 8)")
    p.add_argument("--batch-size-cifar", type=int, default=None, help="batch of 32x32 models (default 64)")
    p.add_argument("--img-size", type=int, default=None, help="input size of 224-style models (default: theirs)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per phase, the first compiles (default 2)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per phase (default 3, --quick 2)")
    p.add_argument(
        "--min-rep-s",
        type=float,
        default=None,
        help="steps per repetition are chosen so that one lasts at least this long (default 0.5)",
    )
    p.add_argument("--max-iters", type=int, default=50, help="at most this many steps per repetition")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole sweep (alternating the model order) and "
        "pool the repetitions: robust against machine drift",
    )
    p.add_argument(
        "--timer",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: wall-clock time (the real throughput); cpu: CPU time of the process, with --threads 1 a "
        "figure that other load on the machine disturbs much less (it still shares caches and memory "
        "bandwidth)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPU; works but is optional on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the workers (default: all cores)")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. 'max-autotune'")
    p.add_argument(
        "--isolate",
        choices=("subprocess", "none"),
        default=None,
        help="subprocess: every (model, mode) in a fresh interpreter, so the peak RSS is per model "
        "(default); none: all in this process (faster, memory less clean)",
    )
    p.add_argument("--worker-timeout", type=float, default=1800, help="seconds before a worker is abandoned")
    p.add_argument("--eff-tol", type=float, default=0.05, help="check 1: GMAC/s ratio must be >= 1 - this")
    p.add_argument("--mem-tol", type=float, default=1.10, help="check 2: memory ratio must be <= this")
    p.add_argument(
        "--mem-steps",
        type=int,
        default=None,
        help="memory steps per phase; mem MB is their median (peak RSS varies with the allocator) (default 3)",
    )
    p.add_argument(
        "--mem-batch",
        default=None,
        help="comma separated extra batches at which check 2 measures the training memory of the 224-style "
        "ZeroSNets and their PreResNets, in memory-only workers like the one at the batch of the run ('' for none; "
        "default 32)",
    )
    p.add_argument("--out-dir", default=None, help="default: benchmarks/results (--quick: benchmarks/results/quick)")
    p.add_argument("--tag", default="benchmark", help="file name stem of the outputs")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke configuration (3 CIFAR-20s + their timm "
        "reference, batch 8, eager + channels_last, in-process)",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, (full, quick) in PRESETS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.mode_list if m not in MODES]
    if bad:
        p.error(f"--modes: unknown {bad}; choose from {MODES}")
    args.phases = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    try:
        args.mem_batch = [int(b) for b in str(args.mem_batch).split(",") if b.strip()]
    except ValueError:
        p.error(f"--mem-batch: expected comma separated integers, got {args.mem_batch!r}")
    if any(b < 1 for b in args.mem_batch):
        p.error(f"--mem-batch {args.mem_batch}: batches must be at least 1")
    if any(ph not in PHASES for ph in args.phases):
        p.error(f"--phases: choose from {PHASES}")
    if args.timer == "cpu" and (args.device != "cpu" or args.threads != 1):
        p.error("--timer cpu needs --device cpu --threads 1 (CPU time of several threads counts their waiting too)")
    if args.threads is None and args.device == "cpu":
        args.threads = core_count()
    if not args.mode_list or not args.phases:
        p.error("--modes and --phases need at least one entry each")
    check_ranges(
        p,
        args,
        counts=("reps", "rounds", "max_iters", "batch_size", "batch_size_cifar", "mem_steps", "img_size", "threads"),
        at_least_0=("warmup", "min_rep_s"),
        positive=("worker_timeout", "mem_tol"),
        fractions=("eff_tol",),
    )
    check_references(p, args)
    if args.worker is None:  # (a worker's parent checked these)
        try:  # an unknown or empty --models is a usage error, before --out-dir is made
            expand_models(args.models)
        except SystemExit as e:
            p.error(str(e.code))
        if any(m.startswith("compile") for m in args.mode_list):
            check_compile(p, args.compile_backend, args.compile_mode, "--compile-backend / --compile-mode")
        elif args.compile_mode is not None or args.compile_backend != "inductor" or args.compile_models != "auto":
            p.error(  # they would compile nothing
                f"--compile-backend / --compile-mode / --compile-models apply to the compiled modes, and --modes "
                f"{args.modes} has none; add compile (or compile_cl) to --modes, or leave them out"
            )
    # a file name stem: '' wrote hidden files (.md, .csv), a '/' put them in a folder that did not exist
    if not args.tag or args.tag.startswith(".") or any(c in args.tag for c in "/\\"):
        p.error(f"--tag {args.tag!r}: give a file name stem (no '/', not starting with '.'), e.g. benchmark_gpu")
    check_device(p, args.device)
    if args.baseline and not is_known(args.baseline):
        p.error(f"--baseline {args.baseline!r} is not a known model (timm's, ours or timm-resnet<depth>_cifar)")
    return args


def resolve_models(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Expand the patterns, add the models the ratios need, and order them so that pairs run next to each other."""
    specs = expand_models(args.models)
    infos = {s: model_info(s, args) for s in specs}
    if not args.no_auto_add:
        todo = list(specs)
        while todo:
            spec = todo.pop(0)
            info = infos[spec]
            extra = [reference_for(info, args), post_reference_for(info, args), euler_for(spec), args.baseline or None]
            for e in extra:
                if e and e not in infos:
                    if not is_known(e):
                        raise SystemExit(f"reference {e!r} (for {spec}) is not a known model")
                    infos[e] = model_info(e, args)
                    todo.append(e)
    elif args.baseline and args.baseline not in infos:
        infos[args.baseline] = model_info(args.baseline, args)
    style_rank = {"cifar": 0, "imagenet": 1}
    block_rank = {"basic": 0, "bottleneck": 1}
    fam_rank = {"timm": 0, "preresnet": 1, "tauresnet": 2, "lmresnet": 3, "zerosnet": 4}
    ordered = sorted(
        infos.values(),
        key=lambda i: (
            style_rank[i["style"]],
            block_rank.get(i["block"], 2),
            i["depth"] or 0,
            fam_rank[i["family"]],
            i["model"],
        ),
    )
    return {i["model"]: i for i in ordered}


def unreferenced(infos: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Our models of the run that get no reference (a ``{depth}`` template that names no model at their depth, a
    DiffStride net): their target-1 ratio is not measured, which the run says instead of leaving it out."""
    return [spec for spec, info in infos.items() if info["family"] in OURS and reference_for(info, args) is None]


def compile_selection(infos: dict[str, dict[str, Any]], args: argparse.Namespace) -> set[str]:
    """The models the compile modes run (compiling costs ~1-2 min per 50-layer model on 2 CPU cores)."""
    if args.compile_models == "all":
        return set(infos)
    if args.compile_models != "auto":
        pats = [p for p in re.split(r"[,\s]+", args.compile_models) if p]
        if unmatched := [p for p in pats if not fnmatch.filter(infos, p)]:
            raise SystemExit(
                f"--compile-models: {', '.join(map(repr, unmatched))} matches no model of this run "
                f"({', '.join(infos)}); check the spelling, or pass 'auto' or 'all'"
            )
        return {s for s in infos if any(fnmatch.fnmatch(s, p) for p in pats)}
    wanted = set()
    for spec, info in infos.items():
        if info["family"] in OURS:
            wanted |= {spec, reference_for(info, args), post_reference_for(info, args), euler_for(spec)}
            wanted.add(args.baseline or None)
    return {s for s in wanted if s in infos}


def job_cfg(args: argparse.Namespace, spec: str, info: dict[str, Any], mode: str, **overrides) -> dict[str, Any]:
    """What one worker measures: ``spec`` in ``mode`` with the options of the run, unless overridden."""
    cfg = dict(
        model=spec,
        mode=mode,
        phases=args.phases,
        device=args.device,
        amp=args.amp,
        threads=args.threads,
        img_size=info["img_size"],
        batch=info["batch"],
        warmup=args.warmup,
        reps=args.reps,
        min_rep_s=args.min_rep_s,
        max_iters=args.max_iters,
        compile_backend=args.compile_backend,
        compile_mode=args.compile_mode,
        timer=args.timer,
        pin_malloc=args.isolate == "subprocess",
        mem_steps=args.mem_steps,
    )
    cfg.update(overrides)
    return cfg


def run_job(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One measurement, in a fresh interpreter or in this process (``--isolate``)."""
    if args.isolate == "subprocess":
        return run_isolated(cfg, args.worker_timeout)
    try:
        return measure(cfg)
    except Exception as e:
        return dict(model=cfg["model"], mode=cfg["mode"], phases={}, error=f"{type(e).__name__}: {e}"[:400])
    finally:
        trim_heap()


def memory_jobs(infos: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[tuple[str, int]]:
    """(ZeroSNet, batch) pairs that check 2 measures in memory-only workers. With per-process isolation: every
    ZeroSNet whose PreResNet is in the run, at the batch of the run (a worker of its own, as the timed workers'
    RSS carries the heap those steps left); and the 224-style ones at the extra batches of ``--mem-batch``."""
    jobs = []
    for spec, info in infos.items():
        if info["family"] != "zerosnet" or euler_for(spec) not in infos:
            continue
        batches = [info["batch"]] if args.isolate == "subprocess" else []
        if info["style"] == "imagenet":
            batches += [b for b in args.mem_batch if b not in batches]
        jobs += [(spec, b) for b in batches]
    return sorted(jobs, key=lambda job: (job[1] != infos[job[0]]["batch"], job[1]))


def memory_at_batches(infos: dict[str, dict[str, Any]], args: argparse.Namespace, log=print) -> list[dict[str, Any]]:
    """Check 2 in memory-only workers (``memory_jobs``): the training memory of each ZeroSNet and its PreResNet,
    eager, one warm-up step and then the memory steps only (no timing). With per-process isolation the worker pins
    glibc's mmap threshold before it builds the model, so that its peak RSS follows the memory the step uses, not
    the heap layout of earlier steps. At the small timing batch the weights, gradients and momentum dominate the
    step; at a training batch the activations do."""
    out = []
    for spec, batch in memory_jobs(infos, args):
        for model in (spec, euler_for(spec)):
            memory_only = dict(warmup=1, reps=0, min_rep_s=0.0, max_iters=1, compile_mode=None, timer="wall")
            if args.isolate == "subprocess":
                memory_only["pin_malloc"] = "start"
            cfg = job_cfg(args, model, infos[model], "eager", phases=["train"], batch=batch, **memory_only)
            t0 = time.perf_counter()
            res = run_job(cfg, args)
            ph = res.get("phases", {}).get("train") or {}
            if res.get("error") or ph.get("status") != "ok":
                log(f"[memory @ batch {batch}] {model}: {res.get('error') or ph.get('status')}")
                continue
            keep = ("mem_mb", "mem_mb_runs", "tensor_mb", "saved_mb", "mem_method")
            out.append(dict(model=model, pair=spec, batch=batch, **{k: ph.get(k) for k in keep}))
            log(f"[memory @ batch {batch}] {model}: {ph['mem_mb']:.0f} MB ({time.perf_counter() - t0:.0f} s)")
    return out


def run_benchmark(args: argparse.Namespace, log=print) -> dict[str, Any]:
    """Measure every (model, mode), then compute the rows, the checks and write the outputs. Returns them all."""
    check_output(None, "--out-dir", args.out_dir)  # before the sweep, not after it: that would lose the whole run
    machine = machine_info(args)
    infos = resolve_models(args)
    for spec in unreferenced(infos, args):
        log(f"note: {spec} has no timm reference of its block type with these --ref-* options: no target-1 ratio")
    compiled = compile_selection(infos, args)
    jobs = [
        (r, mode, spec)
        for r in range(args.rounds)
        for mode in args.mode_list
        for spec in (list(infos) if r % 2 == 0 else list(reversed(infos)))
        if not mode.startswith("compile") or spec in compiled
    ]
    log(
        f"# {len(infos)} models x {len(args.mode_list)} modes x {args.rounds} round(s) = {len(jobs)} measurements "
        f"on {machine['device_name']} ({machine['threads']} threads)"
    )
    results, compile_broken = [], None
    t_all = time.perf_counter()
    if args.isolate == "none":
        if args.threads:
            torch.set_num_threads(args.threads)
        prime(args.device)
    for k, (_, mode, spec) in enumerate(jobs, 1):
        info = infos[spec]
        cfg = job_cfg(args, spec, info, mode)
        t0 = time.perf_counter()
        if mode.startswith("compile") and compile_broken:
            res = dict(
                model=spec,
                mode=mode,
                phases={ph: dict(status=f"compile skipped: {compile_broken}") for ph in args.phases},
            )
        else:
            res = run_job(cfg, args)
        err = res.get("compile_error")
        if err and re.search(r"C\+\+|Cxx|Cpp|compiler|gcc|g\+\+", err, re.I):
            compile_broken = err  # a broken toolchain fails every model: do not retry it
        results.append(res)
        parts = []
        for ph in args.phases:
            d = res.get("phases", {}).get(ph)
            if d and d.get("status") == "ok":
                ips = info["batch"] / statistics.median(d["step_s"])
                parts.append(f"{ph} {ips:.1f} img/s, {d['mem_mb']:.0f} MB")
            elif d:
                parts.append(f"{ph} {d['status']}")
        if res.get("error"):
            parts.append(f"ERROR {res['error']}")
        log(f"[{k}/{len(jobs)}] {spec} {mode}: {'; '.join(parts)} ({time.perf_counter() - t0:.0f} s)")
    if hasattr(os, "getloadavg"):
        machine["loadavg_end"] = os.getloadavg()

    mem_extra = memory_at_batches(infos, args, log)
    machine["elapsed_s"] = time.perf_counter() - t_all
    rows = make_rows(infos, results, args)
    checks = run_checks(rows, args, mem_extra)
    report = markdown_report(machine, infos, rows, checks, args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = dict(md=out_dir / f"{args.tag}.md", csv=out_dir / f"{args.tag}.csv", json=out_dir / f"{args.tag}.json")
    paths["md"].write_text(report)
    write_csv(paths["csv"], rows)
    cfg_out = {k: v for k, v in vars(args).items() if k != "worker"}
    paths["json"].write_text(
        json.dumps(
            dict(
                machine=machine,
                config=cfg_out,
                models=infos,
                rows=rows,
                checks=checks,
                memory_at_batches=mem_extra,
                raw=results,
            ),
            indent=1,
            default=str,
        )
    )
    if not args.no_chart:
        paths["png"] = out_dir / f"{args.tag}.png"
        write_chart(paths["png"], rows, machine)
    log("")
    log(report)
    log(f"written: {', '.join(str(p) for p in paths.values())} ({machine['elapsed_s']:.0f} s)")
    return dict(machine=machine, infos=infos, rows=rows, checks=checks, paths=paths, report=report)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        worker_main(args.worker)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_benchmark(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
