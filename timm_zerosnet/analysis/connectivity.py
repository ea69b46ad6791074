"""Effective depth and width of a cell DAG, the training-free connectivity filter of Chen et al.

A cell is a DAG over nodes 0..N-1 (0 = input, N-1 = output) whose edges are broken (``none``),
non-parameterised (skip, pooling) or parameterised (convolutions, Linear+ReLU). Over the input-to-output paths
that contain no broken edge, with d_p the number of parameterised edges on path p:

- effective depth ``d`` = mean of d_p;
- effective width ``m`` = (number of kept paths with d_p > 0) / d, and 0 when d = 0.

Cells with 0.99 <= d <= 2.51 and 0.99 <= m <= 3.01 are kept before a training-free search; on NAS-Bench-201
this removes 7,399 of the 15,625 cells.

Reference:
    Chen, Huang, Gong, Hanin, Wang. "Deep Architecture Connectivity Matters for Its Convergence: A Fine-Grained
    Analysis", NeurIPS 2022, arXiv 2205.05662.
"""

from __future__ import annotations

import ast
import collections
import enum
import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DARTS_OPS",
    "DEFAULT_DEPTH_RANGE",
    "DEFAULT_WIDTH_RANGE",
    "MAX_LISTED_PATHS",
    "NB201_EDGES",
    "NB201_OPS",
    "REJECTION_REASONS",
    "Cell",
    "Connectivity",
    "Edge",
    "EdgeKind",
    "NB201FilterSummary",
    "PruningResult",
    "cell_connectivity",
    "enumerate_nb201",
    "iter_nb201_arch_strings",
    "keep_cell",
    "nb201_arch_string",
    "nb201_supernet_connectivity",
    "parse_darts_genotype",
    "parse_mlp_dag",
    "parse_nb201",
    "prune_nb201_supernet",
    "rejection_reason",
    "supernet_connectivity",
]


class EdgeKind(enum.IntEnum):
    """Type of a cell edge; the integer is also the digit of the MLP DAG encoding."""

    BROKEN = 0
    NONPARAM = 1
    PARAM = 2


#: NAS-Bench-201 operations and their edge kinds.
NB201_OPS: dict[str, EdgeKind] = {
    "none": EdgeKind.BROKEN,
    "skip_connect": EdgeKind.NONPARAM,
    "nor_conv_1x1": EdgeKind.PARAM,
    "nor_conv_3x3": EdgeKind.PARAM,
    "avg_pool_3x3": EdgeKind.NONPARAM,
}

#: DARTS operations and their edge kinds; a sep_conv (two stacked depthwise-separable convs) is one edge.
DARTS_OPS: dict[str, EdgeKind] = {
    "none": EdgeKind.BROKEN,
    "skip_connect": EdgeKind.NONPARAM,
    "max_pool_3x3": EdgeKind.NONPARAM,
    "avg_pool_3x3": EdgeKind.NONPARAM,
    "sep_conv_3x3": EdgeKind.PARAM,
    "sep_conv_5x5": EdgeKind.PARAM,
    "dil_conv_3x3": EdgeKind.PARAM,
    "dil_conv_5x5": EdgeKind.PARAM,
}

#: The six edges of a NAS-Bench-201 cell, in arch-string order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

#: Groups of a NAS-Bench-201 arch string (its nodes 1..3; node 0 is the input) and a complete example.
_NB201_GROUPS = 3
_NB201_EXAMPLE = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"

DEFAULT_DEPTH_RANGE = (0.99, 2.51)
DEFAULT_WIDTH_RANGE = (0.99, 3.01)

#: Why a cell fails the filter, in precedence order (depth before width): the first that applies is reported.
#: This order reproduces the reference counts, e.g. the 1,280 cells both too shallow and too wide count as
#: too shallow and the 8 cells both too deep and too narrow count as too deep.
REJECTION_REASONS: dict[str, str] = {
    "no_depth": "d = 0 or every route broken",
    "too_shallow": "0 < d < depth_lo",
    "too_deep": "d > depth_hi",
    "too_wide": "m > width_hi",
    "too_narrow": "m < width_lo",
}


@dataclass(frozen=True)
class Edge:
    """One edge ``src -> dst`` of a cell; parallel edges (two ops between the same nodes) are allowed."""

    src: int
    dst: int
    kind: EdgeKind
    op: str = ""

    def __post_init__(self) -> None:
        # kind='conv' or 3 counted as a non-parameterised edge without a word; a float node id failed as a list index
        for name in ("src", "dst"):
            node = getattr(self, name)
            if isinstance(node, bool) or not isinstance(node, numbers.Integral):
                raise ValueError(f"edge {self.src!r}->{self.dst!r}: node ids are ints, got {name}={node!r}.")
            object.__setattr__(self, name, int(node))
        kind = self.kind
        if isinstance(kind, bool) or not isinstance(kind, numbers.Integral) or kind not in tuple(EdgeKind):
            raise ValueError(
                f"edge {self.src}->{self.dst}: kind {kind!r} is not an edge kind; use EdgeKind.BROKEN (0: none), "
                "EdgeKind.NONPARAM (1: skip, pooling) or EdgeKind.PARAM (2: conv, Linear+ReLU)."
            )
        object.__setattr__(self, "kind", EdgeKind(int(kind)))


@dataclass(frozen=True)
class Connectivity:
    """Effective depth and width of a cell (or of a supernet, then path counts are probability masses).

    Attributes:
        depth: Effective depth d.
        width: Effective width m (0 when d = 0).
        num_paths: Input-to-output paths before dropping the broken ones (routes, for a supernet).
        kept_paths: Paths without a broken edge (for a supernet: their total probability).
        path_depths: d_p of every kept path, in enumeration order (empty for a supernet, and for a cell with more
            than :data:`MAX_LISTED_PATHS` paths).
    """

    depth: float
    width: float
    num_paths: int
    kept_paths: float
    path_depths: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "depth": self.depth,
            "width": self.width,
            "num_paths": self.num_paths,
            "kept_paths": self.kept_paths,
            "path_depths": list(self.path_depths),
        }


@dataclass(frozen=True)
class Cell:
    """A cell DAG over nodes ``0..num_nodes-1``; node 0 is the input and the last node the output."""

    num_nodes: int
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        if isinstance(self.num_nodes, bool) or not isinstance(self.num_nodes, numbers.Integral):
            raise ValueError(f"num_nodes is the number of nodes of the cell, an int >= 2, got {self.num_nodes!r}.")
        object.__setattr__(self, "num_nodes", int(self.num_nodes))
        if self.num_nodes < 2:
            raise ValueError(f"a cell needs at least an input and an output node, got num_nodes={self.num_nodes}.")
        for e in self.edges:
            if not 0 <= e.src < e.dst < self.num_nodes:
                raise ValueError(
                    f"edge {e.src}->{e.dst} does not go forward inside nodes 0..{self.num_nodes - 1}; "
                    "cell edges must satisfy 0 <= src < dst < num_nodes."
                )

    def paths(self) -> list[tuple[Edge, ...]]:
        """All input-to-output paths, broken edges included, in depth-first order."""
        outgoing: dict[int, list[Edge]] = {}
        for e in self.edges:
            outgoing.setdefault(e.src, []).append(e)
        out = self.num_nodes - 1
        found: list[tuple[Edge, ...]] = []
        # a stack, not recursion: a chain of a thousand nodes exceeded Python's recursion limit (RecursionError);
        # each node's edges are pushed last first, so that they are walked first to last, as recursion did
        stack: list[tuple[int, tuple[Edge, ...]]] = [(0, ())]
        while stack:
            node, prefix = stack.pop()
            if node == out:
                found.append(prefix)
                continue
            stack.extend((e.dst, (*prefix, e)) for e in reversed(outgoing.get(node, ())))
        return found

    def connectivity(self) -> Connectivity:
        """Effective depth and width (see :func:`cell_connectivity`)."""
        return cell_connectivity(self)


#: Most input-to-output paths whose depths :func:`cell_connectivity` lists one by one; d and m of a larger cell
#: are counted, not enumerated (the paths of a DAG grow as 2^nodes: 25 dense nodes have 8,388,608).
MAX_LISTED_PATHS = 100_000


def cell_connectivity(cell: Cell) -> Connectivity:
    """Effective depth d and width m of a cell.

    Every input-to-output path containing a broken edge is dropped; d is the mean number of parameterised edges
    over the kept paths and m the number of kept paths with at least one parameterised edge divided by d
    (0 when d = 0, including when every path is broken).

    The paths are counted node by node (how many reach each node with each number of parameterised edges), so d and
    m of a large DAG take milliseconds; ``path_depths`` lists every kept path only for cells with at most
    :data:`MAX_LISTED_PATHS` paths, and is empty for larger ones.
    """
    out = cell.num_nodes - 1
    routes = [0] * cell.num_nodes  # paths from the input to each node, broken ones included
    counts = [collections.Counter() for _ in range(cell.num_nodes)]  # kept paths to each node, by depth d_p
    routes[0], counts[0][0] = 1, 1
    for e in sorted(cell.edges, key=lambda e: e.src):  # every edge into a node leaves an earlier node
        routes[e.dst] += routes[e.src]
        if e.kind != EdgeKind.BROKEN:
            step = int(e.kind == EdgeKind.PARAM)
            for d, n in counts[e.src].items():
                counts[e.dst][d + step] += n
    kept = sum(counts[out].values())
    depths: tuple[int, ...] = ()
    if routes[out] <= MAX_LISTED_PATHS:
        paths = cell.paths()
        depths = tuple(
            sum(e.kind == EdgeKind.PARAM for e in p) for p in paths if all(e.kind != EdgeKind.BROKEN for e in p)
        )
    # exact integer sums, one rounding each: the same floats as averaging the listed depths
    depth = sum(d * n for d, n in counts[out].items()) / kept if kept else 0.0
    width = (kept - counts[out][0]) / depth if depth > 0 else 0.0
    return Connectivity(depth, width, num_paths=routes[out], kept_paths=kept, path_depths=depths)


def _depth_width(depths: Sequence[int]) -> tuple[float, float]:
    if not depths:
        return 0.0, 0.0
    depth = sum(depths) / len(depths)
    if depth == 0:
        return 0.0, 0.0
    return depth, sum(d > 0 for d in depths) / depth


# ---------------------------------------------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------------------------------------------


def rejection_reason(
    depth: float,
    width: float,
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
    width_range: tuple[float, float] = DEFAULT_WIDTH_RANGE,
) -> str | None:
    """Why a cell with effective depth/width ``(depth, width)`` fails the filter, or ``None`` if it is kept.

    A cell is kept iff ``depth_lo <= d <= depth_hi`` and ``width_lo <= m <= width_hi`` (ANALYSIS.md section 2);
    a cell with d = 0 (every kept path parameter-free, or every route broken) is no exception: ranges that include
    0 keep it. Returns the first key of :data:`REJECTION_REASONS` that applies (depth is judged before width); a
    cell below the depth range is reported as ``"no_depth"`` when d = 0 and ``"too_shallow"`` otherwise.

    Raises:
        ValueError: If ``depth`` or ``width`` is not a finite number >= 0 (NaN included), or a range is not
            ``lo <= hi``.
    """
    depth, width = _check_measure(depth, "depth"), _check_measure(width, "width")
    depth_lo, depth_hi = _check_range(depth_range, "depth_range")
    width_lo, width_hi = _check_range(width_range, "width_range")
    if depth < depth_lo:
        return "no_depth" if depth <= 0 else "too_shallow"
    if depth > depth_hi:
        return "too_deep"
    if width > width_hi:
        return "too_wide"
    if width < width_lo:
        return "too_narrow"
    return None


def keep_cell(
    depth: float,
    width: float,
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
    width_range: tuple[float, float] = DEFAULT_WIDTH_RANGE,
) -> bool:
    """Connectivity filter: keep iff ``depth_lo <= d <= depth_hi`` and ``width_lo <= m <= width_hi``.

    Args:
        depth: Effective depth d.
        width: Effective width m.
        depth_range: Inclusive bounds on d (default: the paper's ``(0.99, 2.51)``).
        width_range: Inclusive bounds on m (default: the paper's ``(0.99, 3.01)``).

    Returns:
        Whether the cell is kept.
    """
    return rejection_reason(depth, width, depth_range, width_range) is None


def _check_measure(value: float, name: str) -> float:
    """The effective depth or width of a cell as a float; NaN (every comparison false: the cell passed every bound)
    is refused, and so is a value no cell can have: d is a mean count of edges and m a count over d, both finite and
    >= 0 (a negative d was reported as "d = 0", and kept by a range that reaches below 0)."""
    if isinstance(value, bool | str | bytes):  # float(True) and float('2') would pass them as numbers
        raise ValueError(f"{name} must be a number, got {value!r}; pass the cell's effective {name}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}; pass the cell's effective {name}") from None
    if math.isnan(value):
        raise ValueError(
            f"{name} is NaN, which no range can judge; pass the cell's effective {name} (e.g. from cell_connectivity)"
        )
    if not 0 <= value < math.inf:
        raise ValueError(
            f"{name} = {value:g} is not an effective {name}: it is a finite number >= 0 (d is the mean number of "
            f"parameterised edges per path, m the paths with one over d); pass the cell's effective {name} (e.g. "
            "from cell_connectivity)"
        )
    return value


def _check_range(bounds: Sequence[float], name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (lo, hi), got {bounds!r}.") from None
    if math.isnan(lo) or math.isnan(hi):  # it was reported as "must satisfy lo <= hi"
        raise ValueError(f"{name} must be two numbers (lo, hi), got {bounds!r}; use -inf or inf for no bound.")
    if not lo <= hi:
        raise ValueError(f"{name} must satisfy lo <= hi, got ({lo}, {hi}).")
    return lo, hi


# ---------------------------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------------------------


def parse_nb201(arch: str) -> Cell:
    """Parse a NAS-Bench-201 arch string such as ``'|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|...|'``.

    Group j (separated by ``+``) lists the edges into node j as ``op~src``, one for every earlier node. A
    NAS-Bench-201 cell always has exactly three groups (nodes 1, 2, 3 with 1, 2 and 3 incoming edges).

    Raises:
        ValueError: If the string is malformed, names an unknown op or does not have exactly three groups.
    """
    if not isinstance(arch, str) or not arch.strip():
        raise ValueError(f"empty NAS-Bench-201 arch string; expected e.g. {_NB201_EXAMPLE!r}.")
    arch = arch.strip()
    edges = []
    groups = arch.split("+")
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"malformed NAS-Bench-201 arch string: group {group!r} must look like '|op~src|...|'.")
        tokens = group[1:-1].split("|")
        sources = []
        for token in tokens:
            op, sep, src = token.partition("~")
            if not sep or not src.isdecimal():  # isdigit() takes "²", which int() refuses
                raise ValueError(f"malformed NAS-Bench-201 edge {token!r}: expected 'op~src' such as 'skip_connect~0'.")
            if op not in NB201_OPS:
                raise ValueError(
                    f"unknown NAS-Bench-201 op {op!r} in edge {token!r}; valid ops: {', '.join(NB201_OPS)}."
                )
            sources.append(int(src))
            edges.append(Edge(int(src), node, NB201_OPS[op], op))
        if sorted(sources) != list(range(node)):
            raise ValueError(
                f"malformed NAS-Bench-201 arch string: group {group!r} must list one edge from each of nodes "
                f"0..{node - 1} into node {node}."
            )
    if len(groups) != _NB201_GROUPS:
        raise ValueError(
            f"not a NAS-Bench-201 cell: the arch string has {len(groups)} '+'-separated group(s) but a NAS-Bench-201 "
            f"cell has exactly {_NB201_GROUPS} (node 1 with 1 edge, node 2 with 2, node 3 with 3), e.g. "
            f"{_NB201_EXAMPLE!r}."
        )
    return Cell(len(groups) + 1, tuple(edges))


def nb201_arch_string(ops: Sequence[str]) -> str:
    """The arch string of the six ops on the edges :data:`NB201_EDGES` (inverse of :func:`parse_nb201`)."""
    if len(ops) != len(NB201_EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(ops)} ops.")
    o = [f"{op}~{src}" for op, (src, _) in zip(ops, NB201_EDGES)]
    return f"|{o[0]}|+|{o[1]}|{o[2]}|+|{o[3]}|{o[4]}|{o[5]}|"


def iter_nb201_arch_strings() -> Iterator[str]:
    """All 5^6 = 15,625 NAS-Bench-201 arch strings."""
    for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)):
        yield nb201_arch_string(ops)


def parse_mlp_dag(encoding: str) -> Cell:
    """Parse the paper's MLP DAG encoding, e.g. ``'2_21_112'``.

    Row s (1-based, ``_``-separated) has s digits: the edges into node s from nodes 0..s-1, with
    0 = broken, 1 = skip, 2 = Linear+ReLU.

    Raises:
        ValueError: If the encoding is empty, a row has the wrong length or a digit other than 0, 1, 2.
    """
    if not isinstance(encoding, str) or not encoding.strip():
        raise ValueError("empty DAG encoding; expected '_'-separated rows of 0/1/2 such as '2_21_112'.")
    edges = []
    rows = encoding.strip().split("_")
    for node, row in enumerate(rows, start=1):
        if len(row) != node:
            raise ValueError(
                f"malformed DAG encoding {encoding!r}: row {node} is {row!r} but must have {node} digits "
                f"(one per earlier node)."
            )
        for src, digit in enumerate(row):
            if digit not in "012":
                raise ValueError(f"malformed DAG encoding {encoding!r}: {digit!r} in row {node} is not 0, 1 or 2.")
            kind = EdgeKind(int(digit))
            edges.append(Edge(src, node, kind, {0: "none", 1: "skip", 2: "linear_relu"}[kind]))
    return Cell(len(rows) + 1, tuple(edges))


def parse_darts_genotype(genotype: str | Sequence[tuple[str, int]], concat: Sequence[int] | None = None) -> Cell:
    """Turn the normal cell of a DARTS genotype into a single-input cell DAG.

    A DARTS cell has two inputs c_{k-2} (node 0) and c_{k-1} (node 1), intermediate nodes 2, 3, ... that each
    sum two ``(op, input_node)`` edges, and an output that concatenates the ``concat`` nodes. Mapping:

    - both cell inputs are merged into the DAG source (node 0), so every path from either input counts, and two
      edges of one node from c_{k-2} and c_{k-1} become parallel edges;
    - DARTS node i >= 2 becomes DAG node i - 1;
    - a final output node receives one non-parameterised ``concat`` edge from every node in ``concat``
      (default: all intermediate nodes, as in every published DARTS genotype).

    ``sep_conv_*`` and ``dil_conv_*`` are parameterised, ``skip_connect`` and the pools are not, ``none`` is broken.

    Args:
        genotype: The normal cell as a list of ``(op, input_node)`` pairs, two per intermediate node, or a string:
            that list's repr, or a whole ``Genotype(normal=[...], normal_concat=[...], ...)`` repr.
        concat: DARTS node ids concatenated into the output (a list or a ``range``); overrides ``normal_concat``
            of a Genotype string.

    Raises:
        ValueError: If the genotype cannot be parsed, has an odd number of edges, an unknown op or an input that
            is not an earlier node, or if the concat nodes are not distinct intermediate node ids, at least one.
    """
    pairs, parsed_concat = _read_genotype(genotype)
    if not pairs:
        raise ValueError("empty DARTS genotype; expected a list of (op, input_node) pairs, two per intermediate node.")
    if len(pairs) % 2:
        raise ValueError(f"DARTS genotype has {len(pairs)} edges; a normal cell has two per intermediate node.")
    num_intermediate = len(pairs) // 2
    if concat is not None:
        concat = _check_concat(concat, "concat", num_intermediate)
    elif parsed_concat is not None:
        concat = _check_concat(parsed_concat, "normal_concat", num_intermediate)
    else:
        concat = list(range(2, 2 + num_intermediate))
    edges = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, Sequence) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"DARTS genotype edge {i} is {pair!r}; expected an (op, input_node) pair.")
        op, src = pair
        node = 2 + i // 2
        if op not in DARTS_OPS:
            raise ValueError(f"unknown DARTS op {op!r} in edge {pair!r}; valid ops: {', '.join(DARTS_OPS)}.")
        if not isinstance(src, int) or isinstance(src, bool) or not 0 <= src < node:
            raise ValueError(f"DARTS genotype edge {pair!r} feeds node {node}; its input must be one of 0..{node - 1}.")
        edges.append(Edge(max(src - 1, 0), node - 1, DARTS_OPS[op], op))
    out = num_intermediate + 1
    for node in concat:
        edges.append(Edge(node - 1, out, EdgeKind.NONPARAM, "concat"))
    return Cell(out + 1, tuple(edges))


def _check_concat(concat: Any, field: str, num_intermediate: int) -> list[int]:
    """The DARTS node ids of ``concat`` (named ``field`` in messages), refused unless they are distinct
    intermediate node ids 2..num_intermediate + 1, at least one: an empty list leaves the output unreachable and a
    repeated node would count its paths twice."""
    last = 1 + num_intermediate
    allowed = f"distinct intermediate node ids in 2..{last}, e.g. range(2, {last + 1}) for all of them"
    if isinstance(concat, str | bytes) or not isinstance(concat, Iterable):
        raise ValueError(f"DARTS {field} is {concat!r}, not a list of node ids; give {allowed}.")
    nodes = list(concat)
    if not nodes:
        raise ValueError(f"DARTS {field} is empty, so no node reaches the cell output; give {allowed}.")
    for node in nodes:
        if not isinstance(node, int) or isinstance(node, bool) or not 2 <= node <= last:
            raise ValueError(f"DARTS {field} node {node!r} is not an intermediate node; use int ids 2..{last}.")
    repeated = next((node for i, node in enumerate(nodes) if node in nodes[:i]), None)
    if repeated is not None:
        raise ValueError(
            f"DARTS {field} {nodes} names node {repeated} twice, which would count its paths twice; give {allowed}."
        )
    return nodes


def _read_genotype(genotype: Any) -> tuple[list[Any], Any]:
    if not isinstance(genotype, str):
        return list(genotype), None
    text = genotype.strip()
    if not text:
        return [], None
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"malformed DARTS genotype {_short(text)}: it is not a Python list or Genotype(...)."
        ) from None
    concat = None
    if isinstance(tree, ast.Call):
        kwargs = {kw.arg: kw.value for kw in tree.keywords}
        if "normal" not in kwargs:
            raise ValueError(f"DARTS genotype {_short(text)} has no normal=[...] cell.")
        tree = kwargs["normal"]
        if "normal_concat" in kwargs:
            concat = _literal(kwargs["normal_concat"], text)
    value = _literal(tree, text)
    if not isinstance(value, list | tuple):
        raise ValueError(f"malformed DARTS genotype {_short(text)}: expected a list of (op, input_node) pairs.")
    return list(value), concat


def _literal(node: ast.AST, text: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        # Genotypes printed by DARTS write normal_concat=range(2, 6).
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range":
            try:
                if node.keywords:  # range() takes none
                    raise TypeError
                return list(range(*(ast.literal_eval(arg) for arg in node.args)))
            except (TypeError, ValueError):
                raise ValueError(
                    f"malformed DARTS genotype {_short(text)}: {ast.unparse(node)} is not a range of ints, "
                    "such as range(2, 6)."
                ) from None
        raise ValueError(f"malformed DARTS genotype {_short(text)}: only literal lists are accepted.") from None


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ---------------------------------------------------------------------------------------------------------------
# NAS-Bench-201: the whole space
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NB201FilterSummary:
    """Counts of the connectivity filter over every NAS-Bench-201 cell.

    Attributes:
        total: Number of cells (15,625).
        kept: Cells that pass the filter.
        by_reason: Removed cells per :data:`REJECTION_REASONS` key (first applicable reason).
        depth_range: Depth bounds used.
        width_range: Width bounds used.
        elapsed_s: Wall time of the enumeration in seconds.
    """

    total: int
    kept: int
    by_reason: dict[str, int]
    depth_range: tuple[float, float]
    width_range: tuple[float, float]
    elapsed_s: float

    @property
    def removed(self) -> int:
        """Cells removed by the filter."""
        return self.total - self.kept

    @property
    def removed_fraction(self) -> float:
        """Share of removed cells."""
        return self.removed / self.total

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "total": self.total,
            "kept": self.kept,
            "removed": self.removed,
            "removed_fraction": self.removed_fraction,
            "by_reason": dict(self.by_reason),
            "depth_range": list(self.depth_range),
            "width_range": list(self.width_range),
            "elapsed_s": self.elapsed_s,
        }


def enumerate_nb201(
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
    width_range: tuple[float, float] = DEFAULT_WIDTH_RANGE,
) -> NB201FilterSummary:
    """Apply the connectivity filter to all 15,625 NAS-Bench-201 cells and count the removals by reason.

    The four routes of the fixed cell skeleton are enumerated once; each cell then only types its six edges,
    which gives the same d and m as :func:`cell_connectivity` on the parsed arch string (tested) in well under
    a second.
    """
    _check_range(depth_range, "depth_range")
    _check_range(width_range, "width_range")
    start = time.perf_counter()
    skeleton = parse_nb201(nb201_arch_string(["skip_connect"] * len(NB201_EDGES)))
    edge_index = {(e.src, e.dst): i for i, e in enumerate(skeleton.edges)}
    routes = [tuple(edge_index[(e.src, e.dst)] for e in path) for path in skeleton.paths()]
    kinds = list(NB201_OPS.values())
    counts = dict.fromkeys(REJECTION_REASONS, 0)
    # (d, m) only depends on the edge kinds, so 3^6 kind patterns cover the 5^6 cells.
    verdict: dict[tuple[EdgeKind, ...], str | None] = {}
    kept = total = 0
    for pattern in itertools.product(kinds, repeat=len(NB201_EDGES)):
        if pattern not in verdict:
            depths = [
                sum(pattern[i] == EdgeKind.PARAM for i in route)
                for route in routes
                if all(pattern[i] != EdgeKind.BROKEN for i in route)
            ]
            verdict[pattern] = rejection_reason(*_depth_width(depths), depth_range, width_range)
        reason = verdict[pattern]
        total += 1
        if reason is None:
            kept += 1
        else:
            counts[reason] += 1
    return NB201FilterSummary(
        total=total,
        kept=kept,
        by_reason=counts,
        depth_range=tuple(float(v) for v in depth_range),
        width_range=tuple(float(v) for v in width_range),
        elapsed_s=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------------------------------------
# Supernet (probabilistic) version
# ---------------------------------------------------------------------------------------------------------------


def supernet_connectivity(
    num_nodes: int,
    edge_ops: Mapping[tuple[int, int], Sequence[str]],
    op_kinds: Mapping[str, EdgeKind] = NB201_OPS,
) -> Connectivity:
    """Effective depth and width of a supernet whose edges each hold a set of still-active ops.

    Each edge carries the distribution over {broken, non-param, param} given by the fraction of its ops of each
    kind (all broken if no op is left). Typed paths are enumerated over every route with the product of their
    edge probabilities, broken ones dropped:
    ``d = sum_p d_p prob_p / sum_p prob_p`` and ``m = (sum of prob_p over paths with d_p > 0) / d``.
    For a single architecture (one op per edge) this is :func:`cell_connectivity`.

    Args:
        num_nodes: Number of nodes.
        edge_ops: Active ops per edge ``(src, dst)``.
        op_kinds: Kind of every op name.

    Returns:
        A :class:`Connectivity` whose ``kept_paths`` is the total probability of the kept typed paths.
    """
    probs = {}
    edges = []
    for (src, dst), ops in edge_ops.items():
        if isinstance(ops, str | bytes):  # its characters were taken for ops ("unknown op 's'")
            raise ValueError(f"the ops of edge {src}->{dst} must be a list of op names, got the string {ops!r}.")
        unknown = [op for op in ops if op not in op_kinds]
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r} on edge {src}->{dst}; valid ops: {', '.join(op_kinds)}.")
        # a kind outside EdgeKind (5, 'conv') fell in no class: the edge silently had probability 0 of every kind
        untyped = [op for op in ops if isinstance(op_kinds[op], bool) or op_kinds[op] not in tuple(EdgeKind)]
        if untyped:
            raise ValueError(
                f"op_kinds[{untyped[0]!r}] = {op_kinds[untyped[0]]!r} is not an edge kind; use EdgeKind.BROKEN, "
                "EdgeKind.NONPARAM or EdgeKind.PARAM."
            )
        n = len(ops)
        fractions = [
            sum(op_kinds[op] == kind for op in ops) / n if n else float(kind == EdgeKind.BROKEN) for kind in EdgeKind
        ]
        probs[(src, dst)] = fractions
        edges.append(Edge(src, dst, EdgeKind.NONPARAM))
    routes = Cell(num_nodes, tuple(edges)).paths()
    mass = weighted_depth = with_param = 0.0
    for route in routes:
        route_probs = [probs[(e.src, e.dst)] for e in route]
        for kinds in itertools.product((EdgeKind.NONPARAM, EdgeKind.PARAM), repeat=len(route)):
            p = math.prod(pr[kind] for pr, kind in zip(route_probs, kinds))
            d_p = sum(kind == EdgeKind.PARAM for kind in kinds)
            mass += p
            weighted_depth += d_p * p
            if d_p > 0:
                with_param += p
    depth = weighted_depth / mass if mass > 0 else 0.0
    width = with_param / depth if depth > 0 else 0.0
    return Connectivity(depth if depth > 0 else 0.0, width, num_paths=len(routes), kept_paths=mass)


def nb201_supernet_connectivity(edge_ops: Mapping[tuple[int, int], Sequence[str]] | None = None) -> Connectivity:
    """:func:`supernet_connectivity` on the NAS-Bench-201 skeleton; by default every edge holds all five ops.

    Raises:
        ValueError: For an unknown op, or if ``edge_ops`` lacks one of the six edges :data:`NB201_EDGES`.
    """
    if edge_ops is None:
        edge_ops = {edge: list(NB201_OPS) for edge in NB201_EDGES}
    result = supernet_connectivity(4, edge_ops, NB201_OPS)  # unknown ops first
    missing = [edge for edge in NB201_EDGES if edge not in edge_ops]
    if missing:  # a missing edge had no route through it: (d, m) of another skeleton, without a word
        raise ValueError(
            f"the NAS-Bench-201 supernet has the six edges {', '.join(f'{i}->{j}' for i, j in NB201_EDGES)}, and "
            f"edge_ops gives no ops for {', '.join(f'{i}->{j}' for i, j in missing)}; give every edge its active ops "
            "(an empty list, or ['none'], for a broken edge)."
        )
    return result


# ---------------------------------------------------------------------------------------------------------------
# Supernet pruning search
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningResult:
    """Outcome of :func:`prune_nb201_supernet`.

    Attributes:
        arch: The arch string of the final single-path cell.
        evaluations: Number of calls to the score function.
        skipped: Candidates reserved by their connectivity and therefore not scored.
        history: Per round, the op pruned from every edge, as ``(edge, op)`` pairs.
    """

    arch: str
    evaluations: int
    skipped: int
    history: tuple[tuple[tuple[tuple[int, int], str], ...], ...]


def prune_nb201_supernet(
    score: Callable[[Mapping[tuple[int, int], tuple[str, ...]]], float],
    *,
    ops: Sequence[str] = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
    reserve_per_edge: int = 2,
) -> PruningResult:
    """Prune-based NAS-Bench-201 search (TE-NAS style) that skips candidates of moderate depth and width.

    Every round removes one op from every edge (against the supernet as it was at the start of the round)
    until each edge holds one op. For an edge with n active ops the candidates are "remove op o"; each gets the
    supernet (d, m) of :func:`supernet_connectivity`. The ``min(reserve_per_edge, n - 2)`` candidates closest
    (squared Euclidean distance) to the centroid of that edge's (d, m) points are reserved: not scored and not
    pruned this round, since moderate depth and width is what the connectivity analysis favours. The others are
    scored, and the one with the highest score is pruned. Ties (in distance and in score) go to the op listed
    first in ``ops``. This follows the authors' TE-NAS + DAG code; it is not the :func:`keep_cell` filter.

    With the default four ops (``none`` removed, as in the paper) the search scores 6 * (2 + 2 + 2) = 36
    candidates instead of 6 * (4 + 3 + 2) = 54 with ``reserve_per_edge=0``.

    Args:
        score: Training-free score of a supernet given as ``{edge: active ops}``; the candidate with the highest
            score is pruned (e.g. the relative drop of the NTK condition number).
        ops: Initial op set of every edge.
        reserve_per_edge: How many candidates per edge are reserved by their connectivity (0 disables it).

    Returns:
        A :class:`PruningResult`.

    Raises:
        ValueError: If ``ops`` or ``reserve_per_edge`` is invalid, or a score is NaN.
        TypeError: If ``reserve_per_edge`` is not an int, or a score is not a number.
    """
    unknown = [op for op in ops if op not in NB201_OPS]
    if unknown or not ops or len(set(ops)) != len(ops):
        raise ValueError(f"ops must be distinct names from {', '.join(NB201_OPS)}, got {list(ops)!r}.")
    if isinstance(reserve_per_edge, bool) or not isinstance(reserve_per_edge, numbers.Integral):
        raise TypeError(
            f"reserve_per_edge must be a whole number of candidates (an int >= 0), got {reserve_per_edge!r}"
        )
    if reserve_per_edge < 0:
        raise ValueError(f"reserve_per_edge must be >= 0, got {reserve_per_edge}.")
    active = {edge: tuple(ops) for edge in NB201_EDGES}
    evaluations = skipped = 0
    history = []
    while any(len(v) > 1 for v in active.values()):
        pruned = []
        for edge in NB201_EDGES:
            n = len(active[edge])
            if n == 1:
                continue
            trials = [(op, {**active, edge: tuple(o for o in active[edge] if o != op)}) for op in active[edge]]
            reserve = min(reserve_per_edge, n - 2)
            reserved: set[str] = set()
            if reserve > 0:
                points = [nb201_supernet_connectivity(trial) for _, trial in trials]
                cd = sum(p.depth for p in points) / n
                cm = sum(p.width for p in points) / n
                dist = [(p.depth - cd) ** 2 + (p.width - cm) ** 2 for p in points]
                nearest = sorted(range(n), key=lambda i: dist[i])[:reserve]
                reserved = {trials[i][0] for i in nearest}
                skipped += reserve
            scored = []
            for op, trial in trials:
                if op in reserved:
                    continue
                returned = score(trial)
                try:
                    value = float(returned)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"score returned {returned!r} for the supernet without {op!r} on edge {edge[0]}->{edge[1]}: "
                        "the search prunes the candidate with the highest score; make the score function return a "
                        "number for every candidate"
                    ) from None
                if math.isnan(value):  # NaN compares false: max() kept a first one (then StopIteration), skipped others
                    raise ValueError(
                        f"score is NaN for the supernet without {op!r} on edge {edge[0]}->{edge[1]} (round "
                        f"{len(history) + 1}): the search prunes the candidate with the highest score and NaN has no "
                        "order; make the score function return a number for every candidate (e.g. -inf for one it "
                        "cannot score: that op is then removed last)"
                    )
                scored.append((value, op))
            evaluations += len(scored)
            best = max(s for s, _ in scored)
            pruned.append((edge, next(op for s, op in scored if s == best)))
        for edge, op in pruned:
            active[edge] = tuple(o for o in active[edge] if o != op)
        history.append(tuple(pruned))
    arch = nb201_arch_string([active[edge][0] for edge in NB201_EDGES])
    return PruningResult(arch=arch, evaluations=evaluations, skipped=skipped, history=tuple(history))
