"""The DAG MLP of Chen et al. (NeurIPS 2022, Figure 3) and training-free NNGP / NTK eigenvalues.

An encoding such as ``'2_21_112'`` describes the cell (see :func:`~timm_zerosnet.analysis.connectivity.parse_mlp_dag`):
node 0 is ``ReLU(Linear(in, width))`` of the input, node s sums its incoming edges (1 = identity,
2 = ``ReLU(Linear(width, width))``) and a Linear readout reads the last node. Every Linear is initialised
kaiming-normal (fan_in, relu) with zero bias, as in the authors' code.

The paper ranks the convergence speed of its three DAGs as #1 < #2 < #3; the smallest eigenvalue of the NNGP
Gram matrix and of the empirical NTK at initialisation give the same ranking without data or training.

Reference:
    Chen, Huang, Gong, Hanin, Wang. "Deep Architecture Connectivity Matters for Its Convergence: A Fine-Grained
    Analysis", NeurIPS 2022, arXiv 2205.05662.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from .connectivity import EdgeKind, parse_mlp_dag

__all__ = [
    "PAPER_DAGS",
    "DagMLP",
    "KernelEigenvalues",
    "dag_kernel_study",
    "empirical_ntk",
    "kernel_eigenvalues",
    "nngp_gram",
    "random_unit_inputs",
    "smallest_eigenvalue",
]

#: The three DAGs of the paper's Figure 3: sequential, parallel, mixed.
PAPER_DAGS: dict[str, str] = {"dag1": "2_02_002", "dag2": "1_01_222", "dag3": "2_21_112"}


class DagMLP(nn.Module):
    """MLP whose hidden layers are wired as a DAG.

    Args:
        encoding: The paper's ``'_'``-row encoding, e.g. ``'2_21_112'``.
        in_features: Input dimension (inputs are flattened).
        width: Width of every hidden node.
        num_classes: Readout dimension.
    """

    def __init__(self, encoding: str, in_features: int, width: int, num_classes: int) -> None:
        super().__init__()
        in_features, width = _count(in_features, "in_features"), _count(width, "width")
        num_classes = _count(num_classes, "num_classes")
        self.encoding = encoding
        self.cell = parse_mlp_dag(encoding)
        self.width = width
        self.stem = nn.Linear(in_features, width)
        # One Linear per parameterised edge, keyed "src_dst"; skip edges need no module.
        self.edges = nn.ModuleDict(
            {f"{e.src}_{e.dst}": nn.Linear(width, width) for e in self.cell.edges if e.kind == EdgeKind.PARAM}
        )
        self.readout = nn.Linear(width, num_classes)
        self._incoming = [
            [(e.src, e.kind) for e in self.cell.edges if e.dst == node and e.kind != EdgeKind.BROKEN]
            for node in range(self.cell.num_nodes)
        ]
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the output node (the readout's input), shape ``(batch, width)``."""
        nodes = [torch.relu(self.stem(torch.flatten(x, 1)))]
        for node in range(1, self.cell.num_nodes):
            total = torch.zeros_like(nodes[0])
            for src, kind in self._incoming[node]:
                h = nodes[src]
                total = total + (torch.relu(self.edges[f"{src}_{node}"](h)) if kind == EdgeKind.PARAM else h)
            nodes.append(total)
        return nodes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(batch, num_classes)``."""
        return self.readout(self.features(x))


def random_unit_inputs(num: int, dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``num`` Gaussian vectors of dimension ``dim`` normalised to unit L2 norm (a data-free probe set)."""
    num, dim, seed = _count(num, "num"), _count(dim, "dim"), _seed(seed)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype such as torch.float64, got {dtype!r}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num, dim, generator=generator, dtype=dtype)
    return x / x.norm(dim=1, keepdim=True)


@torch.no_grad()
def nngp_gram(model: DagMLP, x: torch.Tensor) -> torch.Tensor:
    """NNGP Gram matrix of the output node at initialisation: ``h h^T / width`` with ``h = model.features(x)``."""
    h = model.features(x)
    return h @ h.T / h.shape[1]


def empirical_ntk(model: nn.Module, x: torch.Tensor, *, method: str = "auto", chunk_size: int = 16) -> torch.Tensor:
    """Empirical NTK ``Theta[i, j] = <d f(x_i) / d theta, d f(x_j) / d theta>`` over all parameters.

    ``f`` is the SUM of the model's outputs, which is the single logit when ``num_classes=1`` (the setting whose
    values ANALYSIS.md quotes). Samples must be processed independently (no batch statistics).

    Two exact methods:

    - ``'jacobian'``: per-sample Jacobians from ``torch.func.vmap(jacrev(...))`` over the parameter dict,
      ``chunk_size`` samples at a time; works for any model but holds ``n * num_params`` numbers.
    - ``'linear'``: for models whose parameters all sit in ``nn.Linear`` layers applied once to 2-D inputs
      (such as :class:`DagMLP`). The gradient of a layer ``z = W a + b`` is ``g a^T`` with ``g = df/dz``, so its
      kernel block is ``(G G^T) * (A A^T + 1)``; this needs one forward and one backward pass and is what makes
      width 1024 cheap on a CPU. It agrees with ``'jacobian'`` to rounding (tested).

    ``'auto'`` uses ``'linear'`` when the model qualifies, ``'jacobian'`` otherwise.

    Args:
        model: Any module; its parameters are read, not changed.
        x: Inputs, shape ``(n, ...)``.
        method: ``'auto'``, ``'linear'`` or ``'jacobian'``.
        chunk_size: Samples per vmap call of the ``'jacobian'`` method.

    Returns:
        The ``(n, n)`` kernel matrix in the dtype of the parameters.

    Raises:
        ValueError: For an unknown method, or ``'linear'`` on a model that does not qualify.
    """
    if method not in ("auto", "linear", "jacobian"):
        raise ValueError(f"unknown NTK method {method!r}; use 'auto', 'linear' or 'jacobian'.")
    if method != "jacobian":
        kernel = _linear_ntk(model, x)
        if kernel is not None:
            return kernel
        if method == "linear":
            raise ValueError(
                f"{type(model).__name__} does not qualify for the 'linear' NTK method (every parameter must belong "
                "to an nn.Linear applied once to a 2-D input); use method='jacobian'."
            )
    return _jacobian_ntk(model, x, chunk_size)


def _jacobian_ntk(model: nn.Module, x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (sample.unsqueeze(0),)).sum()

    per_sample = vmap(jacrev(f), in_dims=(None, 0))
    # One flattened (chunk, num_params) Jacobian per chunk; the kernel is assembled block by block.
    jacs = []
    for chunk in x.split(chunk_size):
        grads = per_sample(params, chunk)
        jacs.append(torch.cat([g.reshape(chunk.shape[0], -1) for g in grads.values()], dim=1))
    full = torch.cat(jacs)
    return full @ full.T


def _linear_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    owned = {id(p) for m in linears for p in m.parameters(recurse=False)}
    if not linears or any(id(p) not in owned for p in model.parameters()):
        return None
    params = {name: p.detach().clone().requires_grad_(True) for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    records: dict[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        records.setdefault(module, []).append((inputs[0].detach(), output))

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with torch.enable_grad():
            out = functional_call(model, (params, buffers), (x,))
            calls = [(m, rec) for m, recs in records.items() for rec in recs]
            if any(len(recs) != 1 or recs[0][0].dim() != 2 for recs in records.values()):
                return None
            outputs = [z for _, (_, z) in calls]
            grads = torch.autograd.grad(out.sum(), outputs, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    n = x.shape[0]
    kernel = x.new_zeros((n, n), dtype=out.dtype)
    for (module, (a, _)), g in zip(calls, grads):
        if g is None:
            continue
        gg = g @ g.T
        kernel += gg * (a @ a.T)
        if module.bias is not None:
            kernel += gg
    return kernel


def smallest_eigenvalue(kernel: torch.Tensor, *, normalize: bool = False) -> float:
    """Smallest eigenvalue of a symmetric kernel matrix; ``normalize`` divides the kernel by its mean diagonal."""
    sym = (kernel + kernel.T) / 2
    if normalize:
        scale = torch.diagonal(sym).mean()
        if not scale > 0:  # a zero kernel (or NaN) made eigvalsh fail to converge on a matrix of NaNs
            raise ValueError(
                f"smallest_eigenvalue(normalize=True): the kernel's mean diagonal is {float(scale):g}, so there is no "
                "scale to divide by; a kernel matrix has a positive diagonal unless the features are zero for every "
                "input (take the raw value, normalize=False)"
            )
        sym = sym / scale
    return float(torch.linalg.eigvalsh(sym)[0])


@dataclass(frozen=True)
class KernelEigenvalues:
    """Smallest kernel eigenvalues of one model on one probe set.

    Attributes:
        nngp: lambda_min of the NNGP Gram ``h h^T / width`` (raw).
        nngp_normalized: lambda_min of the NNGP Gram divided by its mean diagonal (scale-free).
        ntk: lambda_min of the empirical NTK of the summed outputs (raw).
        ntk_normalized: lambda_min of the empirical NTK divided by its mean diagonal (scale-free).
    """

    nngp: float
    nngp_normalized: float
    ntk: float
    ntk_normalized: float

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly view."""
        return {
            "nngp": self.nngp,
            "nngp_normalized": self.nngp_normalized,
            "ntk": self.ntk,
            "ntk_normalized": self.ntk_normalized,
        }


def kernel_eigenvalues(model: DagMLP, x: torch.Tensor) -> KernelEigenvalues:
    """Smallest eigenvalues of the NNGP Gram and of the empirical NTK, raw and normalised by the mean diagonal.

    The raw values are what the paper's ranking DAG#1 < DAG#2 < DAG#3 refers to; normalising by the mean
    diagonal removes the overall scale and flips DAG#2 and DAG#3.
    """
    if isinstance(model, DagMLP):
        expected = (model.stem.in_features, model.stem.weight.dtype)
        given = (x[0].numel() if x.dim() > 1 and len(x) else None, x.dtype)
        if x.dim() < 2 or not len(x) or given != expected:
            raise ValueError(
                f"inputs of shape {tuple(x.shape)} and dtype {x.dtype} do not fit DagMLP {model.encoding!r}, which "
                f"takes a batch of {expected[0]} features in {expected[1]}; pass e.g. "
                f"random_unit_inputs(64, {expected[0]}, dtype={expected[1]}) (or convert the model with .to(dtype))"
            )
    nngp = nngp_gram(model, x)
    if isinstance(model, DagMLP) and not torch.any(nngp):
        raise ValueError(
            f"DAG {model.encoding!r}: no path of live edges leads from the input to the output node, so its "
            "features are zero for every input and the kernels have nothing to rank (their normalised eigenvalues are "
            "undefined); give an encoding whose last row reaches the input, e.g. '2_21_112'"
        )
    ntk = empirical_ntk(model, x)
    return KernelEigenvalues(
        nngp=smallest_eigenvalue(nngp),
        nngp_normalized=smallest_eigenvalue(nngp, normalize=True),
        ntk=smallest_eigenvalue(ntk),
        ntk_normalized=smallest_eigenvalue(ntk, normalize=True),
    )


def dag_kernel_study(
    encodings: Sequence[str] = tuple(PAPER_DAGS.values()),
    *,
    width: int = 1024,
    in_features: int = 100,
    num_inputs: int = 64,
    num_classes: int = 1,
    seeds: Sequence[int] = (0, 1, 2),
    dtype: torch.dtype = torch.float64,
) -> dict[str, KernelEigenvalues]:
    """Seed-averaged :func:`kernel_eigenvalues` of DAG MLPs at initialisation on random unit-norm inputs.

    For every seed all encodings see the same probe inputs (``random_unit_inputs(seed=seed)``) and their weights
    are drawn after ``torch.manual_seed(seed)``; the global RNG state is restored afterwards.

    Args:
        encodings: DAG encodings to compare (default: the paper's DAG#1..#3).
        width: Hidden width.
        in_features: Input dimension.
        num_inputs: Number of probe inputs (the kernel size).
        num_classes: Readout dimension; the NTK is taken of the summed outputs.
        seeds: Seeds to average over.
        dtype: Computation dtype (float64 keeps small eigenvalues accurate).

    Returns:
        ``{encoding: KernelEigenvalues}`` averaged over the seeds.

    Raises:
        TypeError: If ``encodings`` is a single string rather than a sequence of encodings.
        ValueError: If an encoding is repeated (the results are keyed by encoding), ``seeds`` is empty or holds a
            non-integer, a size is not a positive int, or ``dtype`` is not a floating-point dtype.
    """
    if isinstance(encodings, str):
        raise TypeError(
            f"encodings must be a sequence of DAG encodings, got the string {encodings!r}; pass [{encodings!r}]"
        )
    encodings, seeds = tuple(encodings), tuple(seeds)
    repeated = sorted({enc for enc in encodings if encodings.count(enc) > 1})
    if repeated:
        # the results are keyed by encoding: a repeated one was summed twice (twice its eigenvalues)
        raise ValueError(
            f"encodings repeat {', '.join(map(repr, repeated))}: each encoding has one entry in the result; "
            "list every encoding once"
        )
    if not seeds:
        raise ValueError("seeds is empty: the eigenvalues are averaged over the seeds; pass at least one, e.g. (0,)")
    seeds = tuple(_seed(seed) for seed in seeds)
    # checked before any model is built: torch said only 'negative dimension -1' or 'manual_seed expected a long', and
    # num_inputs=0 or in_features=0 blamed the encoding ('no path of live edges ... e.g. 2_21_112' for '2_21_112')
    for size, name in ((num_inputs, "num_inputs"), (in_features, "in_features"), (width, "width")):
        _count(size, name)
    _count(num_classes, "num_classes")
    sums: dict[str, list[float]] = {enc: [0.0, 0.0, 0.0, 0.0] for enc in encodings}
    for seed in seeds:
        x = random_unit_inputs(num_inputs, in_features, seed=seed, dtype=dtype)
        for enc in encodings:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = DagMLP(enc, in_features, width, num_classes).to(dtype)
            values = kernel_eigenvalues(model, x)
            for i, v in enumerate((values.nngp, values.nngp_normalized, values.ntk, values.ntk_normalized)):
                sums[enc][i] += v / len(seeds)
    return {enc: KernelEigenvalues(*vals) for enc, vals in sums.items()}


def _count(value: object, name: str) -> int:
    """A size (features, width, classes, inputs) as a positive int: torch refused -5 with 'negative dimension', and
    a 0 built empty layers whose zero features were blamed on the DAG."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _seed(value: object) -> int:
    """A seed as an int (torch.manual_seed said 'expected a long, but got str')."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"a seed must be an int, got {value!r}; pass e.g. seeds=(0, 1, 2)")
    return int(value)
