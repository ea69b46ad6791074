"""Where the time of a multistep network goes: torch.profiler on CPU, ZeroSNet against PreResNet (same skeleton).

Usage::

    python benchmarks/profile_multistep.py                          # zerosnet50 vs preresnet50, training step
    python benchmarks/profile_multistep.py --models zerosnet20_cifar,preresnet20_cifar --batch 64
    python benchmarks/profile_multistep.py --phase infer --trace-dir /tmp/traces   # + chrome traces
    python benchmarks/profile_multistep.py --ablate                # time the proposed changes

Default output: for each model the top ops by self CPU time (with the memory they allocate), then a side-by-side
table of the ops whose time differs most between the first model and the last one, and a summary by category
(convolution, batch norm, activation, elementwise add/mul, optimizer, ...) with each category's share of the step.

``--ablate`` times candidate implementation changes by monkeypatching them at runtime (nothing in
``timm_zerosnet`` is edited): each variant is first checked to give the same outputs and gradients, then the
variants are timed in alternation (A B C A B C ...) so that machine drift hits them equally, and the peak memory
of one step is read for each. The variants:

- ``update``: LM-ResNet's ``x + k * (last - x) + f`` as ``torch.lerp(x, last, k).add_(f)`` (2 kernels instead of 4,
  and no saved ``last - x`` per block for k's gradient); ZeroSNet Tra's trainable combination as one multiply and
  three in-place ``addcmul_`` (4 kernels instead of 7). The package's eager training now runs both forwards through
  its own autograd Functions (``schemes._LerpAddFunction``, ``schemes._ZeroStableTraFunction``), whose coefficient
  gradients are dot products; ``update`` keeps autograd's backward, so it times that backward against theirs.
- ``inplace``: every ``F.relu`` of ``multistep.py`` in place (they all act on a fresh BatchNorm output, as in timm's
  own blocks), and the Euler and fixed ZeroSNet combinations accumulated into the fresh branch output ``f``. The
  package's CPU eager code goes further for those two (``PreActBlock._folded_branch``: the coefficient of f folded
  into the last conv's weight), so ``current`` runs that, and every other variant runs the blocks unfolded.
- ``both``.
- ``strided``: the strided 1x1 projections as plain strided convs, as before the package ran them on the subsampled
  input (a matrix product on CPU, ``multistep.Projection``).
- ``history_adjoint``: ZeroSNet's fixed update in training as one autograd Function that also hands x_n and x_{n-1}
  on to the next block, so that its backward adds its own terms into the gradients the later blocks send back, one
  pass each, instead of autograd's scaled copy per term and separate accumulations (``_AdjointCombine``). Measured
  on a 2-core Xeon, three runs: 0.96-1.00x of ``current``'s zerosnet20_cifar training step at batch 64 (peak RSS
  0.92-1.14x), within the machine's noise, so the package keeps autograd's backward::

      python benchmarks/profile_multistep.py --ablate --models zerosnet20_cifar --batch 64 \
          --variants history_adjoint --reps 21
- ``no_history`` and ``euler_update`` are not implementations but cost bounds (``COST_VARIANTS``; they change the
  network, so nothing checks them for equivalence): the multistep updates without their history terms, and every
  update as x + f. Their time against ``current`` is the most that any faster combination kernel could save::

    python benchmarks/profile_multistep.py --ablate --models zerosnet20_cifar,lmresnet20_cifar --batch 64 \
        --variants no_history,euler_update --reps 21

- ``no_history_projections``, a cost bound too: ZeroSNet's 1x1 projections of x_{n-1} and x_{n-2} at the stage
  transitions give zeros (nothing computed, nothing backpropagated; the combination's passes stay), so its time
  against ``current`` is what those projections cost. They add 1.3% to zerosnet20_cifar's multiply-adds.

``--variants current,strided`` times a subset (``current`` always runs: it is the reference of the ratios).
``--malloc glibc`` reads each variant's memory as the peak RSS of a whole process that trains with glibc's default
settings (heap fragmentation included) instead of one step's growth with the mmap threshold pinned::

    python benchmarks/profile_multistep.py --ablate --models zerosnet50 --batch 8 \
        --variants strided,no_history --malloc glibc --reps 3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark import (  # noqa: E402
    check_output,
    check_ranges,
    create_bench_model,
    is_known,
    peak_rss_mb,
    pin_malloc,
    reset_peak_rss,
    rss_mb,
    saved_activation_mb,
    trim_heap,
)

import timm_zerosnet  # noqa: E402,F401
from timm_zerosnet.models import multistep  # noqa: E402
from timm_zerosnet.schemes import EulerUpdate, LinearMultistepUpdate, ZeroStableUpdate  # noqa: E402

CATEGORIES = [  # (category, regex fully matching the aten op name without its 'aten::' prefix); first match wins
    # bmm: the subsampled 1x1 projections of strided shortcuts and history terms (eager CPU), forward and backward;
    # _slow_conv2d: the 1x1 stride-1 convs PyTorch runs so at small batches on one thread
    ("convolution", r"_?(mkldnn_)?conv.*|thnn_conv.*|_slow_conv2d.*|bmm"),
    ("batch norm", r".*batch_norm.*"),
    ("activation", r"relu_?|threshold_backward|clamp_min_?"),
    ("optimizer", r"_foreach_.*|_fused_sgd.*"),
    ("pool / linear / loss", r".*pool.*|addmm|mm|linear|mean|.*log_softmax.*|nll_loss.*|cross_entropy.*"),
    ("elementwise add/mul", r"(add|mul|sub|rsub|div|lerp|neg|where|addcmul|reciprocal)_?"),
    ("reductions", r"sum|dot"),  # weight gradients of the projections, LM-ResNet's k
    ("copy / alloc", r"copy_|clone|contiguous|empty.*|zero_|fill_|to|_to_copy|resize_|zeros.*|ones.*|as_strided.*"),
    (
        "views / metadata",
        r"view|reshape|_reshape_alias|transpose|permute|expand|squeeze.*|unsqueeze.*|flatten|"
        r"detach.*|alias|slice|select|t_?|_unsafe_view|result_type|is_same_size",
    ),
]


def category(op: str) -> str:
    """The category of a profiler event: aten ops by name; anything else (autograd engine, optimizer step, Python
    wrappers) is framework overhead."""
    if not op.startswith("aten::"):
        return "autograd engine / framework"
    name = op[len("aten::") :]
    for cat, pattern in CATEGORIES:
        if re.fullmatch(pattern, name):
            return cat
    return "other aten"


def build(name: str, args: argparse.Namespace):
    torch.manual_seed(0)
    model = create_bench_model(name)  # any timm model, ours, or benchmark.py's timm-resnet<depth>_cifar
    for block in model.modules():
        if isinstance(block, multistep.PreActBlock):
            _HISTORY_PROJECTIONS.update(p for p in (block.proj_last, block.proj_llast) if p is not None)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    size = int(model.pretrained_cfg["input_size"][-1]) if args.img_size is None else args.img_size
    x = torch.randn(args.batch, 3, size, size).contiguous(memory_format=fmt)
    target = torch.randint(model.num_classes, (args.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            model(x)

    model.train(args.phase == "train")
    return model, x, (train_step if args.phase == "train" else infer_step)


def peak_of(step: Callable[[], None]) -> tuple[float, float]:
    """(seconds, peak RSS growth in MB) of one step."""
    trim_heap()
    before = rss_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0, peak_rss_mb() - before


def profile_model(name: str, args: argparse.Namespace) -> dict:
    model, x, step = build(name, args)
    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    _, mem = peak_of(step)  # (its time includes faulting the trimmed heap back in: not a timing)
    saved = saved_activation_mb(model.train(), x)
    model.train(args.phase == "train")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        for _ in range(args.steps):
            step()
    if args.trace_dir:
        Path(args.trace_dir).mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(Path(args.trace_dir) / f"{name}_{args.phase}.json"))
    events = prof.key_averages()
    print(
        f"\n## {name}: {args.phase} step, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"{seconds * 1e3:.0f} ms, peak RSS growth of one step {mem:.0f} MB, activations saved for backward "
        f"{saved:.0f} MB\n"
    )
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.row_limit, max_name_column_width=40))
    ops = {}
    for e in events:
        ops[e.key] = dict(
            calls=e.count / args.steps,
            self_ms=e.self_cpu_time_total / 1e3 / args.steps,
            self_mb=getattr(e, "self_cpu_memory_usage", 0) / 2**20 / args.steps,
        )
    n_params = sum(p.numel() for p in model.parameters())
    return dict(name=name, ops=ops, step_ms=seconds * 1e3, mem_mb=mem, saved_mb=saved, params=n_params)


def compare(a: dict, b: dict, limit: int) -> None:
    """Ops whose self time differs most, and the step split by category, for two profiled models."""
    keys = set(a["ops"]) | set(b["ops"])
    zero = dict(calls=0, self_ms=0.0, self_mb=0.0)
    diff = sorted(keys, key=lambda k: -abs(a["ops"].get(k, zero)["self_ms"] - b["ops"].get(k, zero)["self_ms"]))
    print(f"\n## {a['name']} vs {b['name']}: ops with the largest difference in self CPU time (per step)\n")
    print(f"| op | calls {a['name']} | ms | MB alloc | calls {b['name']} | ms | MB alloc | delta ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in diff if limit < 0 else diff[:limit]:  # -1: every op, as torch's own table
        oa, ob = a["ops"].get(k, zero), b["ops"].get(k, zero)
        print(
            f"| {k} | {oa['calls']:.0f} | {oa['self_ms']:.1f} | {oa['self_mb']:.0f} | {ob['calls']:.0f} | "
            f"{ob['self_ms']:.1f} | {ob['self_mb']:.0f} | {oa['self_ms'] - ob['self_ms']:+.1f} |"
        )
    print("\n## time by category (self CPU ms per step; share of the profiled total)\n")
    cats = defaultdict(lambda: [0.0, 0.0, 0, 0])
    for k in keys:
        c = category(k)
        cats[c][0] += a["ops"].get(k, zero)["self_ms"]
        cats[c][1] += b["ops"].get(k, zero)["self_ms"]
        cats[c][2] += a["ops"].get(k, zero)["calls"]
        cats[c][3] += b["ops"].get(k, zero)["calls"]
    ta, tb = sum(v[0] for v in cats.values()), sum(v[1] for v in cats.values())
    print(f"| category | {a['name']} ms | % | calls | {b['name']} ms | % | calls | delta ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c, (ma, mb, ca, cb) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
        print(
            f"| {c} | {ma:.1f} | {100 * ma / ta:.1f} | {ca:.0f} | {mb:.1f} | {100 * mb / tb:.1f} | {cb:.0f} | "
            f"{ma - mb:+.1f} |"
        )
    print(f"| total | {ta:.1f} | 100 | | {tb:.1f} | 100 | | {ta - tb:+.1f} |")
    t_ratio, m_ratio = a["step_ms"] / b["step_ms"], a["mem_mb"] / max(b["mem_mb"], 1e-9)
    print(
        f"\nwall time of one step: {a['step_ms']:.0f} ms vs {b['step_ms']:.0f} ms ({t_ratio:.3f}x); "
        f"peak RSS growth: {a['mem_mb']:.0f} MB vs {b['mem_mb']:.0f} MB ({m_ratio:.3f}x); saved activations: "
        f"{a['saved_mb']:.0f} MB vs {b['saved_mb']:.0f} MB ({a['saved_mb'] / max(b['saved_mb'], 1e-9):.3f}x); "
        f"params {a['params'] / 1e6:.2f} M vs {b['params'] / 1e6:.2f} M"
    )


# ----- ablation: candidate implementation changes, monkeypatched (the package files stay as they are) -----

_ACTIVE: set[str] = set()  # the changes switched on by ``variant``


def _lm_forward(self, f, x, last, llast):
    """update: LM-ResNet's x + k (last - x) + h f as lerp(x, last, k) + h f: 2 kernels instead of 4, and k's
    gradient reads the saved x and last (alive anyway) instead of a saved (last - x) per block.
    no_history: (1 - k) x + h f. euler_update: x + f (both change the network: see COST_VARIANTS)."""
    if "euler_update" in _ACTIVE:
        return f.add_(x)
    if "no_history" in _ACTIVE:
        return torch.mul(x, 1.0 - self.k).add_(f, alpha=self.step_size)
    if "update" not in _ACTIVE:
        return _ORIG["lm"](self, f, x, last, llast)
    out = torch.lerp(x, last, self.k)
    return out.add_(f, alpha=self.step_size) if self.step_size != 1.0 else out.add_(f)


def _zs_forward(self, f, x, last, llast):
    """update: ZeroSNet Tra's trainable combination as one multiply and three in-place addcmul_ (4 kernels and 1
    new tensor instead of 7 and 7). inplace: the fixed (Opt) combination accumulated into the fresh branch output f
    (no new tensor). no_history: h b0 f + a0 x. euler_update: x + f (both change the network: see COST_VARIANTS)."""
    if "euler_update" in _ACTIVE:
        return f.add_(x)
    if "no_history" in _ACTIVE:
        if self.lam is None:
            return f.mul_(self.hb0).add_(x, alpha=self.a0)
        hb0, a0, _, _ = self.trainable_coefficients()
        return torch.mul(x, a0).add_(f * hb0)
    if self.lam is not None:
        if "update" not in _ACTIVE:
            return _ORIG["zs"](self, f, x, last, llast)
        hb0, a0, inv, a2 = self.trainable_coefficients()
        return torch.mul(x, a0).addcmul_(last, inv, value=-1.0).addcmul_(llast, a2).addcmul_(f, hb0)
    if "inplace" not in _ACTIVE:
        return _ORIG["zs"](self, f, x, last, llast)
    out = f.mul_(self.hb0) if self.hb0 != 1.0 else f
    out.add_(x, alpha=self.a0)
    if self.a1 != 0.0:
        out.add_(last, alpha=self.a1)
    if self.a2 != 0.0:
        out.add_(llast, alpha=self.a2)
    return out


def _euler_forward(self, f, x, last, llast):
    """inplace: x + h f accumulated into the fresh branch output f (its conv does not save its output)."""
    if "inplace" not in _ACTIVE:
        return _ORIG["euler"](self, f, x, last, llast)
    if self.step_size != 1.0:
        f = f.mul_(self.step_size)
    return f.add_(x)


def _proj_forward(self, x):
    """strided: a strided projection as the plain strided conv, whatever the layout and grad mode.
    no_history_projections: a projection of x_{n-1} or x_{n-2} (ZeroSNet's transitions) gives zeros of its output's
    shape, outside the graph (changes the network: see COST_VARIANTS)."""
    if "no_history_projections" in _ACTIVE and self in _HISTORY_PROJECTIONS:
        (sh, sw), (b, _, h, w) = self.conv.stride, x.shape
        return x.new_zeros(b, self.conv.out_channels, -(-h // sh), -(-w // sw))
    if "strided" not in _ACTIVE:
        return _ORIG["proj"](self, x)
    if self.norm is not None:
        x = F.relu(self.norm(x), inplace=True)
    return self.conv(x)


class _InplaceReluF:
    """torch.nn.functional with an in-place relu: every F.relu in multistep.py acts on a fresh BatchNorm output,
    which nothing else reads (BN's backward saves its input, not its output), as in timm's own blocks."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def relu(x, inplace=False):
        return F.relu(x, inplace=True)


def _no_folding(self, pre):
    return None


class _AdjointCombine(torch.autograd.Function):
    """history_adjoint: ZeroSNet's fixed update h b0 f + a0 x + a1 last + a2 llast that also returns x and last as
    the next block's history (aliases, no copy), so that its backward receives the gradients the later blocks send
    to x and last and adds its own terms into them in one pass each (torch.add(g_alias, g, alpha=a)). Autograd's
    plain backward writes one scaled copy of g per term and accumulates them into each history tensor's gradient
    separately: 4 + 3 full-size passes per block instead of 2 + 2 (+ 1 for h b0)."""

    @staticmethod
    def forward(ctx, f, x, last, llast, coefs):
        hb0, a0, a1, a2 = coefs
        ctx.coefs = coefs
        out = torch.mul(f, hb0).add_(x, alpha=a0).add_(last, alpha=a1).add_(llast, alpha=a2)
        return out, x.view_as(x), last.view_as(last)

    @staticmethod
    def backward(ctx, g, g_x, g_last):
        hb0, a0, a1, a2 = ctx.coefs
        d_f = g if hb0 == 1.0 else g * hb0
        d_x = g * a0 if g_x is None else torch.add(g_x, g, alpha=a0)
        d_last = g * a1 if g_last is None else torch.add(g_last, g, alpha=a1)
        return d_f, d_x, d_last, g * a2, None


def _block_forward(self, x, last, llast):
    """history_adjoint: a fixed ZeroSNet block that keeps its history (every multistep block of the package) runs
    its update as ``_AdjointCombine`` in eager training; every other block runs as the package's."""
    update = self.update
    if (
        "history_adjoint" not in _ACTIVE
        or not isinstance(update, ZeroStableUpdate)
        or update.lam is not None
        or self.history != 1
        or not isinstance(self.drop_path, torch.nn.Identity)
        or not torch.is_grad_enabled()
    ):
        return _ORIG["block"](self, x, last, llast)
    pre = F.relu(self.bn1(x), inplace=True)
    f = self.residual(pre)
    x_slot, last, llast = self.history_terms(x, pre, last, llast)
    return _AdjointCombine.apply(f, x_slot, last, llast, (update.hb0, update.a0, update.a1, update.a2))


_ORIG = dict(
    zs=ZeroStableUpdate.forward,
    lm=LinearMultistepUpdate.forward,
    euler=EulerUpdate.forward,
    proj=multistep.Projection.forward,
    block=multistep.PreActBlock.forward,
)
VARIANTS = ("current", "update", "inplace", "both", "strided", "history_adjoint")
# Not implementations but bounds: each drops part of the scheme, so the network computes something else (and
# check_equivalent skips them). no_history: the multistep updates without their x_{n-1}, x_{n-2} terms (the history
# projections still run in the forward, their outputs unused). euler_update: every multistep update is x + f. Their
# time against 'current' is what those terms cost: no faster kernel for the combination can save more.
# no_history_projections: the 1x1 projections of x_{n-1} and x_{n-2} at ZeroSNet's stage transitions give zeros
# instead (nothing computed, nothing to backpropagate; the combination's passes stay): what those projections cost.
COST_VARIANTS = ("no_history", "euler_update", "no_history_projections")
_HISTORY_PROJECTIONS: weakref.WeakSet = weakref.WeakSet()  # filled by build()
_UPDATE_CHANGES = {"update", "inplace", "no_history", "euler_update"}  # the changes made in the update modules


@contextmanager
def variant(name: str):
    """Switch on the changes of one variant: 'update' (LM-ResNet lerp, ZeroSNet Tra addcmul_), 'inplace' (in-place
    ReLUs, Euler / fixed ZeroSNet combination into f in place), 'both', 'strided' (strided projection convs)."""
    if name not in VARIANTS + COST_VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {VARIANTS + COST_VARIANTS}")
    active = {"both": {"update", "inplace"}, "current": set()}.get(name, {name})
    patched = [(multistep, "F"), (multistep.Projection, "forward"), (multistep.PreActBlock, "_folded_branch")]
    patched += [(cls, "forward") for cls in (ZeroStableUpdate, LinearMultistepUpdate, EulerUpdate)]
    patched.append((multistep.PreActBlock, "forward"))
    saved_active, saved = set(_ACTIVE), [getattr(obj, attr) for obj, attr in patched]
    try:
        _ACTIVE.clear()
        _ACTIVE.update(active)
        ZeroStableUpdate.forward, LinearMultistepUpdate.forward = _zs_forward, _lm_forward
        EulerUpdate.forward, multistep.Projection.forward = _euler_forward, _proj_forward
        multistep.PreActBlock.forward = _block_forward
        # the blocks must call the patched updates: no folding (PreActBlock._folded_branch)
        if active & _UPDATE_CHANGES:
            multistep.PreActBlock._folded_branch = _no_folding
        if "inplace" in active:
            multistep.F = _InplaceReluF()
        yield
    finally:
        _ACTIVE.clear()
        _ACTIVE.update(saved_active)
        for (obj, attr), value in zip(patched, saved):
            setattr(obj, attr, value)


def check_equivalent(name: str, variants: tuple[str, ...] | list[str] = VARIANTS) -> None:
    """Every variant gives the same output and parameter gradients as the current code (in float64, so that the
    comparison is not blurred by float32 summation order)."""
    ref = None
    for v in variants:
        with variant(v):
            torch.manual_seed(0)
            model = timm.create_model(name).double().train()
            for pname, p in model.named_parameters():  # a non-trivial k (lambda keeps its zero-stable init)
                if pname.endswith(".k"):
                    p.data.fill_(-0.07)
            size = 32 if name.endswith("_cifar") else 64
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            out = model(x)
            out.square().mean().backward()
            grads = [p.grad.clone() for p in model.parameters()]
        if ref is None:
            ref = (out.detach(), grads)
            continue
        err = (out.detach() - ref[0]).abs().max().item() / (ref[0].abs().max().item() + 1e-30)
        gerr = max((g - r).abs().max().item() / (r.abs().max().item() + 1e-30) for g, r in zip(grads, ref[1]))
        status = "same" if err < 1e-9 and gerr < 1e-7 else "DIFFERENT"
        print(f"  {name} {v}: max rel out diff {err:.1e}, max rel grad diff {gerr:.1e} (float64) -> {status}")


def _variant_memory(name: str, v: str, args: argparse.Namespace) -> dict:
    """Peak RSS growth of one step and saved activations of one variant, in a fresh interpreter (no leftovers of
    the other variants in the heap)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--mem-worker",
        json.dumps(
            dict(
                name=name,
                variant=v,
                batch=args.batch,
                img_size=args.img_size,
                phase=args.phase,
                warmup=args.warmup,
                channels_last=args.channels_last,
                threads=args.threads,
                malloc=args.malloc,
                mem_steps=args.mem_steps,
            )
        ),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"memory worker for {name} {v} failed: {proc.stderr.strip().splitlines()[-1:]}")


def _mem_worker(payload: str) -> None:
    cfg = json.loads(payload)
    args = argparse.Namespace(**{k: cfg[k] for k in ("batch", "img_size", "phase", "channels_last")})
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    with variant(cfg["variant"]):
        if cfg.get("malloc") == "glibc":  # the whole process with glibc's defaults: heap fragmentation included
            trim_heap()
            base = rss_mb()
            reset_peak_rss()
            model, x, step = build(cfg["name"], args)
            for _ in range(cfg["warmup"] + cfg["mem_steps"]):
                step()
            peak = peak_rss_mb() - base
        else:
            model, x, step = build(cfg["name"], args)
            for _ in range(cfg["warmup"]):
                step()
            pin_malloc()  # RSS then follows the live tensors (nothing is timed in this process)
            _, peak = peak_of(step)
        saved = saved_activation_mb(model.train(), x)
    print(json.dumps(dict(peak_mb=peak, saved_mb=saved)), flush=True)


def ablate(name: str, args: argparse.Namespace) -> None:
    check_equivalent(name, [v for v in args.variant_list if v not in COST_VARIANTS])
    timer = time.process_time if args.timer == "cpu" else time.perf_counter
    steps = {}
    for v in args.variant_list:
        with variant(v):
            model, _, step = build(name, args)
        steps[v] = (model, step)
    times = defaultdict(list)
    for v, (_, step) in steps.items():  # warm up every variant (patched methods are read at call time)
        with variant(v):
            for _ in range(args.warmup):
                step()
    for _ in range(args.reps):
        for v, (_, step) in steps.items():
            with variant(v):
                t0 = timer()
                step()
                times[v].append(timer() - t0)
    del steps
    mems = {v: _variant_memory(name, v, args) for v in args.variant_list}
    base_t = statistics.median(times["current"])
    base_m, base_s = mems["current"]["peak_mb"], mems["current"]["saved_mb"]
    print(
        f"\n## {name}: {args.phase} step, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"{args.reps} alternated repetitions, {'process CPU' if args.timer == 'cpu' else 'wall-clock'} time; "
        f"memory of each variant in a fresh process\n"
    )
    rss = (
        f"process peak RSS MB (glibc defaults, {args.warmup + args.mem_steps} steps)"
        if args.malloc == "glibc"
        else "peak RSS growth MB"
    )
    print(
        f"| variant | median ms | min ms | max ms | x current (time) | {rss} | x current | "
        "saved activations MB (exact) | x current |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in args.variant_list:
        t, m = times[v], mems[v]
        label = f"{v} (changes the network: a cost bound)" if v in COST_VARIANTS else v
        print(
            f"| {label} | {statistics.median(t) * 1e3:.1f} | {min(t) * 1e3:.1f} | {max(t) * 1e3:.1f} | "
            f"{statistics.median(t) / base_t:.3f} | {m['peak_mb']:.0f} | {m['peak_mb'] / max(base_m, 1e-9):.3f} | "
            f"{m['saved_mb']:.1f} | {m['saved_mb'] / max(base_s, 1e-9):.3f} |"
        )


# the options of one mode and their defaults; the parser's default is None, so that an option given is told apart
PROFILE_ONLY = dict(steps=2, row_limit=20, trace_dir=None)
ABLATE_ONLY = dict(variants=",".join(VARIANTS), reps=7, timer="wall", malloc="pinned", mem_steps=6)


def _given(args: argparse.Namespace, keys) -> list[str]:
    return [f"--{k.replace('_', '-')}" for k in keys if getattr(args, k) is not None]


def check_mode_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse the options given explicitly (not None) that the chosen mode would ignore: the ablation's without
    ``--ablate``, the profile's with it, ``--mem-steps`` without ``--malloc glibc``. They were accepted and had no
    effect, so a run that looked like it timed the variants (or wrote traces) did not."""
    if not args.ablate and (given := _given(args, ABLATE_ONLY)):
        p.error(
            f"{', '.join(given)}: only --ablate reads them (they set up its timing); add --ablate or leave them out"
        )
    if args.ablate and (given := _given(args, PROFILE_ONLY)):
        p.error(f"{', '.join(given)}: only the profile reads them, and --ablate times the variants instead; drop them")
    if args.mem_steps is not None and args.malloc != "glibc":
        p.error("--mem-steps: only --malloc glibc takes steps after the warm-up; add --malloc glibc or leave it out")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked before anything is built or timed (``args.names``: the models, ``args.variant_list``:
    the ablation's variants; a memory worker's own settings come in its payload, ``args.mem_worker``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        default=None,
        help="comma separated; the first and the last are compared (default: zerosnet50,preresnet50)",
    )
    p.add_argument("--phase", choices=("train", "infer"), default="train")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--img-size", type=int, default=None, help="default: the model's own (224 or 32)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="profiled steps, averaged (default 2; not with --ablate)")
    p.add_argument(
        "--row-limit", type=int, default=None, help="rows of each table (-1: all; default 20; not with --ablate)"
    )
    p.add_argument("--trace-dir", default=None, help="write chrome traces here (not with --ablate)")
    p.add_argument(
        "--ablate",
        action="store_true",
        help="time the candidate changes instead of profiling "
        "(default models then: lmresnet50,zerosnet50_tra,zerosnet50)",
    )
    p.add_argument("--reps", type=int, default=None, help="--ablate: alternated repetitions per variant (default 7)")
    p.add_argument(
        "--timer",
        choices=("wall", "cpu"),
        default=None,
        help="--ablate: wall-clock or process CPU time (with --threads 1: robust on a busy machine; default wall)",
    )
    p.add_argument(
        "--variants",
        default=None,
        help="--ablate: comma separated, from " + ", ".join(VARIANTS + COST_VARIANTS) + " (the last three change the "
        "network: they bound what the scheme's combination and its history projections cost; default: "
        + ",".join(VARIANTS)
        + ")",
    )
    p.add_argument(
        "--malloc",
        choices=("pinned", "glibc"),
        default=None,
        help="--ablate memory, in a fresh process per variant: 'pinned': the peak RSS growth of one step after glibc's "
        "mmap threshold is pinned (it follows the live tensors); 'glibc': the process's peak RSS over its baseline "
        "after the warm-up and --mem-steps steps with glibc's defaults (heap fragmentation included) (default pinned)",
    )
    p.add_argument(
        "--mem-steps", type=int, default=None, help="--malloc glibc: training steps after the warm-up (default 6)"
    )
    p.add_argument("--mem-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.mem_worker:  # (a memory worker gets its settings in the payload)
        check_mode_options(p, args)
    for key, value in (PROFILE_ONLY | ABLATE_ONLY).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    if bad := [v for v in chosen if v not in VARIANTS + COST_VARIANTS]:
        p.error(f"--variants: unknown {bad}; choose from {VARIANTS + COST_VARIANTS}")
    args.variant_list = ["current"] + [v for v in chosen if v != "current"]
    counts = ("reps", "steps", "mem_steps", "batch", "img_size", "threads")
    check_ranges(p, args, counts=counts, at_least_0=("warmup",))
    if args.row_limit == 0 or args.row_limit < -1:
        p.error(f"--row-limit {args.row_limit}: give a number of rows (at least 1), or -1 for all of them")
    if args.mem_worker:
        return args
    if args.models is None:
        args.models = "lmresnet50,zerosnet50_tra,zerosnet50" if args.ablate else "zerosnet50,preresnet50"
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    # before anything is built: an unknown name was timm's RuntimeError traceback (after the models before it had
    # been profiled), an empty list a run that printed nothing
    if not names:
        p.error(f"--models {args.models!r} names no model; give comma separated names, e.g. zerosnet50,preresnet50")
    if sized := [n for n in names if "@" in n]:
        p.error(f"--models: {', '.join(sized)}: this script takes no NAME@SIZE; pass --img-size instead")
    if unknown := [n for n in names if not is_known(n)]:
        p.error(
            f"--models: unknown {', '.join(map(repr, unknown))} (timm's models, ours or timm-resnet<depth>_cifar); "
            "check the spelling"
        )
    if args.trace_dir:
        check_output(p, "--trace-dir", args.trace_dir)
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mem_worker:
        _mem_worker(args.mem_worker)
        return 0
    names = args.names
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ablate:
        for name in names:
            ablate(name, args)
        return 0
    profiles = [profile_model(n, args) for n in names]
    if len(profiles) >= 2:
        compare(profiles[0], profiles[-1], args.row_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
