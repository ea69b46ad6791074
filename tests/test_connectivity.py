"""DAG connectivity (Chen et al., NeurIPS 2022): every reference value of ANALYSIS.md section 2."""

from __future__ import annotations

import collections
import itertools
import math
import re

import pytest
import torch

from timm_zerosnet.analysis.connectivity import (
    NB201_EDGES,
    NB201_OPS,
    Cell,
    Edge,
    EdgeKind,
    enumerate_nb201,
    iter_nb201_arch_strings,
    keep_cell,
    nb201_arch_string,
    nb201_supernet_connectivity,
    parse_darts_genotype,
    parse_mlp_dag,
    parse_nb201,
    prune_nb201_supernet,
    rejection_reason,
    supernet_connectivity,
)
from timm_zerosnet.analysis.dag_mlp import (
    PAPER_DAGS,
    DagMLP,
    dag_kernel_study,
    empirical_ntk,
    kernel_eigenvalues,
    nngp_gram,
    random_unit_inputs,
    smallest_eigenvalue,
)

RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_CONV3_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


# --------------------------------------------------------------------------------------------- NAS-Bench-201


def test_nb201_filter_counts_match_reference():
    summary = enumerate_nb201()
    assert summary.total == 15_625
    assert summary.kept == 8_226
    assert summary.removed == 7_399
    assert round(100 * summary.removed_fraction, 2) == 47.35
    assert summary.by_reason == {
        "no_depth": 1_983,
        "too_shallow": 4_592,
        "too_deep": 8,
        "too_wide": 512,
        "too_narrow": 304,
    }


def test_nb201_fast_enumeration_agrees_with_parsing_every_arch_string():
    counts = collections.Counter()
    for arch in iter_nb201_arch_strings():
        result = parse_nb201(arch).connectivity()
        counts[rejection_reason(result.depth, result.width)] += 1
    summary = enumerate_nb201()
    assert counts.pop(None) == summary.kept
    assert dict(counts) == {k: v for k, v in summary.by_reason.items() if v}


def test_nb201_filter_ranges_are_arguments():
    loose = enumerate_nb201(depth_range=(1e-9, 3.0), width_range=(0.0, 100.0))
    assert loose.removed == loose.by_reason["no_depth"] == 1_983
    assert keep_cell(1.0, 2.875)
    assert not keep_cell(1.0, 2.875, width_range=(0.99, 2.5))
    assert rejection_reason(0.5, 4.0) == "too_shallow"  # depth is judged before width
    assert rejection_reason(3.0, 1 / 3) == "too_deep"
    with pytest.raises(ValueError, match="lo <= hi"):
        keep_cell(1.0, 1.0, depth_range=(2.0, 1.0))


@pytest.mark.parametrize(("depth", "width", "name"), [(float("nan"), 1.0, "depth"), (1.0, float("nan"), "width")])
def test_the_filter_refuses_a_nan_depth_or_width(depth, width, name):
    """NaN compares false with every bound, so a NaN depth or width was kept (keep_cell True, no rejection reason)."""
    for check in (keep_cell, rejection_reason):
        with pytest.raises(ValueError, match=f"^{name} is NaN, which no range can judge; pass the cell's effective"):
            check(depth, width)
    with pytest.raises(ValueError, match="depth must be a number, got None"):
        keep_cell(None, 1.0)


@pytest.mark.parametrize(
    ("depth", "width", "message"),
    [
        (-1.0, 2.0, "depth = -1 is not an effective depth: it is a finite number >= 0"),
        (1.0, -0.5, "width = -0.5 is not an effective width: it is a finite number >= 0"),
        (math.inf, 2.0, "depth = inf is not an effective depth"),
        (1.0, math.inf, "width = inf is not an effective width"),
        (True, 2.0, "depth must be a number, got True"),
        (1.0, "2", "width must be a number, got '2'"),
    ],
    ids=["negative-depth", "negative-width", "infinite-depth", "infinite-width", "bool", "string"],
)
def test_the_filter_refuses_a_depth_or_width_no_cell_can_have(depth, width, message):
    """d is a mean count of edges and m a count over d: a negative depth was reported as "d = 0 or every route
    broken" (and kept by a range reaching below 0, e.g. the CLI's -inf), an infinite one judged as too deep, True and
    '2' read as the numbers 1 and 2."""
    for check in (keep_cell, rejection_reason):
        with pytest.raises(ValueError, match=re.escape(message)):
            check(depth, width)
    with pytest.raises(ValueError, match="depth = -1 is not an effective depth"):
        keep_cell(-1, 1, (-math.inf, math.inf), (-math.inf, math.inf))


def test_ranges_that_include_zero_keep_cells_of_depth_zero():
    # ANALYSIS.md section 2: keep a cell iff lo <= d <= hi and lo <= m <= hi, d = 0 included
    assert keep_cell(0, 0, (0, 3), (0, 5))
    assert rejection_reason(0.0, 0.0, (0.0, 3.0), (0.0, 5.0)) is None
    assert rejection_reason(0.0, 0.0, (0.0, 3.0), (0.5, 5.0)) == "too_narrow"
    assert rejection_reason(0.0, 0.0) == "no_depth"  # below the paper's ranges it is still removed, as d = 0
    assert rejection_reason(0.5, 1.0, (0.6, 3.0)) == "too_shallow"
    everything = enumerate_nb201(depth_range=(0.0, 3.0), width_range=(0.0, 100.0))
    assert everything.kept == everything.total == 15_625
    broken = parse_nb201("|none~0|+|none~0|skip_connect~1|+|none~0|nor_conv_3x3~1|none~2|").connectivity()
    assert keep_cell(broken.depth, broken.width, (0, 3), (0, 5))


def test_filter_ranges_are_inclusive_at_both_ends():
    lo_d, hi_d = 0.99, 2.51
    lo_m, hi_m = 0.99, 3.01
    for d, m in itertools.product((lo_d, hi_d), (lo_m, hi_m)):
        assert keep_cell(d, m) and rejection_reason(d, m) is None
    assert rejection_reason(hi_d, hi_m + 1e-9) == "too_wide"
    assert rejection_reason(hi_d + 1e-9, hi_m) == "too_deep"
    assert rejection_reason(lo_d, lo_m - 1e-9) == "too_narrow"


def test_resnet_like_and_all_conv_cells():
    resnet = parse_nb201(RESNET_CELL).connectivity()
    assert (resnet.depth, resnet.width) == (1.0, 1.0)
    assert resnet.num_paths == 4 and resnet.kept_paths == 2
    assert keep_cell(resnet.depth, resnet.width)
    conv = parse_nb201(ALL_CONV3_CELL).connectivity()
    assert (conv.depth, conv.width) == (2.0, 2.0)
    assert sorted(conv.path_depths) == [1, 2, 2, 3]
    assert keep_cell(conv.depth, conv.width)


def test_nb201_arch_string_round_trip():
    ops = ["nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "skip_connect"]
    assert nb201_arch_string(ops) == RESNET_CELL
    cell = parse_nb201(RESNET_CELL)
    assert [e.op for e in cell.edges] == ops
    assert [(e.src, e.dst) for e in cell.edges] == list(NB201_EDGES)


def test_every_route_broken_gives_zero():
    result = parse_nb201("|none~0|+|none~0|skip_connect~1|+|none~0|nor_conv_3x3~1|none~2|").connectivity()
    assert (result.depth, result.width, result.kept_paths) == (0.0, 0.0, 0)
    assert rejection_reason(result.depth, result.width) == "no_depth"


# --------------------------------------------------------------------------------------------- supernet


def test_supernet_without_none_reference_value():
    ops = [op for op in NB201_OPS if op != "none"]
    result = nb201_supernet_connectivity({edge: ops for edge in NB201_EDGES})
    assert result.depth == pytest.approx(1.0)
    assert result.width == pytest.approx(2.875)


@pytest.mark.parametrize("seed", range(5))
def test_supernet_reduces_to_cell_for_one_op_per_edge(seed):
    ops = list(itertools.product(NB201_OPS, repeat=6))[seed * 3001]
    single = nb201_supernet_connectivity({edge: [op] for edge, op in zip(NB201_EDGES, ops)})
    cell = parse_nb201(nb201_arch_string(ops)).connectivity()
    assert single.depth == pytest.approx(cell.depth)
    assert single.width == pytest.approx(cell.width)


def test_supernet_edge_without_ops_is_broken():
    result = supernet_connectivity(2, {(0, 1): []})
    assert (result.depth, result.width, result.kept_paths) == (0.0, 0.0, 0.0)


def test_pruning_search_scores_36_instead_of_54_candidates():
    def score(supernet):
        # Deterministic stand-in for a training-free score: prefer supernets with more convolutions.
        return sum(op.startswith("nor_conv") for ops in supernet.values() for op in ops)

    guided = prune_nb201_supernet(score)
    plain = prune_nb201_supernet(score, reserve_per_edge=0)
    assert guided.evaluations == 36 and guided.skipped == 18
    assert plain.evaluations == 54 and plain.skipped == 0
    assert len(guided.history) == 3 and all(len(round_) == 6 for round_ in guided.history)
    assert prune_nb201_supernet(score) == guided  # deterministic, ties broken by op order
    parse_nb201(guided.arch)


def test_pruning_search_prunes_the_highest_score_outside_the_reserve_nearest_the_centroid():
    def convs(supernet):
        return sum(op.startswith("nor_conv") for ops in supernet.values() for op in ops)

    # pruning the highest score removes what the score values least: every edge ends with a conv, and of the two
    # convs (equal scores) the first listed, nor_conv_1x1, goes first
    for reserve in (0, 2):
        result = prune_nb201_supernet(convs, reserve_per_edge=reserve)
        assert result.arch == ALL_CONV3_CELL
    # round 1: on each edge the two candidates whose removal leaves the supernet nearest the centroid of the four
    # (depth, width) points are reserved, unscored and unpruned
    ops = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    full = {edge: ops for edge in NB201_EDGES}
    first_round = dict(prune_nb201_supernet(convs).history[0])
    for edge in NB201_EDGES:
        points = {op: nb201_supernet_connectivity({**full, edge: tuple(o for o in ops if o != op)}) for op in ops}
        cd = sum(p.depth for p in points.values()) / 4
        cm = sum(p.width for p in points.values()) / 4
        dist = {op: (p.depth - cd) ** 2 + (p.width - cm) ** 2 for op, p in points.items()}
        farther = sorted(ops, key=lambda op: dist[op])[2:]
        assert first_round[edge] in farther
        # of the two left, the one whose removal keeps more convolutions is pruned (a non-conv where there is one)
        left_scores = {op: convs({**full, edge: tuple(o for o in ops if o != op)}) for op in farther}
        assert left_scores[first_round[edge]] == max(left_scores.values())


# --------------------------------------------------------------------------------------------- MLP DAGs


@pytest.mark.parametrize(
    ("encoding", "paths", "depth", "width"),
    [("2_02_002", 1, 3.0, 1 / 3), ("1_01_222", 3, 1.0, 3.0), ("2_21_112", 4, 1.25, 2.4)],
)
def test_paper_mlp_dags(encoding, paths, depth, width):
    result = parse_mlp_dag(encoding).connectivity()
    assert result.kept_paths == paths
    assert result.depth == pytest.approx(depth)
    assert result.width == pytest.approx(width)
    assert round(result.width, 3) == round(width, 3)


# --------------------------------------------------------------------------------------------- DARTS


def test_darts_genotype_maps_both_inputs_to_the_source():
    cell = parse_darts_genotype(DARTS_V2)
    assert cell.num_nodes == 6  # merged inputs, four intermediate nodes, concat output
    result = cell.connectivity()
    # Paths per concatenated node: 2 (sep, sep) + 2 (sep, sep) + 2 (sep, skip) + 3 (skip, dil after 2 seps).
    assert sorted(result.path_depths) == [0, 0, 1, 1, 1, 1, 1, 2, 2]
    assert (result.depth, result.width) == (1.0, 7.0)
    as_list = parse_darts_genotype(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
    )  # fmt: skip
    assert as_list == cell
    ranged = parse_darts_genotype(DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)"))
    assert ranged == cell


def test_darts_op_kinds_and_concat():
    cell = parse_darts_genotype("[('max_pool_3x3', 0), ('none', 1), ('dil_conv_5x5', 2), ('avg_pool_3x3', 1)]", [3])
    kinds = {e.op: e.kind for e in cell.edges}
    assert kinds == {
        "max_pool_3x3": EdgeKind.NONPARAM,
        "none": EdgeKind.BROKEN,
        "dil_conv_5x5": EdgeKind.PARAM,
        "avg_pool_3x3": EdgeKind.NONPARAM,
        "concat": EdgeKind.NONPARAM,
    }
    assert cell.connectivity().path_depths == (1, 0)


# --------------------------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("", "empty NAS-Bench-201 arch string"),
        ("nor_conv_3x3~0", "must look like '|op~src|...|'"),
        ("|nor_conv_3x3~0|+|none~0|", "must list one edge from each of nodes 0..1"),
        ("|conv_3x3~0|", "unknown NAS-Bench-201 op 'conv_3x3'"),
        ("|skip_connect0|", "malformed NAS-Bench-201 edge 'skip_connect0'"),
        ("|skip_connect~\u00b2|", "malformed NAS-Bench-201 edge 'skip_connect~\u00b2'"),  # a digit int() refuses
        ("|skip_connect~1|", "must list one edge from each of nodes 0..0"),
    ],
)
def test_nb201_invalid(arch, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace(".", r"\.").replace("(", r"\(")):
        parse_nb201(arch)


@pytest.mark.parametrize(
    ("arch", "groups"),
    [
        ("|nor_conv_3x3~0|", 1),
        ("|nor_conv_3x3~0|+|none~0|skip_connect~1|", 2),
        (RESNET_CELL + "+|none~0|none~1|none~2|none~3|", 4),
        (RESNET_CELL + "+|none~0|none~1|none~2|none~3|+|none~0|none~1|none~2|none~3|none~4|", 5),
    ],
)
def test_nb201_needs_exactly_three_groups(arch, groups):
    with pytest.raises(
        ValueError, match=rf"has {groups} '\+'-separated group\(s\) but a NAS-Bench-201 cell has exactly 3"
    ):
        parse_nb201(arch)


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("", "empty DAG encoding"),
        ("2_2", "row 2 is '2' but must have 2 digits"),
        ("3", "'3' in row 1 is not 0, 1 or 2"),
    ],
)
def test_mlp_dag_invalid(encoding, message):
    with pytest.raises(ValueError, match=message):
        parse_mlp_dag(encoding)


@pytest.mark.parametrize(
    ("genotype", "message"),
    [
        ("", "empty DARTS genotype"),
        ("[('sep_conv_3x3', 0)]", "has 1 edges; a normal cell has two per intermediate node"),
        ("[('conv_7x7', 0), ('skip_connect', 1)]", "unknown DARTS op 'conv_7x7'"),
        ("[('skip_connect', 0), ('skip_connect', 2)]", "its input must be one of 0..1"),
        ("[('skip_connect', 0), (", "malformed DARTS genotype"),
        ("Genotype(reduce=[])", "has no normal"),
    ],
)
def test_darts_invalid(genotype, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_darts_genotype(genotype)


def test_cell_rejects_backward_edges():
    with pytest.raises(ValueError, match="must satisfy 0 <= src < dst < num_nodes"):
        Cell(3, (Edge(2, 1, EdgeKind.PARAM),))


# --------------------------------------------------------------------------------------------- DAG MLP kernels


def test_dag_mlp_structure_and_init():
    model = DagMLP("2_21_112", in_features=12, width=16, num_classes=3)
    assert sorted(model.edges) == ["0_1", "0_2", "2_3"]
    assert model(torch.randn(5, 3, 4)).shape == (5, 3)  # inputs are flattened
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.all(m.bias == 0)
    # ANALYSIS.md: kaiming normal (fan_in, relu): std sqrt(2 / in) for the stem and the edges
    torch.manual_seed(0)
    wide = DagMLP("2_21_112", in_features=100, width=1024, num_classes=1)
    for linear in (wide.stem, wide.edges["0_1"]):
        std = float(linear.weight.detach().std())
        assert std == pytest.approx((2 / linear.in_features) ** 0.5, rel=0.02), std
    # Node 3 of '0_00_002' only reads node 2, which has no live incoming edge: zero features.
    dead = DagMLP("0_00_002", in_features=4, width=8, num_classes=2)
    assert torch.all(dead.features(torch.randn(3, 4)) == 0)


@pytest.mark.parametrize("encoding", PAPER_DAGS.values())
def test_linear_ntk_equals_torch_func_jacobian_ntk(encoding):
    torch.manual_seed(0)
    model = DagMLP(encoding, in_features=10, width=32, num_classes=3).double()
    x = random_unit_inputs(12, 10, seed=1)
    fast = empirical_ntk(model, x, method="linear")
    reference = empirical_ntk(model, x, method="jacobian", chunk_size=5)
    torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-10)
    assert nngp_gram(model, x).shape == (12, 12)


def test_linear_ntk_refuses_other_models():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    with pytest.raises(ValueError, match="use method='jacobian'"):
        empirical_ntk(model, torch.randn(3, 4), method="linear")
    assert empirical_ntk(model.double(), torch.randn(3, 4, dtype=torch.float64)).shape == (3, 3)


def test_paper_dag_kernel_eigenvalues_rank_like_convergence_speed():
    # ANALYSIS.md: width 1024, 64 unit-norm inputs of dim 100, 3 seeds, NTK of the single output.
    study = dag_kernel_study()
    dag1, dag2, dag3 = (study[enc] for enc in PAPER_DAGS.values())
    assert dag1.nngp < dag2.nngp < dag3.nngp
    assert dag1.ntk < dag2.ntk < dag3.ntk
    for value, reference in [
        (dag1.nngp, 0.0009),
        (dag2.nngp, 0.0047),
        (dag3.nngp, 0.0056),
        (dag1.ntk, 18),
        (dag2.ntk, 22),
        (dag3.ntk, 36),
    ]:
        assert value == pytest.approx(reference, rel=0.1)  # "about": three seeds of a random init
    # Normalised by the mean diagonal, #2 and #3 swap.
    assert dag2.nngp_normalized > dag3.nngp_normalized
    assert dag2.ntk_normalized > dag3.ntk_normalized


def test_smallest_eigenvalue_normalises_by_the_mean_diagonal():
    kernel = torch.tensor([[2.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    assert smallest_eigenvalue(kernel) == pytest.approx(3 - 2**0.5)  # (6 - sqrt(8)) / 2
    assert smallest_eigenvalue(kernel, normalize=True) == pytest.approx((3 - 2**0.5) / 3)  # mean diagonal 3
    # a non-symmetric kernel counts by its symmetric part
    assert smallest_eigenvalue(torch.tensor([[2.0, 0.0], [2.0, 4.0]], dtype=torch.float64)) == pytest.approx(3 - 2**0.5)


def test_a_disconnected_dag_or_a_zero_kernel_is_refused_in_words():
    """A DAG whose output no path reaches has zero kernels: the normalised eigenvalue divided 0 by 0, and eigvalsh
    then failed with 'The algorithm failed to converge' on the NaNs."""
    with pytest.raises(ValueError, match=r"mean diagonal is 0.*normalize=False"):
        smallest_eigenvalue(torch.zeros(3, 3, dtype=torch.float64), normalize=True)
    assert smallest_eigenvalue(torch.zeros(3, 3, dtype=torch.float64)) == 0.0
    dead = DagMLP("0_00_002", in_features=4, width=8, num_classes=1).double()
    with pytest.raises(ValueError, match="DAG '0_00_002': no path of live edges"):
        kernel_eigenvalues(dead, random_unit_inputs(5, 4, seed=0, dtype=torch.float64))
    with pytest.raises(ValueError, match="DAG '0_00_000'"):
        dag_kernel_study(["2_21_112", "0_00_000"], width=8, in_features=4, num_inputs=5, seeds=(0,))


def test_dag_kernel_study_averages_its_seeds():
    encodings = tuple(PAPER_DAGS.values())[:2]
    kwargs = dict(width=16, in_features=8, num_inputs=6)
    both = dag_kernel_study(encodings, seeds=(0, 1), **kwargs)
    single = [dag_kernel_study(encodings, seeds=(seed,), **kwargs) for seed in (0, 1)]
    fields = ("nngp", "nngp_normalized", "ntk", "ntk_normalized")
    for enc in encodings:
        for field in fields:
            mean = (getattr(single[0][enc], field) + getattr(single[1][enc], field)) / 2
            assert getattr(both[enc], field) == pytest.approx(mean, rel=1e-12)
        # one seed is kernel_eigenvalues of the model built after manual_seed(seed) on random_unit_inputs(seed)
        x = random_unit_inputs(6, 8, seed=1, dtype=torch.float64)
        torch.manual_seed(1)
        model = DagMLP(enc, 8, 16, 1).double()
        values = kernel_eigenvalues(model, x)
        assert [getattr(values, f) for f in fields] == pytest.approx([getattr(single[1][enc], f) for f in fields])


def test_dag_kernel_study_refuses_a_repeated_encoding_and_no_seeds():
    """Results are keyed by encoding: a repeated one was summed twice (twice its eigenvalues); no seeds gave zeros."""
    kwargs = dict(width=8, in_features=4, num_inputs=5)
    with pytest.raises(ValueError, match="^encodings repeat '2_21_112': each encoding has one entry in the result"):
        dag_kernel_study(["2_21_112", "1_11_111", "2_21_112"], seeds=(0,), **kwargs)
    with pytest.raises(ValueError, match=r"^seeds is empty: .* pass at least one, e\.g\. \(0,\)"):
        dag_kernel_study(["2_21_112"], seeds=(), **kwargs)
    with pytest.raises(TypeError, match=r"got the string '2_21_112'; pass \['2_21_112'\]"):
        dag_kernel_study("2_21_112", seeds=(0,), **kwargs)
    # iterators are read once, as the sequences they list
    listed = dag_kernel_study(["2_21_112", "1_11_111"], seeds=(0, 1), **kwargs)
    assert dag_kernel_study(iter(["2_21_112", "1_11_111"]), seeds=iter((0, 1)), **kwargs) == listed


# --------------------------------------------------------------------------------------------- mutation audit


def test_op_kinds_follow_the_spec():
    # ANALYSIS.md section 2: broken (none), non-parameterised (skip, any pooling), parameterised (any conv)
    from timm_zerosnet.analysis.connectivity import DARTS_OPS

    for table in (NB201_OPS, DARTS_OPS):
        for op, kind in table.items():
            expected = EdgeKind.BROKEN if op == "none" else EdgeKind.PARAM if "conv" in op else EdgeKind.NONPARAM
            assert kind == expected, op


@pytest.mark.parametrize(
    ("num_nodes", "edges"),
    [
        (1, ()),  # no output node
        (0, ()),
        (3, (Edge(1, 3, EdgeKind.PARAM),)),  # past the output node
        (3, (Edge(1, 1, EdgeKind.PARAM),)),  # a self-loop
        (3, (Edge(-1, 1, EdgeKind.PARAM),)),  # before the input node
    ],
)
def test_cell_needs_input_output_and_forward_edges_inside_it(num_nodes, edges):
    message = "at least an input and an output node|must satisfy 0 <= src < dst < num_nodes"
    with pytest.raises(ValueError, match=message):
        Cell(num_nodes, edges)


@pytest.mark.parametrize("bounds", [(math.nan, 2.51), (0.99, math.nan)])
def test_a_nan_bound_is_named_as_such(bounds):
    """keep_cell(1, 1, (nan, 2.51)) said "depth_range must satisfy lo <= hi, got (nan, 2.51)": the bounds were not
    out of order, one was not a number."""
    for call in (lambda: keep_cell(1.0, 1.0, depth_range=bounds), lambda: enumerate_nb201(width_range=bounds)):
        with pytest.raises(ValueError, match=r"_range must be two numbers \(lo, hi\), got \(.*nan.*\); use -inf"):
            call()


def test_a_range_with_equal_bounds_is_valid():
    # the ranges are inclusive and only lo > hi is an error ("lo <= hi")
    assert keep_cell(1.0, 2.0, depth_range=(1.0, 1.0), width_range=(2.0, 2.0))
    assert rejection_reason(1.0, 2.5, (1.0, 1.0), (2.0, 2.0)) == "too_wide"


@pytest.mark.parametrize("arch", ["|skip_connect~x|+|none~0|none~1|+|none~0|none~1|none~2|", "|skip_connect~-1|"])
def test_nb201_edge_source_must_be_a_node_number(arch):
    with pytest.raises(ValueError, match="malformed NAS-Bench-201 edge 'skip_connect~-?.*': expected 'op~src'"):
        parse_nb201(arch)


def test_darts_genotype_normal_concat_is_honoured_and_the_argument_overrides_it():
    # only nodes 2 and 3 concatenated: each sums sep_conv edges from c_{k-2} and c_{k-1}, i.e. 4 paths with d_p = 1
    two = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3]")
    result = parse_darts_genotype(two).connectivity()
    assert result.path_depths == (1, 1, 1, 1) and (result.depth, result.width) == (1.0, 4.0)
    assert parse_darts_genotype(two, concat=[2, 3, 4, 5]) == parse_darts_genotype(DARTS_V2)
    assert parse_darts_genotype(DARTS_V2, concat=[2, 3]) == parse_darts_genotype(two)


@pytest.mark.parametrize(
    ("pairs", "concat", "message"),
    [
        ([("skip_connect", 0), ("skip_connect", True)], None, "its input must be one of 0..1"),
        ([("skip_connect", 0), ("skip_connect", 1)], [3], "concat node 3 is not an intermediate node"),
        ([("skip_connect", 0), ("skip_connect", 1)], [1], "concat node 1 is not an intermediate node"),
        ([(3, 0), ("skip_connect", 1)], None, "expected an \\(op, input_node\\) pair"),
    ],
)
def test_darts_rejects_bad_inputs_and_concat_nodes(pairs, concat, message):
    with pytest.raises(ValueError, match=message):
        parse_darts_genotype(pairs, concat)


_TWO_NODES = [("sep_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 2), ("skip_connect", 0)]  # DARTS nodes 2, 3


@pytest.mark.parametrize(
    ("concat", "message"),
    [
        ([], "is empty, so no node reaches the cell output"),  # the default replaced it; an argument gave d = 0
        (range(3, 3), "is empty, so no node reaches the cell output"),
        ([2, 3, 2], r"\[2, 3, 2\] names node 2 twice"),  # its paths were counted twice
        ([True, 3], "node True is not an intermediate node; use int ids 2..3"),
        ([2.0, 3], "node 2.0 is not an intermediate node; use int ids 2..3"),
        (range(4), "node 0 is not an intermediate node; use int ids 2..3"),
        (5, "is 5, not a list of node ids"),  # a TypeError from list()
    ],
    ids=str,
)
@pytest.mark.parametrize("where", ["argument", "genotype"])
def test_darts_concat_must_name_distinct_intermediate_nodes(concat, message, where):
    """The concat nodes, as the concat argument or as a Genotype's normal_concat, are distinct int ids of
    intermediate nodes, at least one; the error names the field and the allowed ids."""
    if where == "argument":
        call, field = (lambda: parse_darts_genotype(_TWO_NODES, concat)), "concat"
    else:
        genotype = f"Genotype(normal={_TWO_NODES!r}, normal_concat={concat!r}, reduce=[], reduce_concat=[2])"
        call, field = (lambda: parse_darts_genotype(genotype)), "normal_concat"
    with pytest.raises(ValueError, match=f"^DARTS {field} {message}") as refused:
        call()
    assert "2..3" in str(refused.value)


def test_darts_concat_takes_ranges_of_valid_nodes_and_refuses_malformed_ones():
    """range(...) as DARTS' genotypes.py writes it is the list it stands for; one that is no range of ints is
    refused as malformed (it was a TypeError from range())."""
    as_list = parse_darts_genotype(_TWO_NODES, [3])
    assert parse_darts_genotype(_TWO_NODES, range(3, 4)) == as_list
    genotype = f"Genotype(normal={_TWO_NODES!r}, normal_concat=range(3, 4), reduce=[], reduce_concat=[2])"
    assert parse_darts_genotype(genotype) == as_list
    assert parse_darts_genotype(genotype.replace("range(3, 4)", "range(2, 4)")) == parse_darts_genotype(_TWO_NODES)
    for bad in ("range(2.0, 4)", "range()", "range(start=2)"):
        with pytest.raises(ValueError, match=rf"malformed DARTS genotype .*: {re.escape(bad)} is not a range of ints"):
            parse_darts_genotype(genotype.replace("range(3, 4)", bad))


def test_nb201_supernet_default_holds_all_five_ops():
    # every edge: P(broken) = 1/5, P(non-param) = P(param) = 2/5; a route of L edges keeps mass (4/5)^L, weighs its
    # depth by L (2/5)(4/5)^(L-1) and has a parameterised edge with probability (4/5)^L - (2/5)^L
    routes = (3, 2, 2, 1)  # 0->1->2->3, 0->1->3, 0->2->3, 0->3
    mass = sum(0.8**n for n in routes)
    depth = sum(n * 0.4 * 0.8 ** (n - 1) for n in routes) / mass
    width = sum(0.8**n - 0.4**n for n in routes) / depth
    result = nb201_supernet_connectivity()
    assert (result.depth, result.width, result.kept_paths) == pytest.approx((depth, width, mass))
    assert result == nb201_supernet_connectivity({edge: list(NB201_OPS) for edge in NB201_EDGES})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reserve_per_edge": -1}, "reserve_per_edge must be >= 0"),
        ({"ops": ("skip_connect", "skip_connect", "nor_conv_3x3")}, "ops must be distinct names"),
        ({"ops": ()}, "ops must be distinct names"),
        ({"ops": ("conv_7x7", "skip_connect")}, "ops must be distinct names"),
    ],
)
def test_pruning_search_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune_nb201_supernet(lambda supernet: 0.0, **kwargs)


@pytest.mark.parametrize("nan_call", [1, 2, 7])
def test_pruning_search_names_a_nan_score(nan_call):
    """A NaN score is refused by edge and op: as the first of an edge's candidates it was a bare StopIteration, as a
    later one it was skipped and another candidate pruned."""
    calls = []

    def score(supernet):
        calls.append(supernet)
        return float("nan") if len(calls) == nan_call else float(len(calls))

    ops = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    with pytest.raises(ValueError, match="score is NaN") as refused:
        prune_nb201_supernet(score, ops=ops, reserve_per_edge=0)
    (edge,) = [edge for edge in NB201_EDGES if calls[-1][edge] != ops]
    (op,) = set(ops) - set(calls[-1][edge])
    assert len(calls) == nan_call
    assert f"supernet without {op!r} on edge {edge[0]}->{edge[1]} (round 1)" in str(refused.value)


def test_pruning_search_names_a_score_that_is_not_a_number():
    """A score function returning None failed with math.isnan's 'must be real number, not NoneType'."""
    with pytest.raises(TypeError, match=r"^score returned None for the supernet without 'skip_connect' on edge 0->1"):
        prune_nb201_supernet(lambda supernet: None)
    # numbers of other types (numpy, 0-d tensors) are scores like floats
    assert prune_nb201_supernet(lambda s: torch.tensor(1.0)) == prune_nb201_supernet(lambda s: 1.0)


@pytest.mark.parametrize("reserve", [1.5, 2.0, "2", True])
def test_pruning_search_needs_a_whole_number_of_reserved_candidates(reserve):
    """reserve_per_edge=1.5 failed deep inside with 'slice indices must be integers or None'."""
    with pytest.raises(TypeError, match=f"reserve_per_edge must be a whole number of candidates .*, got {reserve!r}"):
        prune_nb201_supernet(lambda supernet: 0.0, reserve_per_edge=reserve)


def test_supernet_rejects_unknown_ops():
    with pytest.raises(ValueError, match="unknown op 'conv_7x7' on edge 0->1"):
        nb201_supernet_connectivity({(0, 1): ["conv_7x7"]})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Cell(3, (Edge(0, 2, "conv"),)), "edge 0->2: kind 'conv' is not an edge kind; use EdgeKind.BROKEN"),
        (lambda: Cell(3, (Edge(0, 2, 3),)), "edge 0->2: kind 3 is not an edge kind"),
        (lambda: Cell(3, (Edge(0, 2, True),)), "edge 0->2: kind True is not an edge kind"),
        (lambda: Cell(3, (Edge(0.0, 2, EdgeKind.PARAM),)), "edge 0.0->2: node ids are ints, got src=0.0"),
        (lambda: Cell(2.5, ()), "num_nodes is the number of nodes of the cell, an int >= 2, got 2.5"),
        (lambda: supernet_connectivity(2, {(0, 1): "skip_connect"}), "must be a list of op names, got the string"),
        (lambda: supernet_connectivity(2, {(0, 1): ["x"]}, {"x": 5}), "op_kinds['x'] = 5 is not an edge kind"),
        (
            lambda: nb201_supernet_connectivity({(0, 1): ["nor_conv_3x3"], (0, 3): ["skip_connect"]}),
            "edge_ops gives no ops for 0->2, 1->2, 1->3, 2->3; give every edge its active ops",
        ),
    ],
    ids=["str-kind", "int-kind-3", "bool-kind", "float-node", "float-nodes", "str-ops", "bad-op-kind", "nb201-missing"],
)
def test_cells_and_supernets_refuse_what_they_would_misread(call, message):
    """Edge(0, 2, 'conv') and kind 3 counted as non-parameterised edges (d = 0 for a conv) and an op kind 5 gave its
    edge probability 0 of every kind, all without a word; a float node id or node count failed with Python's bare
    'list indices must be integers'; a string of ops was read letter by letter ("unknown op 's'"); and an NAS-Bench-201
    supernet without some of its six edges was measured on another skeleton. (Integers 0..2 are kinds: Edge(0, 1, 2)
    is a parameterised edge.)"""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
    assert Cell(2, (Edge(0, 1, 2),)).connectivity().depth == 1.0


class _SharedLinear(torch.nn.Module):
    """One nn.Linear applied twice: its NTK block has cross terms between the two calls."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(torch.relu(self.lin(x)))


@pytest.mark.parametrize(
    "make",
    [_SharedLinear, lambda: torch.nn.Sequential(torch.nn.Unflatten(1, (2, 2)), torch.nn.Linear(2, 3))],
    ids=["linear-applied-twice", "linear-on-3d-input"],
)
def test_ntk_of_models_outside_the_linear_shortcut_falls_back_to_the_jacobian(make):
    # empirical_ntk: 'linear' needs every Linear applied once to a 2-D input; 'auto' must then use 'jacobian'
    torch.manual_seed(0)
    model = make().double()
    x = random_unit_inputs(5, 4, seed=3)
    with pytest.raises(ValueError, match="does not qualify for the 'linear' NTK method"):
        empirical_ntk(model, x, method="linear")
    reference = empirical_ntk(model, x, method="jacobian")
    torch.testing.assert_close(empirical_ntk(model, x), reference, rtol=1e-10, atol=1e-10)


def test_ntk_rejects_an_unknown_method():
    model = DagMLP(PAPER_DAGS["dag3"], in_features=4, width=8, num_classes=1).double()
    with pytest.raises(ValueError, match="unknown NTK method 'exact'; use 'auto', 'linear' or 'jacobian'"):
        empirical_ntk(model, random_unit_inputs(3, 4), method="exact")


def test_kernel_eigenvalues_normalise_each_kernel_by_its_own_mean_diagonal():
    torch.manual_seed(0)
    model = DagMLP(PAPER_DAGS["dag3"], in_features=8, width=16, num_classes=1).double()
    x = random_unit_inputs(6, 8, seed=2)
    values = kernel_eigenvalues(model, x)
    for raw, normalized, kernel in (
        (values.nngp, values.nngp_normalized, nngp_gram(model, x)),
        (values.ntk, values.ntk_normalized, empirical_ntk(model, x)),
    ):
        mean_diag = float(torch.diagonal(kernel).mean())
        assert raw == pytest.approx(float(torch.linalg.eigvalsh(kernel)[0]))
        assert normalized == pytest.approx(raw / mean_diag)


def test_dag_kernel_study_restores_the_global_rng_state():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    dag_kernel_study(tuple(PAPER_DAGS.values())[:1], width=8, in_features=4, num_inputs=3, seeds=(0, 1))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("rows", [24, 60])
def test_a_large_dag_is_counted_not_enumerated(rows):
    """The paths of a dense DAG double with every node: 24 rows of Linear+ReLU edges have 2^23 = 8,388,608 paths,
    which took minutes to enumerate (and the CLI printed all their depths on one 24 MB line); 60 rows would never
    finish. d and m are now counted node by node: a path through k of the inner nodes has depth k + 1, so
    d = 1 + (rows - 1) / 2 and m = 2^(rows - 1) / d."""
    encoding = "_".join("2" * row for row in range(1, rows + 1))
    result = parse_mlp_dag(encoding).connectivity()
    paths = 2 ** (rows - 1)
    assert result.num_paths == result.kept_paths == paths
    assert result.depth == 1 + (rows - 1) / 2 and result.width == paths / result.depth
    assert result.path_depths == ()  # too many to list (MAX_LISTED_PATHS)


def test_counted_connectivity_equals_the_enumerated_paths():
    """The counts give the same floats as averaging the listed depths, broken edges and parallel edges included."""
    for rows in range(1, 5):
        for encoding in itertools.islice(
            ("_".join(d) for d in itertools.product(*(_rows(r) for r in range(1, rows + 1)))), 0, None, 7
        ):
            cell = parse_mlp_dag(encoding)
            result = cell.connectivity()
            paths = cell.paths()
            depths = [
                sum(e.kind == EdgeKind.PARAM for e in p) for p in paths if EdgeKind.BROKEN not in (e.kind for e in p)
            ]
            assert result.num_paths == len(paths) and result.kept_paths == len(depths), encoding
            assert result.path_depths == tuple(depths), encoding
            mean = sum(depths) / len(depths) if depths else 0.0
            assert result.depth == mean and result.width == (sum(d > 0 for d in depths) / mean if mean else 0.0)
    darts = parse_darts_genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("none", 2)])
    assert darts.connectivity().path_depths == (1, 1, 0)


def test_a_chain_longer_than_the_recursion_limit():
    """Cell.paths walked the DAG recursively: a 1,500-node chain raised RecursionError (also through the CLI's
    --darts), where d = 1499 and m = 1 / 1499."""
    n = 1500
    cell = Cell(n, tuple(Edge(i, i + 1, EdgeKind.PARAM) for i in range(n - 1)))
    result = cell.connectivity()
    assert result.depth == n - 1 and result.width == 1 / (n - 1) and result.path_depths == (n - 1,)
    assert [len(p) for p in cell.paths()] == [n - 1]


def _rows(length: int) -> list[str]:
    return ["".join(digits) for digits in itertools.product("012", repeat=length)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: DagMLP("2_21_112", 100, -5, 1), "width must be a positive int, got -5"),
        (lambda: DagMLP("2_21_112", 100, 2.5, 1), "width must be a positive int, got 2.5"),
        (lambda: DagMLP("2_21_112", 0, 8, 1), "in_features must be a positive int, got 0"),
        (lambda: DagMLP("2_21_112", 10, 8, True), "num_classes must be a positive int, got True"),
        (lambda: _study(num_inputs=0), "num_inputs must be a positive int, got 0"),
        (lambda: _study(num_inputs=-1), "num_inputs must be a positive int, got -1"),
        (lambda: _study(in_features=0), "in_features must be a positive int, got 0"),
        (lambda: _study(num_classes=0), "num_classes must be a positive int, got 0"),
        (lambda: _study(seeds=(0.5,)), "a seed must be an int, got 0.5; pass e.g. seeds=(0, 1, 2)"),
        (lambda: _study(seeds="01"), "a seed must be an int, got '0'"),
        (lambda: _study(dtype=torch.int64), "dtype must be a floating-point torch dtype"),
        (
            lambda: kernel_eigenvalues(DagMLP("2_21_112", 10, 8, 1).double(), random_unit_inputs(4, 7)),
            "inputs of shape (4, 7) and dtype torch.float64 do not fit DagMLP '2_21_112', which takes a batch of 10",
        ),
        (
            lambda: kernel_eigenvalues(DagMLP("2_21_112", 10, 8, 1), random_unit_inputs(4, 10)),
            "which takes a batch of 10 features in torch.float32; pass e.g. random_unit_inputs(64, 10, dtype=torch.flo",
        ),
    ],
    ids=[
        "negative-width",
        "float-width",
        "zero-in-features",
        "bool-classes",
        "no-inputs",
        "negative-inputs",
        "study-zero-features",
        "study-zero-classes",
        "float-seed",
        "string-seeds",
        "integer-dtype",
        "wrong-input-size",
        "wrong-input-dtype",
    ],
)
def test_the_dag_mlp_study_refuses_sizes_seeds_and_inputs_that_cannot_work(call, message):
    """These ended in torch's 'Trying to create tensor with negative dimension -5', 'manual_seed expected a long',
    'normal_kernel_cpu not implemented for Long' or 'mat1 and mat2 shapes cannot be multiplied', and num_inputs=0 or
    in_features=0 blamed the DAG: "no path of live edges leads from the input ... e.g. '2_21_112'" for '2_21_112'."""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def _study(**kwargs):
    settings = dict(width=8, in_features=5, num_inputs=4, seeds=(0,)) | kwargs
    return dag_kernel_study(["2_21_112"], **settings)
