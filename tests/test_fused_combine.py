"""layers/fused_combine.py, the multistep combination as one Triton kernel (eager CUDA).

Without a GPU, the kernels run here through Triton's interpreter (TRITON_INTERPRET=1, in a subprocess so that no
other test sees interpreted kernels), on CPU tensors: against a float64 formula, and inside whole models against
the plain ops. The kernels are also compiled for an H100 / H200 (sm_90) with Triton's own compiler, which accepts
less than the interpreter. On a GPU, benchmarks/device_check.py compares the two paths again (its ``fused`` checks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import timm_zerosnet  # noqa: F401
from timm_zerosnet.layers import fused_combine

ROOT = Path(__file__).resolve().parents[1]

# runs in a subprocess with TRITON_INTERPRET=1; prints one JSON object of measurements
_INTERPRETED = r"""
import json, torch, timm, timm_zerosnet
from torch.autograd.graph import saved_tensors_hooks
from timm_zerosnet.layers import fused_combine as fc
from timm_zerosnet.schemes import multistep_updates

res = {}
gen = torch.Generator().manual_seed(0)

def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))

def tensors(n, dtype, cl, shape=(2, 3, 5, 7)):
    ts = [torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(n)]
    if cl:
        ts = [t.contiguous(memory_format=torch.channels_last) for t in ts]
    return [t.requires_grad_() for t in ts]

CASES = {
    "const4": (((1.7, 0.0), (1 / 3, 0.0), (5 / 9, 0.0), (1 / 9, 0.0)), None),
    "lm3": (((1.0, 0.0), (1.0, -1.0), (0.0, 1.0)), -0.07),
    "tra4": (((1.5, -0.5), (0.75, 0.75), (0.0, -1.0), (0.25, 0.25)), -0.55),
}
for case, (spec, cval) in CASES.items():
    for dtype in ("float32", "bfloat16", "float16"):
        for cl in (False, True):
            ts = tensors(len(spec), getattr(torch, dtype), cl)
            c = torch.tensor(cval, dtype=torch.float64).float().requires_grad_() if cval is not None else None
            packed = []
            with saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
                out = fc.combine(ts, spec, c, force=True)
            w = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
            if cl:
                w = w.contiguous(memory_format=torch.channels_last)
            inputs = ts + ([c] if c is not None else [])
            got = torch.autograd.grad(out, inputs, w)
            # the float64 formula on the same (rounded) inputs
            t64 = [t.detach().double().requires_grad_() for t in ts]
            c64 = c.detach().double().requires_grad_() if c is not None else None
            ref = sum((k + s * c64 if s else k) * t for (k, s), t in zip(spec, t64))
            want = torch.autograd.grad(ref, t64 + ([c64] if c64 is not None else []), w.double())
            key = f"{case}/{dtype}/{'cl' if cl else 'nchw'}"
            res[key] = dict(
                out=rel(out, ref), grads=[rel(a, b) for a, b in zip(got, want)],
                layout=out.stride() == ts[0].stride(), dtype=str(out.dtype), saved=len(packed),
            )

# a gradient in another layout than the output (the expanded ones of a sum): the plain backward
ts = tensors(3, torch.float32, True)
c = torch.tensor(-0.07, requires_grad=True)
spec = CASES["lm3"][0]
got = torch.autograd.grad(fc.combine(ts, spec, c, force=True).sum(), ts + [c])
t64 = [t.detach().double().requires_grad_() for t in ts]
c64 = c.detach().double().requires_grad_()
want = torch.autograd.grad(sum((k + s * c64) * t for (k, s), t in zip(spec, t64)).sum(), t64 + [c64])
res["expanded_grad"] = [rel(a, b) for a, b in zip(got, want)]

# a double backward (a gradient penalty, say): the first backward records plain ops
ts = tensors(3, torch.float32, False)
v = [torch.randn(t.shape, generator=gen) for t in ts] + [torch.randn((), generator=gen)]
def second(ts, c, combine):
    out = combine(ts, c)
    first = torch.autograd.grad(out, ts + [c], torch.ones_like(out), create_graph=True)
    penalty = sum((f * w).sum() for f, w in zip(first, v))
    return torch.autograd.grad(penalty, ts + [c], allow_unused=True, materialize_grads=True)
got = second(ts, c, lambda ts, c: fc.combine(ts, spec, c, force=True))
want = second(
    [t.detach().double().requires_grad_() for t in ts], c.detach().double().requires_grad_(),
    lambda ts, c: sum((k + s * c) * t for (k, s), t in zip(spec, ts)),
)
res["double_backward"] = [rel(a, b) if b.abs().sum() else float(a.abs().sum()) for a, b in zip(got, want)]

# no elements: an empty output, zero gradients
ts = tensors(3, torch.float32, False, shape=(0, 3, 4, 4))
out = fc.combine(ts, spec, c, force=True)
g = torch.autograd.grad(out, ts + [c], torch.ones_like(out))
res["empty"] = dict(shape=list(out.shape), c_grad=float(g[-1]))

# whole models, fused (usable forced on) against plain ops, float32, NCHW and channels_last
launches = [0]
launch = fc._launch_forward
def counting(*a, **k):
    launches[0] += 1
    return launch(*a, **k)
fc._launch_forward = counting
real_usable = fc.usable

def run(name, fused, cl, dtype=torch.float32):
    torch.manual_seed(0)
    m = timm.create_model(name, num_classes=10).eval().to(dtype)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dtype)
    if cl:
        m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    fc.usable = (lambda ts: True) if fused else real_usable
    try:
        out = m(x)
        out.square().sum().backward()
    finally:
        fc.usable = real_usable
    grads = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
    return out.detach(), grads, len(multistep_updates(m))

for name in ("zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar"):
    for cl in (False, True):
        launches[0] = 0
        out1, g1, updates = run(name, True, cl)
        n = launches[0]
        out0, g0, _ = run(name, False, cl)
        _, g64, _ = run(name, False, cl, torch.float64)
        coef = [k for k in g0 if k.endswith((".lam", ".k"))]
        # float32 gradients through 20 blocks differ from the float64 ones by summation order alone (about 1e-5,
        # more or less with the machine's conv kernels): the fused ones may not be further off than twice the plain
        # ones' error (per parameter, 1e-6 beyond it)
        excess = {k: rel(g1[k], g64[k]) - 2 * rel(g0[k], g64[k]) for k in g0}
        res[f"model/{name}/{'cl' if cl else 'nchw'}"] = dict(
            launches=n, updates=updates, logits=rel(out1, out0), grads=max(rel(g1[k], g0[k]) for k in g0),
            grads_excess=max(excess[k] for k in g0 if k not in coef),
            coef_excess=max([excess[k] for k in coef] or [0.0]), n_coef=len(coef), same_params=set(g1) == set(g0),
        )
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def interpreted() -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETED], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# float32 rounds once per result; bf16 / fp16 outputs and gradients are the float64 value rounded to 8 / 11 bits
_TOL = {"float32": 1e-6, "bfloat16": 8e-3, "float16": 1e-3}


@pytest.mark.parametrize("case", ["const4", "lm3", "tra4"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_combine_matches_the_float64_formula(interpreted, case, dtype, layout):
    r = interpreted[f"{case}/{dtype}/{layout}"]
    assert r["out"] <= _TOL[dtype]
    # the inputs' gradients round to the dtype; c's is summed in float32 from the rounded inputs
    assert max(r["grads"]) <= _TOL[dtype], r["grads"]
    assert r["layout"], "the output must keep the inputs' memory layout"
    assert r["dtype"] == f"torch.{dtype}"


@pytest.mark.parametrize("case, saved", [("const4", 0), ("lm3", 3), ("tra4", 5)])
def test_combine_saves_only_what_a_trainable_coefficient_needs(interpreted, case, saved):
    # constant coefficients keep nothing alive for backward (target 2 of the speed issue); a trainable c keeps itself
    # and the tensors whose coefficient depends on it
    assert interpreted[f"{case}/float32/nchw"]["saved"] == saved


def test_combine_backward_takes_a_gradient_of_another_layout(interpreted):
    assert max(interpreted["expanded_grad"]) <= 1e-6


def test_combine_double_backward(interpreted):
    assert max(interpreted["double_backward"]) <= 1e-6


def test_combine_of_no_elements(interpreted):
    assert interpreted["empty"] == {"shape": [0, 3, 4, 4], "c_grad": 0.0}


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar"])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_models_compute_the_same_with_the_kernel(interpreted, name, layout):
    r = interpreted[f"model/{name}/{layout}"]
    # one launch per multistep update (the start-up and transition blocks are Euler steps, plain f + x)
    assert r["launches"] == r["updates"] > 0
    assert r["logits"] <= 1e-6 and r["grads"] <= 1e-4 and r["same_params"]
    assert r["grads_excess"] <= 1e-6, r  # as close to the float64 gradients as the plain ops
    if name != "zerosnet20_cifar":
        # lambda / k learn the same. A coefficient's gradient is one float32 sum over every element of its block's
        # states (2 x 16..64 x 32x32..8x8 = 8k-33k products): the kernel's blocked order and the plain ops' each err
        # by about sqrt(n) x 2^-24 = 1e-5 relative, by machine (an AMD EPYC: 6.0e-6 against the plain ops' 2.1e-6)
        assert r["n_coef"] > 0 and r["coef_excess"] <= 1e-5, r


def test_kernels_compile_for_sm90():
    """Triton's compiler (TTIR to PTX to cubin for an H100 / H200) accepts both kernels in the specialisations the
    models use; the interpreter above does not type-check."""
    import triton  # installed with torch's CUDA wheels, which the project's environment uses
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from timm_zerosnet.layers import _combine_kernels as kern

    def compile_(fn, pointers, consts):
        sig = {a: ("*bf16" if a in pointers else "*fp32" if a.endswith("_ptr") else "fp32") for a in fn.arg_names}
        sig["n"] = "i64"
        sig.update({a: "constexpr" for a in consts})
        src = ASTSource(fn, sig, consts)
        return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})

    flags = dict(VAR0=True, VAR1=True, VAR2=True, VAR3=True, BLOCK=2048)
    fwd = compile_(kern.combine_forward, {"out_ptr", "t0", "t1", "t2", "t3"}, dict(NT=4, **flags))
    bwd_pointers = {"g_ptr", "d0", "d1", "d2", "d3", "t0", "t1", "t2", "t3"}
    sums = {f"{k}{i}": True for k in "WS" for i in range(4)}
    bwd = compile_(kern.combine_backward, bwd_pointers, dict(**flags, **sums))
    assert ".entry combine_forward" in fwd.asm["ptx"] and ".entry combine_backward" in bwd.asm["ptx"]
    assert fwd.asm["cubin"] and bwd.asm["cubin"]


def test_usable_only_for_cuda_tensors_of_one_layout():
    t = torch.zeros(2, 3, 4, 4)
    assert not fused_combine.usable((t, t))  # CPU: the plain ops


def test_cpu_models_never_reach_the_kernel(monkeypatch):
    import timm

    def refuse(*args, **kwargs):
        raise AssertionError("combine called on CPU tensors")

    monkeypatch.setattr(fused_combine, "combine", refuse)
    for name in ("zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar"):
        m = timm.create_model(name, num_classes=10)
        m(torch.randn(2, 3, 32, 32)).sum().backward()


@pytest.mark.parametrize(
    "tensors, coefs, c, message",
    [
        (2, [(1.0, 0.0)], None, "one \\(k, s\\) per tensor"),
        (5, [(1.0, 0.0)] * 5, None, "1 to 4 tensors"),
        (2, [(1.0, 0.0), (0.0, 1.0)], None, "needs the scalar c"),
        (2, [(1.0, 0.0), (0.0, 1.0)], torch.tensor([0.5]), "c must be a 0-dim tensor"),
        (2, [(1.0, 0.0), (0.0, 1.0)], torch.tensor(0.5), "check usable\\(\\) first"),
    ],
)
def test_combine_refuses_bad_arguments(tensors, coefs, c, message):
    ts = [torch.zeros(2, 3, 4, 4) for _ in range(tensors)]
    with pytest.raises(ValueError, match=message):
        fused_combine.combine(ts, coefs, c)


@pytest.fixture
def fake_cuda(monkeypatch) -> torch.Tensor:
    """A tensor that usable() takes for a dense CUDA tensor (meta storage, is_cuda patched), so that only the switch
    and Triton's presence decide."""
    monkeypatch.setattr(fused_combine, "_dense", lambda t: True)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    return torch.zeros(2, 3, 4, 4, device="meta")


def test_the_switch_turns_the_kernel_off(monkeypatch, fake_cuda):
    # usable() reads the switch at each call: TIMM_ZEROSNET_TRITON=0 wins over everything else
    fake = fake_cuda
    monkeypatch.setenv(fused_combine.ENV_SWITCH, "0")
    assert not fused_combine.usable((fake, fake))
    monkeypatch.setenv(fused_combine.ENV_SWITCH, "1")
    assert fused_combine.usable((fake, fake)) == (fused_combine._kernels() is not None)


@pytest.mark.parametrize("before", [None, "1"])
def test_disabled_turns_the_kernel_off_inside_the_block_only(monkeypatch, fake_cuda, before):
    fake = fake_cuda
    if before is None:
        monkeypatch.delenv(fused_combine.ENV_SWITCH, raising=False)
    else:
        monkeypatch.setenv(fused_combine.ENV_SWITCH, before)
    with fused_combine.disabled():
        assert not fused_combine.usable((fake, fake))
    assert os.environ.get(fused_combine.ENV_SWITCH) == before
    assert fused_combine.usable((fake, fake))


def test_a_missing_triton_is_said_once_and_the_plain_ops_run(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_kernels(name, *args, **kwargs):
        if name.endswith("_combine_kernels") or (args[2:3] and "_combine_kernels" in (args[2] or ())):
            raise ImportError("No module named 'triton'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kernels)
    fused_combine._kernels.cache_clear()
    try:
        with pytest.warns(UserWarning, match="Triton could not be imported.*run as plain ops"):
            assert fused_combine._kernels() is None
    finally:
        monkeypatch.undo()
        fused_combine._kernels.cache_clear()


def test_a_failing_launch_names_the_switch(monkeypatch):
    class Broken:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise RuntimeError("PTX was compiled with an unsupported toolchain")

            return launch

    class Kernels:
        combine_forward = Broken()

    monkeypatch.setattr(fused_combine, "_kernels", lambda: Kernels)
    t = torch.zeros(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="TIMM_ZEROSNET_TRITON=0 to run the plain ops") as info:
        fused_combine.combine((t, t), ((1.0, 0.0), (1.0, 0.0)), force=True)
    assert "unsupported toolchain" in str(info.value)
