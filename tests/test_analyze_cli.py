"""zerosnet-analyze: output, JSON, plots and one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
import os
import runpy
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from timm_zerosnet.analysis import cli
from timm_zerosnet.analysis.stability import zeros_coefficients
from timm_zerosnet.run_layout import WEIGHT_FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# --------------------------------------------------------------------------------------------- stability


def test_stability_lambda_text(capsys):
    code, out, err = run(capsys, "stability", "--lam", "-1.8")
    assert code == 0 and err == ""
    assert "zero stable: yes" in out
    assert "consistency order: 2" in out
    assert "largest spurious |z| = 0.333333" in out


def test_stability_lambda_json_is_exact_for_decimal_input(capsys):
    payload = run_json(capsys, "stability", "--lam", "-1.8")
    assert payload["zero_stable"] is True
    assert payload["exact"] is True  # '-1.8' is read as the fraction -9/5
    assert payload["max_spurious_modulus"] == pytest.approx(1 / 3, abs=1e-12)
    assert payload["param"] == {"lam": -1.8}


def test_stability_given_coefficients(capsys):
    payload = run_json(capsys, "stability", "--coefficients", "1", "1", "1", "1")
    assert payload["zero_stable"] is False
    assert payload["max_modulus"] == pytest.approx(1.839, abs=1e-3)
    assert payload["consistent"] is False
    code, out, _ = run(capsys, "stability", "--coefficients", "1", "1", "1", "1")
    assert code == 0 and "zero stable: NO" in out and "not consistent" in out


@pytest.mark.parametrize(("k", "stable"), [("0.5", True), ("1", True), ("-1", False), ("1.5", False)])
def test_stability_lm(capsys, k, stable):
    assert run_json(capsys, "stability", "--lm-k", k)["zero_stable"] is stable


def test_stability_euler(capsys):
    payload = run_json(capsys, "stability", "--euler")
    assert payload["zero_stable"] is True and payload["consistency_order"] == 1


def test_stability_scan(capsys):
    payload = run_json(capsys, "stability", "--scan", "-3", "3")
    assert payload["intervals"] == [[-3.0, -1.0], [0.34, 3.0]]
    assert payload["mismatches"] == []
    lm = run_json(capsys, "stability", "--scan", "-3", "3", "--family", "lm")
    assert lm["region"] == "-1 < k <= 1"
    code, out, _ = run(capsys, "stability", "--scan", "-3", "3")
    assert code == 0 and "scan agrees with the exact region" in out


def test_stability_plots(capsys, tmp_path):
    roots_png = tmp_path / "roots.png"
    code, _, err = run(capsys, "stability", "--coefficients", "1", "1", "1", "1", "--plot", str(roots_png))
    assert code == 0, err
    assert roots_png.read_bytes()[:8] == PNG_MAGIC
    scan_png = tmp_path / "sub" / "scan.png"
    code, _, err = run(capsys, "stability", "--scan", "-3", "3", "--plot", str(scan_png))
    assert code == 0, err
    assert scan_png.read_bytes()[:8] == PNG_MAGIC


def test_a_root_too_large_for_a_plot_is_drawn_on_its_edge(capsys, tmp_path):
    """LM-ResNet k = 1e308 has the root -1e308: matplotlib's axis arithmetic overflowed and --plot failed with
    'cannot convert float NaN to integer'. The root is now drawn on the edge of the plot, labelled off scale."""
    from matplotlib.figure import Figure

    labels = []
    real_add_subplot = Figure.add_subplot

    def add_subplot(self, *args, **kwargs):  # collect the annotations of the roots plot
        ax = real_add_subplot(self, *args, **kwargs)
        annotate = ax.annotate
        ax.annotate = lambda text, *a, **k: (labels.append(text), annotate(text, *a, **k))[1]
        return ax

    roots_png = tmp_path / "roots.png"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "add_subplot", add_subplot)
        code, out, err = run(capsys, "stability", "--lm-k", "1e308", "--plot", str(roots_png))
    assert code == 0, err
    assert "roots: 1 (principal), -1e+308 (|z| = 1e+308)" in out
    assert roots_png.read_bytes()[:8] == PNG_MAGIC
    assert labels == ["|z| = 1e+308 (off scale)"]


def test_an_export_folder_is_analysed_with_its_options_through_local_dir(capsys, tmp_path):
    """--checkpoint of an export folder read its weights into the default lambda (the folder's config.json has
    lam=-1.5); it is refused, and --model local-dir:DIR analyses the export with its options and weights."""
    from timm.models import save_for_hf

    model = timm.create_model("zerosnet20_cifar", num_classes=10, lam=-1.5)
    save_for_hf(model, tmp_path / "export", model_args={"lam": -1.5}, safe_serialization=True)
    (tmp_path / "export" / "release.json").write_text("{}")
    code, _, err = run(capsys, "stability", "--model", "zerosnet20_cifar", "--checkpoint", str(tmp_path / "export"))
    assert code == 2 and f"analyse it as --model local-dir:{tmp_path / 'export'} (no --checkpoint)" in err
    payload = run_json(capsys, "stability", "--model", f"local-dir:{tmp_path / 'export'}")
    expected = [float(c) for c in zeros_coefficients(-1.5)[:3]]
    assert payload["blocks"][-1]["a"] == pytest.approx(expected)
    # a _tra export: its trained lambda is in the weights, which local-dir: loads
    tra = timm.create_model("zerosnet20_tra_cifar", num_classes=10)
    with torch.no_grad():
        for name, p in tra.named_parameters():
            if name.endswith(".lam"):
                p.fill_(-1.2)
    save_for_hf(tra, tmp_path / "tra", safe_serialization=True)
    payload = run_json(capsys, "stability", "--model", f"local-dir:{tmp_path / 'tra'}")
    assert payload["blocks"][-1]["a"] == pytest.approx([float(c) for c in zeros_coefficients(-1.2)[:3]])


def test_a_plot_never_overwrites_a_file_that_is_not_a_plot_or_a_run_file(capsys, tmp_path):
    """--plot replaced whatever file it named with PNG bytes (weights, a run's curves.png): now only an earlier plot
    is replaced, a run's files and training states never, and the name must end in .png; all refused before any
    work, with the file as it was."""
    weights = tmp_path / "victim.safetensors"
    notes = tmp_path / "notes.png"  # a .png that is not an image
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"model": "zerosnet20_cifar"}))
    curves = run_dir / "curves.png"
    folder = tmp_path / "plots.png"
    folder.mkdir()
    for path, data in ((weights, b"weights"), (notes, b"my notes"), (curves, PNG_MAGIC + b"curves")):
        path.write_bytes(data)
    before = {p: p.read_bytes() for p in (weights, notes, curves, run_dir / "run.json")}
    for plot, message in (
        (weights, f"--plot {weights}: the plot is written as a PNG image; name a file ending in .png"),
        ("", "--plot needs a file name ending in .png"),
        (notes, f"--plot {notes} exists and is not a PNG image (a plot written earlier); name another file"),
        (curves, f"--plot {curves} would overwrite curves.png of the run in {run_dir}; name a file of its own"),
        (run_dir / "checkpoints" / "r.png", f"is inside {run_dir / 'checkpoints'}, the folder of the training states"),
        (run_dir / "checkpoints", f"--plot {run_dir / 'checkpoints'}: the plot is written as a PNG image"),
        (folder, f"--plot {folder} is a folder; name a file in it"),
    ):
        assert_one_line_error(capsys, ["stability", "--euler", "--plot", str(plot)], message)
    assert {p: p.read_bytes() for p in before} == before and not any((run_dir / "checkpoints").iterdir())
    earlier = tmp_path / "roots.png"
    earlier.write_bytes(PNG_MAGIC + b"an earlier plot")
    for plot in (earlier, run_dir / "roots.png"):  # an earlier plot, and a new file beside a run's records
        code, _, err = run(capsys, "stability", "--euler", "--plot", str(plot))
        assert code == 0, err
        assert plot.read_bytes()[:8] == PNG_MAGIC and len(plot.read_bytes()) > 1000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_a_plot_in_a_runs_folder_of_training_states_says_so(capsys, tmp_path):
    """--plot RUN/checkpoints/x.png said it "would overwrite checkpoints/x.png", a file that did not exist: the
    refusal names the folder of training states it is in."""
    states = tmp_path / "run" / "checkpoints"
    (states / "state-e0001-b000000").mkdir(parents=True)
    (states.parent / "run.json").write_text(json.dumps({"model": "zerosnet20_cifar"}))
    for plot in (states / "x.png", states / "state-e0001-b000000" / "x.png"):
        code, out, err = run(capsys, "stability", "--euler", "--plot", str(plot))
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"--plot {plot} is inside {states}, the folder of the training states of the run in" in err
        assert "name a file outside it" in err and "overwrite" not in err
        assert not plot.exists()


def test_a_plot_path_with_a_tilde_is_written_to_the_file_that_was_checked(capsys, tmp_path, monkeypatch):
    """--plot '~/data.png' (a literal ~) was checked as $HOME/data.png but written to ./~/data.png, over a file there
    that is not a plot: the path is expanded once, and the plot goes to the file that was checked."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    (work / "~").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    literal = work / "~" / "data.png"
    literal.write_bytes(b"my notes")
    code, out, err = run(capsys, "stability", "--lam", "-1.8", "--plot", "~/data.png")
    assert code == 0, err
    assert literal.read_bytes() == b"my notes"
    assert (home / "data.png").read_bytes()[:8] == PNG_MAGIC
    assert f"plot: {home / 'data.png'}" in out.splitlines()
    (home / "notes.png").write_bytes(b"my notes")
    message = f"--plot {home / 'notes.png'} exists and is not a PNG image (a plot written earlier)"
    assert_one_line_error(capsys, ["stability", "--lam", "-1.8", "--plot", "~/notes.png"], message)
    assert (home / "notes.png").read_bytes() == b"my notes" and os.listdir(work / "~") == ["data.png"]


def test_a_scan_too_wide_for_matplotlib_is_plotted_in_units_of_a_power_of_ten(capsys, tmp_path, monkeypatch):
    """--scan -1e308 1e308 --plot failed with matplotlib's 'Singular matrix' (its axis arithmetic overflows), while
    the same scan without --plot worked: such a scan is drawn in units of 1e308, which the axis label names."""
    from timm_zerosnet.analysis import plots

    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or save(fig, path))
    path = tmp_path / "hs.png"
    code, out, err = run(capsys, "stability", "--scan", "-1e308", "1e308", "--num", "3", "--plot", str(path))
    assert code == 0, err
    assert path.read_bytes()[:8] == PNG_MAGIC
    (ax,) = figures[0].axes
    assert ax.get_xlabel() == "lambda (x 1e+308)" and ax.get_xlim() == pytest.approx((-1.0, 1.0))
    code, out, err = run(capsys, "stability", "--scan", "-3", "3", "--num", "7", "--plot", str(path))
    assert code == 0, err
    assert figures[1].axes[0].get_xlabel() == "lambda"  # an ordinary scan is drawn as it is


def test_a_plot_that_fails_part_way_leaves_the_earlier_plot(capsys, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    earlier = tmp_path / "roots.png"
    earlier.write_bytes(PNG_MAGIC + b"an earlier plot")

    def half_written(self, f, **kwargs):
        f.write(PNG_MAGIC)
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(Figure, "savefig", half_written)
    code, _, err = run(capsys, "stability", "--euler", "--plot", str(earlier))
    assert code == 2 and "No space left on device (simulated)" in err
    assert earlier.read_bytes() == PNG_MAGIC + b"an earlier plot" and os.listdir(tmp_path) == ["roots.png"]


class FakeZeroSNet(nn.Module):
    """Stands in for a timm_zerosnet model: one trainable lambda, the block_coefficients() contract."""

    def __init__(self):
        super().__init__()
        self.lam = nn.Parameter(torch.tensor(-1.8, dtype=torch.float64))

    def block_coefficients(self):
        lam = float(self.lam.detach())
        a0, a1, a2, b0 = zeros_coefficients(lam)
        return [
            {"block": "stages.0.0", "a": (1.0,), "b": (1.0,), "param": {}},
            {"block": "stages.0.1", "a": (1.0,), "b": (1.0,), "param": {}},
            {"block": "stages.0.2", "a": (a0, a1, a2), "b": (b0, 0.0, 0.0), "param": {"lam": lam}},
        ]


@pytest.fixture
def fake_models(monkeypatch):
    def create_model(name, **kwargs):
        if name == "fake_zerosnet":
            return FakeZeroSNet()
        if name == "plain":
            return nn.Linear(2, 2)
        raise RuntimeError(f"Unknown model ({name})")

    monkeypatch.setattr(timm, "create_model", create_model)


def test_stability_model(capsys, fake_models, tmp_path):
    code, out, err = run(capsys, "stability", "--model", "fake_zerosnet")
    assert code == 0, err
    assert "zero stable: yes" in out and "stages.0.2" in out
    payload = run_json(capsys, "stability", "--model", "fake_zerosnet", "--plot", str(tmp_path / "m.png"))
    assert [b["block"] for b in payload["blocks"]] == ["stages.0.0", "stages.0.1", "stages.0.2"]
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG_MAGIC


def test_stability_model_checkpoint_is_loaded(capsys, fake_models, tmp_path):
    unstable = FakeZeroSNet()
    with torch.no_grad():
        unstable.lam.fill_(0.2)
    path = tmp_path / "ckpt.pth"
    torch.save(unstable.state_dict(), path)
    payload = run_json(capsys, "stability", "--model", "fake_zerosnet", "--checkpoint", str(path))
    assert payload["zero_stable"] is False
    assert payload["unstable_blocks"] == ["stages.0.2"]
    assert payload["blocks"][2]["param"]["lam"] == pytest.approx(0.2)


# --------------------------------------------------------------------------------------------- text report and --tol


def test_stability_text_report_lines(capsys):
    """The exact lines of the text report: the decimal the user typed, rho with its signs, the principal root
    tagged, and forward Euler's order 1 (consistent: only an order below 1 is 'not consistent')."""
    code, out, err = run(capsys, "stability", "--lam", "-1.8")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "scheme: ZeroSNet lambda = -1.8"  # not -9/5: -1.8 is exact in a few digits
    assert "rho(z) = z^3 - 0.333333 z^2 - 0.555556 z - 0.111111" in lines
    assert "roots: 1 (principal), -0.333333 (|z| = 0.333333), -0.333333 (|z| = 0.333333)" in lines
    code, out, err = run(capsys, "stability", "--lam", "-1/3")  # not a short decimal: shown as the fraction
    assert code == 0 and out.splitlines()[0] == "scheme: ZeroSNet lambda = -1/3"
    code, out, err = run(capsys, "stability", "--euler")
    assert code == 0, err
    assert "rho(z) = z - 1" in out.splitlines() and "roots: 1 (principal)" in out.splitlines()
    assert "consistency order: 1" in out.splitlines() and "not consistent" not in out


@pytest.mark.parametrize(
    "scheme",
    [["--lam", "-1.8"], ["--coefficients", "1", "1", "1", "1"], ["--lm-k", "1.2"], ["--euler"]],
    ids=["lam", "coefficients", "lm-k", "euler"],
)
def test_tol_reaches_the_analysis_of_a_given_scheme(capsys, scheme):
    payload = run_json(capsys, "stability", *scheme, "--tol", "0.5")
    assert payload["tol"] == 0.5


def test_tol_decides_the_verdict_of_a_root_outside_the_unit_circle(capsys):
    """LM-ResNet k = 1.2 has the spurious root -1.2: not zero stable at the default tolerance, zero stable with a
    tolerance of 0.5 (|z| <= 1 + tol) -- in the single-scheme report and in the scan."""
    assert run_json(capsys, "stability", "--lm-k", "1.2")["zero_stable"] is False
    payload = run_json(capsys, "stability", "--lm-k", "1.2", "--tol", "0.5")
    assert (payload["tol"], payload["zero_stable"]) == (0.5, True)
    argv = ["stability", "--scan", "0.9", "1.3", "--family", "lm", "--num", "5"]
    assert run_json(capsys, *argv)["zero_stable"] == [True, True, False, False, False]
    scan = run_json(capsys, *argv, "--tol", "0.5")
    assert scan["values"] == pytest.approx([0.9, 1.0, 1.1, 1.2, 1.3])
    assert scan["zero_stable"] == [True] * 5
    # the verdict says that the tolerance admitted a root outside the circle (it said "all roots in the closed unit
    # disc", as for (1, 1, 1, 1) at tol 0.9, whose root 1.84 it took as inside)
    for argv, largest in (
        (["--lm-k", "1.2", "--tol", "0.5"], "1.2"),
        (["--coefficients", "1", "1", "1", "1"], "1.83929"),
    ):
        code, out, err = run(capsys, "stability", *argv, *([] if "--tol" in argv else ["--tol", "0.9"]))
        assert code == 0, err
        (verdict,) = [line for line in out.splitlines() if line.startswith("zero stable:")]
        assert verdict.startswith("zero stable: yes (every root has |z| <= 1 + tol = ")
        assert verdict.endswith(f"the largest, |z| = {largest}, lies outside the unit circle by less than tol)")
    code, out, err = run(capsys, "stability", "--lam", "-1.8", "--tol", "0.5")  # every root inside: as before
    assert "zero stable: yes (all roots in the closed unit disc, those on the unit circle simple)" in out.splitlines()


def test_tol_reaches_every_block_of_a_model(capsys, fake_models):
    payload = run_json(capsys, "stability", "--model", "fake_zerosnet", "--tol", "0.5")
    assert [b["tol"] for b in payload["blocks"]] == [0.5, 0.5, 0.5]


def test_tol_zero_is_exact_up_to_rounding(capsys, fake_models):
    """--tol 0: rho = z^3 + z^2 + z + 1 = (z + 1)(z^2 + 1) has the simple roots -1 and +-i on the unit circle (zero
    stable), and the blocks of a model at the float lambda = -1.8 have their root 1 at 1 + 4e-16: both came out
    not zero stable, their roots of modulus 1 + 1e-16 taken as outside the circle."""
    code, out, err = run(capsys, "stability", "--coefficients", "-1", "-1", "-1", "1", "--tol", "0")
    assert code == 0, err
    assert "zero stable: yes (all roots in the closed unit disc, those on the unit circle simple)" in out.splitlines()
    payload = run_json(capsys, "stability", "--model", "fake_zerosnet", "--tol", "0")
    assert payload["zero_stable"] is True and payload["unstable_blocks"] == []


def test_a_root_near_one_of_an_inconsistent_scheme_is_not_principal(capsys):
    """--coefficients 1.2 0 0 1: rho = z^2 (z - 1.2), rho(1) = -0.2, so no root is principal; with --tol 0.05 the root
    1.2 lay within sqrt(tol) of 1 and was tagged principal, its modulus left out of the largest spurious |z|."""
    argv = ["stability", "--coefficients", "1.2", "0", "0", "1", "--tol", "0.05"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "roots: 1.2 (|z| = 1.2), 0 (|z| = 0), 0 (|z| = 0)" in out.splitlines()
    assert "max |z| = 1.2, largest spurious |z| = 1.2" in out.splitlines()
    payload = run_json(capsys, *argv)
    assert payload["principal_root"] is None and payload["max_spurious_modulus"] == pytest.approx(1.2)


def test_rho_omits_unit_coefficients(capsys):
    """rho(z) = z^3 - z^2 - z - 1 for the coefficients 1 1 1 1 (it printed 'z^3 - 1 z^2 - 1 z - 1')."""
    code, out, err = run(capsys, "stability", "--coefficients", "1", "1", "1", "1")
    assert code == 0, err
    assert "rho(z) = z^3 - z^2 - z - 1" in out.splitlines()
    code, out, err = run(capsys, "stability", "--lm-k", "-1")  # rho = z^2 - 2 z + 1: a 2 and a constant 1 stay
    assert code == 0, err
    assert "rho(z) = z^2 - 2 z + 1" in out.splitlines()


def test_a_large_parameter_is_shown_as_typed(capsys):
    """--lm-k 1.7976931348623157e308 was shown as its 309-digit integer."""
    typed = "1.7976931348623157e308"
    code, out, err = run(capsys, "stability", "--lm-k", typed)
    assert code == 0, err
    assert out.splitlines()[0] == f"scheme: LM-ResNet k = {float(typed)!r}"


def test_scan_table_prints_every_fiftieth_of_601_points(capsys):
    """A 601-point scan prints 13 table rows: every 50th grid point, both ends included (step (601 - 1) // 12)."""
    code, out, err = run(capsys, "stability", "--scan", "-3", "3")
    assert code == 0, err
    lines = out.splitlines()
    table = lines[lines.index(f"{'lambda':>10}  {'max spurious |z|':>16}  zero stable") + 1 :]
    assert [float(line.split()[0]) for line in table] == pytest.approx([-3 + 0.5 * i for i in range(13)])
    assert [line.split()[-1] for line in table] == ["yes"] * 5 + ["no"] * 2 + ["yes"] * 6


def test_scan_table_prints_tiny_parameters_with_short_moduli(capsys):
    """--scan 1e-300 2e-300 printed each modulus (about 4e299) with .4f: a 300-digit number per row."""
    code, out, err = run(capsys, "stability", "--scan", "1e-300", "2e-300")
    assert code == 0, err
    lines = out.splitlines()
    table = lines[lines.index(f"{'lambda':>10}  {'max spurious |z|':>16}  zero stable") + 1 :]
    assert len(table) == 13 and all(len(line) < 60 for line in table), table
    assert float(table[-1].split()[1]) == pytest.approx(3.75e299, rel=1e-3)


# --------------------------------------------------------------------------------------------- figures


@pytest.fixture
def captured_figures(monkeypatch):
    """The figures the plots module would write, kept instead of saved."""
    from timm_zerosnet.analysis import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_scan_plot_shades_the_stable_grid_points_below_a_top_that_follows_the_moduli(capsys, captured_figures):
    code, _, err = run(capsys, "stability", "--scan", "-3", "3", "--plot", "scan.png")
    assert code == 0, err
    (ax,) = captured_figures[0].axes
    # the largest spurious |z| is far above 3 next to lambda = 0: the axis stops at 3 * 1.05
    assert ax.get_ylim() == pytest.approx((0.0, 3.15))
    assert ax.get_xlim() == pytest.approx((-3.0, 3.0))
    (shaded,) = ax.collections  # the zero-stable runs [-3, -1] and [0.34, 3], not the gap between them
    pieces = sorted((p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in shaded.get_paths())
    assert pieces == [pytest.approx((-3.0, -1.0)), pytest.approx((0.34, 3.0))]
    assert all(p.vertices[:, 1].max() == pytest.approx(3.15) for p in shaded.get_paths())
    # a family whose spurious moduli stay small keeps the floor of 1.5
    code, _, err = run(capsys, "stability", "--scan", "-3", "-1", "--plot", "scan.png")
    assert code == 0, err
    assert captured_figures[1].axes[0].get_ylim() == pytest.approx((0.0, 1.5))


def test_roots_plot_extends_to_the_largest_root(capsys, captured_figures):
    code, _, err = run(capsys, "stability", "--coefficients", "1", "1", "1", "1", "--plot", "roots.png")
    assert code == 0, err
    ax = captured_figures[0].axes[0]
    extent = 1.1 * 1.839287  # the real root of z^3 - z^2 - z - 1 (the tribonacci constant), with a margin
    assert ax.get_xlim() == pytest.approx((-extent, extent), rel=1e-5)
    assert ax.get_ylim() == pytest.approx((-extent, extent), rel=1e-5)
    code, _, err = run(capsys, "stability", "--lam", "-1.8", "--plot", "roots.png")  # roots inside: the default
    assert code == 0, err
    assert captured_figures[1].axes[0].get_xlim() == pytest.approx((-1.2, 1.2))


def test_model_plot_has_one_series_per_distinct_block_scheme(capsys, fake_models, captured_figures):
    from timm_zerosnet.analysis import plots
    from timm_zerosnet.analysis.stability import model_scheme_report

    report = model_scheme_report(FakeZeroSNet())
    # stages.0.0 and stages.0.1 share forward Euler: the first one names the series
    assert [label for label, _ in plots._series(report)] == ["stages.0.0", "stages.0.2"]
    code, _, err = run(capsys, "stability", "--model", "fake_zerosnet", "--plot", "m.png")
    assert code == 0, err
    legend = [t.get_text() for t in captured_figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["unit circle", "stages.0.0 (zero stable)", "stages.0.2 (zero stable)"]


# --------------------------------------------------------------------------------------------- connectivity


def test_connectivity_nb201(capsys):
    payload = run_json(capsys, "connectivity", "--nb201", RESNET_CELL)
    assert (payload["depth"], payload["width"], payload["kept"]) == (1.0, 1.0, True)
    code, out, _ = run(capsys, "connectivity", "--nb201", RESNET_CELL, "--width-range", "1.5", "3")
    assert code == 0 and "removed (m < 1.5)" in out  # the bound as a number, not its name width_lo


def test_connectivity_dag_and_darts(capsys):
    payload = run_json(capsys, "connectivity", "--dag", "2_21_112")
    assert payload["depth"] == pytest.approx(1.25) and payload["width"] == pytest.approx(2.4)
    darts = run_json(capsys, "connectivity", "--darts", "[('sep_conv_3x3', 0), ('skip_connect', 1)]")
    assert darts["path_depths"] == [1, 0]


def test_connectivity_of_a_large_dag_prints_counts_not_millions_of_depths(capsys):
    """--dag with 24 dense rows (8,388,608 paths) ran for minutes and printed every path's depth on one 24 MB line; a
    DAG with a few dozen paths lists them as counts per depth."""
    dense = "_".join("2" * row for row in range(1, 25))
    code, out, err = run(capsys, "connectivity", "--dag", dense)
    assert code == 0, err
    assert "paths: 8388608 (kept 8388608), too many to list their depths (more than 100,000 paths)" in out
    assert "effective depth d = 12.5" in out and len(out) < 1000
    code, out, _ = run(capsys, "connectivity", "--dag", "2_22_222_2222_22222_222222_2222222")
    assert "paths: 64 (kept 64), paths by depth 1: 1, 2: 6, 3: 15, 4: 20, 5: 15, 6: 6, 7: 1" in out
    assert run_json(capsys, "connectivity", "--dag", dense)["path_depths"] == []


def test_connectivity_supernet(capsys):
    payload = run_json(capsys, "connectivity", "--nb201-supernet")
    assert payload["depth"] == pytest.approx(1.0) and payload["width"] == pytest.approx(2.875)


def test_connectivity_nb201_all(capsys):
    code, out, _ = run(capsys, "connectivity", "--nb201-all")
    assert code == 0
    assert "8,226" in out and "7,399 (47.35%)" in out and "elapsed" in out
    assert "  0 < d < 0.99" in out and "  m > 3.01" in out and "_lo" not in out and "_hi" not in out, out
    payload = run_json(capsys, "connectivity", "--nb201-all", "--depth-range", "1e-9", "3", "--width-range", "0", "99")
    assert payload["removed"] == payload["by_reason"]["no_depth"] == 1983


def test_connectivity_ranges_that_include_zero_keep_cells_of_depth_zero(capsys):
    # ANALYSIS.md section 2: keep a cell iff lo <= d <= hi and lo <= m <= hi; a cell of d = 0 is no exception
    argv = ["connectivity", "--dag", "1", "--depth-range", "0", "3", "--width-range", "0", "5"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "effective depth d = 0" in out
    assert "filter 0 <= d <= 3, 0 <= m <= 5: kept" in out
    payload = run_json(capsys, *argv)
    assert (payload["depth"], payload["width"], payload["kept"], payload["reason"]) == (0.0, 0.0, True, None)
    all_cells = run_json(capsys, "connectivity", "--nb201-all", "--depth-range", "0", "3", "--width-range", "0", "99")
    assert all_cells["removed"] == 0
    code, out, _ = run(capsys, "connectivity", "--dag", "1")  # the paper's ranges still remove it
    assert code == 0 and "removed (d = 0 or every route broken)" in out


def test_connectivity_json_is_standard_json_with_null_for_an_unbounded_end(capsys):
    """--depth-range -inf inf --json wrote -Infinity and Infinity, which strict JSON parsers refuse."""
    argv = ["connectivity", "--nb201-all", "--depth-range", "-inf", "inf", "--width-range", "0", "inf", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    payload = json.loads(out, parse_constant=refuse)
    assert payload["depth_range"] == [None, None] and payload["width_range"] == [0.0, None]
    assert payload["removed"] == payload["by_reason"]["no_depth"] == 0
    with pytest.raises(ValueError, match="the result holds a NaN or infinite number, which JSON cannot represent"):
        cli._print_json({"depth": float("nan")})
    assert capsys.readouterr().out == ""


def test_output_into_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    """zerosnet-analyze ... --json | head -1 printed 'error: [Errno 32] Broken pipe' and exited 2, as for invalid
    input: a reader that stops early now ends the command quietly, with status 141 (128 + SIGPIPE)."""

    class ClosedPipe(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["connectivity", "--nb201-all", "--json"]) == 141
    assert capsys.readouterr().err == ""


def test_a_reader_that_closes_the_pipe_gets_no_error_message():
    command = [sys.executable, "-m", "timm_zerosnet.analysis", "connectivity", "--nb201-all", "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written (as with | head -0)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == b""


# --------------------------------------------------------------------------------------------- model arguments


def _trained_checkpoint(tmp_path, name, **model_kwargs):
    """The weights of ``timm.create_model(name, **model_kwargs)`` as zerosnet-train would save them."""
    path = tmp_path / f"{name}.pth"
    torch.save(timm.create_model(name, **model_kwargs).state_dict(), path)
    return path


def test_model_kwargs_give_the_scheme_constants_a_checkpoint_does_not_store(capsys, tmp_path):
    path = _trained_checkpoint(tmp_path, "zerosnet20_cifar", lam=-1.2)
    argv = ["stability", "--model", "zerosnet20_cifar", "--checkpoint", str(path), "--model-kwargs", "lam=-1.2"]
    payload = run_json(capsys, *argv)
    multistep = [b for b in payload["blocks"] if len(b["a"]) == 3]
    assert len(multistep) == 7
    a0, a1, a2, b0 = zeros_coefficients(-1.2)
    for block in multistep:
        assert block["a"] == pytest.approx([a0, a1, a2]) and block["b"] == pytest.approx([b0, 0.0, 0.0])
        assert block["max_spurious_modulus"] == pytest.approx(0.824, abs=1e-3)  # ANALYSIS.md: lambda = -1.2
    assert "--model-kwargs lam=-1.2" in payload["note"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    (note,) = [line for line in out.splitlines() if line.startswith("note: ")]
    assert "come from the model arguments (--model-kwargs lam=-1.2), not from the checkpoint" in note
    # without --model-kwargs the analysis is of the default scheme, and the note says where it comes from
    code, out, err = run(capsys, "stability", "--model", "zerosnet20_cifar", "--checkpoint", str(path))
    assert code == 0, err
    assert "(lam = -1.8)" in out and "come from the model arguments (the model's defaults)" in out
    assert "pass them with --model-kwargs" in out


def test_a_checkpoint_trained_with_model_kwargs_asks_for_them(capsys, tmp_path):
    """Weights trained with downsample='diffstride' carry pool.strides keys: the refusal said to pass
    pretrained_strict=False, which this command has no way to; it names --model-kwargs."""
    path = _trained_checkpoint(tmp_path, "zerosnet20_cifar", downsample="diffstride")
    code, out, err = run(capsys, "stability", "--model", "zerosnet20_cifar", "--checkpoint", str(path))
    assert code == 2 and err.count("\n") == 1
    assert "first unexpected key" in err and "pool.strides" in err
    assert "zerosnet-analyze takes the kwargs as --model-kwargs" in err and "pretrained_strict" not in err
    argv = ["stability", "--model", "zerosnet20_cifar", "--checkpoint", str(path), "--model-kwargs"]
    assert run(capsys, *argv, "downsample=diffstride")[0] == 0
    # another variant of the family (tau-ResNet nobn weights for the BN model): the advice names --model first
    nobn = _trained_checkpoint(tmp_path, "tauresnet20_nobn_cifar")
    code, out, err = run(capsys, "stability", "--model", "tauresnet20_cifar", "--checkpoint", str(nobn))
    assert code == 2 and "BN or nobn" in err and "build it as it was trained: that --model" in err


def test_a_checkpoint_with_another_head_asks_for_the_model_kwargs_that_fit_it(capsys, tmp_path):
    """Weights of a 5-class model (or of a catavgmax pool, or without a head) were refused with timm's remedies
    (pretrained_cfg_overlay=dict(...), "a new head"), which this command does not take: the refusal names the
    --model-kwargs that build the model the weights fit."""
    path = _trained_checkpoint(tmp_path, "zerosnet20_cifar", num_classes=5)
    argv = ["stability", "--model", "zerosnet20_cifar", "--checkpoint", str(path)]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "its classifier has 5 classes and the model's 10" in err and "--model-kwargs num_classes=5" in err
    assert "pretrained_cfg_overlay" not in err and "new head" not in err
    assert run(capsys, *argv, "--model-kwargs", "num_classes=5")[0] == 0
    pooled = _trained_checkpoint(tmp_path, "zerosnet20_cifar", global_pool="catavgmax")
    argv = ["stability", "--model", "zerosnet20_cifar", "--checkpoint", str(pooled)]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "its classifier takes 128 features and the model's 64" in err
    assert "--model-kwargs global_pool=" in err and "new head" not in err
    assert run(capsys, *argv, "--model-kwargs", "global_pool=catavgmax")[0] == 0
    headless = _trained_checkpoint(tmp_path, "zerosnet20_cifar", num_classes=0)
    argv = ["stability", "--model", "zerosnet20_cifar", "--checkpoint", str(headless)]
    assert_one_line_error(capsys, argv, "it has no classifier (the weights of a headless backbone) and the model has")
    assert "build the model without one: --model-kwargs num_classes=0" in run(capsys, *argv)[2]
    assert run(capsys, *argv, "--model-kwargs", "num_classes=0")[0] == 0


def test_model_kwargs_set_the_fixed_tau_of_a_bn_tau_resnet(capsys, tmp_path):
    path = _trained_checkpoint(tmp_path, "tauresnet20_cifar", tau=1.0)
    argv = ["stability", "--model", "tauresnet20_cifar", "--checkpoint", str(path)]
    default = run_json(capsys, *argv)
    assert [b["param"]["step_size"] for b in default["blocks"]] == pytest.approx([1 / 3] * 9)  # 1/sqrt(9 blocks)
    payload = run_json(capsys, *argv, "--model-kwargs", "tau=1")
    assert {b["param"]["step_size"] for b in payload["blocks"]} == {1.0}
    assert (
        "the step size tau = 1 (fixed with BN) comes from the model arguments (--model-kwargs tau=1)"
        in (payload["note"])
    )
    # without a checkpoint there is nothing to warn about
    assert "note" not in run_json(capsys, "stability", "--model", "tauresnet20_cifar", "--model-kwargs", "tau=1")


@pytest.mark.parametrize(
    ("case_name", "param"),
    [("zerosnet20_cifar_tra", "lam"), ("lmresnet20_cifar", "k")],
)
def test_authors_checkpoint_loads_through_the_family_filter(capsys, tmp_path, case_name, param):
    from test_authors_checkpoints import CASE_BY_NAME, save_authors_checkpoint, synthetic_authors_state_dict

    case = CASE_BY_NAME[case_name]
    sd = synthetic_authors_state_dict(case)
    path = save_authors_checkpoint(sd, tmp_path / "authors.pth")  # {'state_dict': {'module.' + authors' key}}
    # what timm's own pretrained path loads from this file
    reference = timm.create_model(case.model, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    expected = {row["block"]: row["param"][param] for row in reference.block_coefficients() if param in row["param"]}
    assert len(expected) >= 6
    built = {row["block"]: row["param"].get(param) for row in timm.create_model(case.model).block_coefficients()}
    assert all(built[block] != pytest.approx(value) for block, value in expected.items())  # trained values
    payload = run_json(capsys, "stability", "--model", case.model, "--checkpoint", str(path))
    got = {b["block"]: b["param"][param] for b in payload["blocks"] if param in b["param"]}
    assert got == pytest.approx(expected)


# --------------------------------------------------------------------------------------------- negative numbers


@pytest.mark.parametrize(
    ("argv", "key", "expected"),
    [
        (["stability", "--lam", "-1e-3"], "param", {"lam": -0.001}),
        (["stability", "--lam", "-9/5"], "max_spurious_modulus", pytest.approx(1 / 3, abs=1e-12)),
        (["stability", "--lam", "-.5e1"], "param", {"lam": -5.0}),
        (["stability", "--lm-k", "-1/2"], "param", {"k": -0.5}),
        (["stability", "--coefficients", "1", "-1/3", "1", "1"], "a", pytest.approx([1, -1 / 3, 1])),
        (["stability", "--coefficients", "-1e0", "1", "1", "-2/1"], "a", pytest.approx([-1, 1, 1])),
        (["stability", "--scan", "-1e3", "1", "--num", "3"], "values", [-1000.0, -499.5, 1.0]),
        (["stability", "--scan", "-3/2", "-1/2", "--num", "3"], "values", [-1.5, -1.0, -0.5]),
        (["connectivity", "--dag", "2_21_112", "--depth-range", "-1e-3", "3"], "kept", True),
    ],
)
def test_negative_fractions_and_exponents_are_values(capsys, argv, key, expected):
    assert run_json(capsys, *argv)[key] == expected


def test_a_path_that_starts_like_a_negative_number_is_taken_as_given(capsys, tmp_path, monkeypatch):
    """The mark that lets argparse take -1.8 as a value reached path options: --plot -1.png wrote ' -1.png' and
    --checkpoint -2.safetensors looked for ' -2.safetensors'."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "stability", "--euler", "--plot", "-1.png")
    assert code == 0, err
    assert os.listdir(tmp_path) == ["-1.png"] and (tmp_path / "-1.png").read_bytes()[:8] == PNG_MAGIC
    assert "plot: -1.png" in out.splitlines()
    message = "checkpoint '-2.safetensors' does not exist; pass the path of a state dict file or a run directory"
    assert_one_line_error(capsys, ["stability", "--checkpoint", "-2.safetensors"], message)


# --------------------------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "choose a subcommand"),
        (["stability"], "empty scheme"),
        (["stability", "--coefficients"], "empty scheme"),
        (["stability", "--coefficients", "1", "2"], "needs the four ZeroSNet coefficients"),
        (["stability", "--lam", "0"], "lambda = 0 is not a valid ZeroSNet parameter"),
        (["stability", "--lam", "abc"], "'abc' is not a finite number"),
        (["stability", "--lam", "1", "--lm-k", "0"], "not allowed with argument"),
        (["stability", "--scan", "3", "-3"], "scan needs lo < hi"),
        (["stability", "--lam", "1", "--checkpoint", "x.pth"], "--checkpoint only goes with --model"),
        (["stability", "--model", "plain"], "model Linear has no multistep scheme"),
        (["stability", "--model", "nosuch"], "cannot build model 'nosuch'"),
        (["stability", "--model", "fake_zerosnet", "--checkpoint", "/nonexistent.pth"], "does not exist"),
        (["stability", "--lam", "1e400"], "argument --lam: '1e400' is too large for a float"),
        (["stability", "--lam", "1e309"], "argument --lam: '1e309' is too large for a float"),
        (["stability", "--lam", "1e-400"], "lambda = 1e-400 is too close to 0"),
        (["stability", "--lm-k", "1e309"], "argument --lm-k: '1e309' is too large for a float"),
        (["stability", "--coefficients", "1e400", "0", "0", "1"], "'1e400' is too large for a float"),
        (["stability", "--scan", "0", "1e400"], "argument --scan: '1e400' is too large for a float"),
        (["stability", "--tol", "nan", "--coefficients", "1", "1", "1", "1"], "'nan' is not a valid tolerance"),
        (["stability", "--tol", "-1", "--lam", "2"], "argument --tol: tol = '-1' is not a valid tolerance"),
        (["stability", "--tol", "1", "--lam", "2"], "0 <= tol < 1"),
        (["connectivity"], "give one of --nb201"),
        (["connectivity", "--nb201", "|foo~0|"], "unknown NAS-Bench-201 op 'foo'"),
        (["connectivity", "--nb201", "garbage"], "malformed NAS-Bench-201 arch string"),
        (["connectivity", "--dag", ""], "empty DAG encoding"),
        (["connectivity", "--dag", "2_3"], "malformed DAG encoding"),
        (["connectivity", "--darts", "[('conv_7x7', 0), ('skip_connect', 1)]"], "unknown DARTS op"),
        (["connectivity", "--nb201-all", "--depth-range", "2", "1"], "depth_range must satisfy lo <= hi"),
        (["connectivity", "--bogus"], "unrecognized arguments"),
    ],
)
def test_invalid_input_prints_one_line_and_exits_2(capsys, fake_models, argv, message):
    assert_one_line_error(capsys, argv, message)


def _truncated_checkpoint(path):
    torch.save(FakeZeroSNet().state_dict(), path)
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("garbage.safetensors", lambda path: path.write_text("garbage")),
        ("garbage.pth", lambda path: path.write_text("garbage")),
        ("empty.pth", lambda path: path.write_bytes(b"")),
        ("empty.safetensors", lambda path: path.write_bytes(b"")),
        ("truncated.pth", _truncated_checkpoint),
    ],
)
def test_unreadable_checkpoint_prints_one_line_and_exits_2(capsys, fake_models, tmp_path, name, write):
    path = tmp_path / name
    write(path)
    argv = ["stability", "--model", "fake_zerosnet", "--checkpoint", str(path)]
    assert_one_line_error(capsys, argv, f"checkpoint '{path}' cannot be read: the file is corrupt, truncated")


def test_checkpoint_of_another_model_prints_one_line_and_exits_2(capsys, fake_models, tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    argv = ["stability", "--model", "fake_zerosnet", "--checkpoint", str(path)]
    assert_one_line_error(capsys, argv, f"checkpoint '{path}' does not fit model 'fake_zerosnet'")
    argv = ["stability", "--model", "fake_zerosnet", "--checkpoint", str(tmp_path)]
    assert_one_line_error(capsys, argv, "has no final weights (model.safetensors) (no run.json: is it a run directory")


def test_a_checkpoint_with_a_nan_lambda_names_the_checkpoint_and_its_blocks(capsys, tmp_path):
    """Weights of a diverged run (lambda = NaN) gave only 'lambda must be finite, got nan.': which file, which block,
    and what to do were missing."""
    state = timm.create_model("zerosnet20_tra_cifar").state_dict()
    lams = [name for name in state if name.endswith(".update.lam")]
    for name in lams:
        state[name] = torch.tensor(float("nan"))
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    argv = ["stability", "--model", "zerosnet20_tra_cifar", "--checkpoint", str(path)]
    message = (
        f"checkpoint '{path}' holds a non-finite lambda in {len(lams)} block(s) ({lams[0]} = nan, {lams[1]} = nan, "
        f"{lams[2]} = nan and {len(lams) - 3} more), so its scheme has no roots to analyse (did the training "
        "diverge?); pass other or earlier weights"
    )
    assert lams[0] == "stages.0.2.update.lam"
    assert_one_line_error(capsys, argv, message)


def test_a_tra_checkpoint_held_at_the_guard_shows_the_lambda_used_in_an_aligned_table(capsys, tmp_path):
    """A trained lambda inside the guard band (|lambda| <= lam_eps = 1/3) runs at +-1/3: the table's param showed the
    raw 0.1 beside the guard's coefficients; it now shows lam_used too, and the param column widens to fit it (it was
    16 characters wide whatever it held)."""
    state = timm.create_model("zerosnet20_tra_cifar").state_dict()
    lams = [name for name in state if name.endswith(".update.lam")]
    state[lams[0]], state[lams[1]] = torch.tensor(0.1), torch.tensor(-0.2)
    path = tmp_path / "guarded.pth"
    torch.save(state, path)
    argv = ["stability", "--model", "zerosnet20_tra_cifar", "--checkpoint", str(path)]
    blocks = {b["block"]: b for b in run_json(capsys, *argv)["blocks"]}
    first, second = (blocks[name.rsplit(".update", 1)[0]] for name in lams[:2])
    assert first["param"]["lam"] == pytest.approx(0.1) and first["param"]["lam_used"] == pytest.approx(1 / 3)
    assert second["param"]["lam_used"] == pytest.approx(-1 / 3) and "lam_used" not in blocks["stages.2.2"]["param"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("block "))
    table = lines[header : header + 1 + len(blocks)]
    assert "step_size=1, lam=0.1, lam_used=0.3333 " in table[1 + list(blocks).index(first["block"])]
    assert len({line.index(" (") for line in table[1:]}) == 1  # the a column starts at one place in every row
    assert table[0].index(" a ") + 1 == table[1].index(" (") + 1


def test_a_learnable_tau_checkpoint_gets_no_note(capsys, tmp_path):
    """A nobn tau-ResNet learns tau, so its checkpoint stores it: no note that the step size comes from the model
    arguments (the BN model fixes tau, and gets that note)."""
    path = _trained_checkpoint(tmp_path, "tauresnet20_nobn_cifar")
    payload = run_json(capsys, "stability", "--model", "tauresnet20_nobn_cifar", "--checkpoint", str(path))
    assert "note" not in payload
    code, out, err = run(capsys, "stability", "--model", "tauresnet20_nobn_cifar", "--checkpoint", str(path))
    assert code == 0, err
    assert "note:" not in out


def test_a_checkpoint_that_cannot_be_opened_reports_the_os_error(capsys, fake_models, tmp_path, monkeypatch):
    """Permission denied is not a damaged file: the OS message is printed, not 'the file is corrupt'."""
    import timm.models

    path = tmp_path / "locked.pth"
    torch.save(FakeZeroSNet().state_dict(), path)

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(timm.models, "load_state_dict", denied)
    code, out, err = run(capsys, "stability", "--model", "fake_zerosnet", "--checkpoint", str(path))
    assert (code, out) == (2, "")
    assert err == f"zerosnet-analyze: error: [Errno 13] Permission denied: '{path}'\n"


def assert_one_line_error(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("zerosnet-analyze: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["stability", "--lm-k", "0.5", "--family", "zeros", "--num", "3"],
            "--family and --num only go with --scan LO HI, not with --lm-k: drop --family and --num",
        ),
        (["stability", "--lam", "-9/5", "--family", "lm"], "--family only goes with --scan LO HI, not with --lam"),
        (["stability", "--euler", "--num", "5"], "--num only goes with --scan LO HI, not with --euler"),
        (
            ["stability", "--model", "fake_zerosnet", "--num", "7"],
            "--num only goes with --scan LO HI, not with --model",
        ),
        (["stability", "--model", "tauresnet20_cifar", "--num", "0"], "'0' is not a valid number of grid points"),
        (["stability", "--scan", "-3", "3", "--num", "0"], "--num takes an integer from 2 to 200,000"),
        (["stability", "--scan", "-3", "3", "--num", "100000000"], "--num takes an integer from 2 to 200,000 ("),
        (["stability", "--scan", "-3", "3", "--num", "-5"], "argument --num: '-5' is not a valid number of grid"),
        (["stability", "--scan", "-3", "3", "--num", "1"], "--num takes an integer from 2 to 200,000"),
        (["stability", "--lam", "2", "--model-kwargs", "lam=1"], "--model-kwargs only goes with --model"),
        (["stability", "--model", "zerosnet20_cifar", "--model-kwargs", "lam"], "expects key=value pairs"),
        (["stability", "--checkpoint", ""], "--checkpoint is empty: name a run folder or a weights file"),
        (
            ["stability", "--model", "zerosnet20_cifar", "--model-kwargs", "features_only=True"],
            "--model-kwargs features_only: the analysis reads the blocks of the classification network",
        ),
        (
            ["stability", "--model", "zerosnet20_cifar", "--model-kwargs", "lam=-1.8", "lam=2"],
            "--model-kwargs gives lam twice ('lam=-1.8' and 'lam=2'); give it once",
        ),
        (
            ["stability", "--model", "zerosnet20_cifar", "--model-kwargs", "nosuch=1"],
            "cannot build model 'zerosnet20_cifar' with --model-kwargs nosuch=1",
        ),
        (["stability", "--lam", "-1e400"], "argument --lam: '-1e400' is too large for a float"),
        (["stability", "--lam", "-1/0"], "argument --lam: '-1/0' is not a finite number"),
        # meant as negative numbers: named by the number parser (argparse said "expected one argument")
        (["stability", "--lam", "-inf"], "argument --lam: '-inf' is not a finite number (use e.g. -1.8 or -9/5)"),
        (["stability", "--lam", "-1,8"], "argument --lam: '-1,8' is not a finite number"),
        (["stability", "--coefficients", "1", "-nan", "1", "1"], "argument --coefficients: '-nan' is not a finite"),
        (["connectivity", "--nb201-all", "--depth-range", "nan", "2"], "argument --depth-range: 'nan' is not a number"),
        # a finite number too large for a float was read as inf (every cell "removed (0 < d < inf)")
        (
            ["connectivity", "--nb201-all", "--depth-range", "1e400", "1e401"],
            "argument --depth-range: '1e400' is too large for a float (magnitude at most 1.79769e+308)",
        ),
        (["connectivity", "--dag", "2_21_112", "--width-range", "1", "-1e999"], "'-1e999' is too large for a float"),
        (
            ["connectivity", "--dag", "2_21_112", "--depth-range", "inf", "inf"],
            "--depth-range inf inf keeps no cell: inf as the lower bound admits no effective depth; give a finite",
        ),
        (["connectivity", "--nb201-all", "--width-range", "0", "-inf"], "-inf as the upper bound admits no effective"),
    ],
)
def test_options_that_do_not_apply_or_invalid_values_are_errors(capsys, argv, message):
    assert_one_line_error(capsys, argv, message)


@pytest.mark.parametrize(
    ("arch", "groups"),
    [
        ("|nor_conv_3x3~0|", 1),
        ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|", 2),
        (RESNET_CELL + "+|none~0|none~1|none~2|none~3|", 4),
    ],
)
def test_nb201_needs_exactly_three_groups(capsys, arch, groups):
    assert_one_line_error(
        capsys,
        ["connectivity", "--nb201", arch],
        f"not a NAS-Bench-201 cell: the arch string has {groups} '+'-separated group(s) but a NAS-Bench-201 cell has "
        "exactly 3",
    )


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "stability", "--help")
    assert code == 0 and "--coefficients" in out


# --------------------------------------------------------------------------------------------- entry points


def test_python_dash_m_entry_point(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["python -m timm_zerosnet.analysis", "connectivity", "--dag", "2_02_002"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("timm_zerosnet.analysis", run_name="__main__")
    assert exc.value.code == 0
    assert "effective depth d = 3" in capsys.readouterr().out


def test_console_script_is_declared():
    (script,) = entry_points(group="console_scripts", name="zerosnet-analyze")
    assert script.load() is cli.main


def _run_dir(tmp_path, name="zerosnet20_cifar", recorded_as=None, **model_kwargs):
    """A zerosnet-train run directory: a 5-class grey model's weights and its run.json."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    model = timm.create_model(name, num_classes=5, in_chans=1, **model_kwargs)
    torch.save(model.state_dict(), run / "weights.pth")
    info = dict(model=recorded_as or name, model_kwargs=model_kwargs, num_classes=5, in_chans=1)
    (run / "run.json").write_text(json.dumps(dict(info, weights=dict(final="weights.pth"))))
    return run


def test_a_run_directory_gives_the_model_its_options_classes_and_channels(capsys, tmp_path):
    """--checkpoint RUN (or a weights file in it) needs no --model: run.json names the architecture (also when
    recorded with a released tag), the scheme constants it was trained with, and the head and stem the weights
    fit. --model-kwargs still win, and the note says what the run used."""
    run_dir = _run_dir(tmp_path, lam=-1.2, recorded_as="zerosnet20_cifar.digits")
    a0, a1, a2, b0 = zeros_coefficients(-1.2)
    weights_file = ["--checkpoint", str(run_dir / "weights.pth"), "--model", "zerosnet20_cifar"]
    for argv in (["--checkpoint", str(run_dir)], weights_file):
        payload = run_json(capsys, "stability", *argv)
        multistep = [b for b in payload["blocks"] if len(b["a"]) == 3]
        assert len(multistep) == 7
        assert all(b["a"] == pytest.approx([a0, a1, a2]) and b["b"][0] == pytest.approx(b0) for b in multistep)
        assert "from the run's --model-kwargs lam=-1.2 (run.json)" in payload["note"]
    code, out, err = run(capsys, "stability", "--checkpoint", str(run_dir), "--model-kwargs", "lam=-1.8")
    assert code == 0, err
    expected = "(--model-kwargs lam=-1.8), not from the checkpoint; the run was trained with the run's --model-kwargs"
    assert f"{expected} lam=-1.2 (run.json)" in out
    assert "max |z| over all blocks = 1" in out and "(lam = -1.8)" in out
    defaults = _run_dir(tmp_path / "d")
    note = run_json(capsys, "stability", "--checkpoint", str(defaults))["note"]
    assert "the model defaults, which the run used (run.json)" in note
    refusals = (
        (
            ["--checkpoint", str(run_dir), "--model", "lmresnet20_cifar"],
            "holds a 'zerosnet20_cifar' (see its run.json) but --model is 'lmresnet20_cifar'; drop --model or pass "
            "--model zerosnet20_cifar",
        ),
        (["--checkpoint", str(run_dir), "--lam", "1"], "--checkpoint only goes with --model NAME, or alone for a run"),
        (["--checkpoint", str(tmp_path)], "(no run.json: is it a run directory of zerosnet-train?)"),
    )
    for argv, message in refusals:
        assert_one_line_error(capsys, ["stability", *argv], message)
    (tmp_path / "bare.pth").write_bytes((run_dir / "weights.pth").read_bytes())
    bare = ["stability", "--checkpoint", str(tmp_path / "bare.pth")]
    assert_one_line_error(capsys, bare, "has no run.json to name its model: pass --model NAME")
    # a run.json without "model" (an AttributeError traceback inside timm before): --model names it
    info = json.loads((run_dir / "run.json").read_text())
    info.pop("model")
    (run_dir / "run.json").write_text(json.dumps(info))
    unnamed = ["stability", "--checkpoint", str(run_dir)]
    assert_one_line_error(capsys, unnamed, "has a run.json that names no model: pass --model NAME")
    assert run_json(capsys, *unnamed, "--model", "zerosnet20_cifar")["zero_stable"] is True


def test_a_run_directory_gives_its_pool_and_weights_picks_final_ema_or_best(capsys, tmp_path):
    """run.json's global pool builds the trained head (a catavgmax classifier did not fit an avg-pool model), and
    --weights picks which of the run's weights are analysed (the advice for a missing file names it)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lams = {}
    for which, lam in (("final", -1.0), ("best", -1.5)):
        model = timm.create_model("zerosnet20_tra_cifar", num_classes=3, global_pool="catavgmax")
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        lams[which] = {k: lam for k in weights if k.endswith(".lam")}
        weights.update({k: torch.full_like(weights[k], lam) for k in lams[which]})
        save_file(weights, run_dir / WEIGHT_FILES[which])
    info = dict(model="zerosnet20_tra_cifar", num_classes=3, in_chans=3, global_pool="catavgmax", model_kwargs={})
    (run_dir / "run.json").write_text(json.dumps(dict(info, status="finished", weights={"ema": None})))
    for weights, lam in ((None, -1.0), ("final", -1.0), ("best", -1.5)):
        argv = ["stability", "--checkpoint", str(run_dir)] + (["--weights", weights] if weights else [])
        blocks = run_json(capsys, *argv)["blocks"]
        assert [b["param"]["lam"] for b in blocks if "lam" in b["param"]] == pytest.approx([lam] * len(lams["final"]))
    assert_one_line_error(
        capsys, ["stability", "--checkpoint", str(run_dir), "--weights", "ema"], "has no ema weights (model_ema"
    )
    file = str(run_dir / "model.safetensors")
    assert_one_line_error(capsys, ["stability", "--checkpoint", file, "--weights", "best"], "is a file: drop --weights")
    assert_one_line_error(capsys, ["stability", "--lam", "1", "--weights", "best"], "--checkpoint is not given")


def test_the_folder_of_training_states_and_its_latest_pointer_name_what_to_pass(capsys, tmp_path):
    """--checkpoint RUN/checkpoints/latest (a one-line file naming the latest state) was read as weights ("has no
    run.json", or with --model "corrupt ... IndexError"), and RUN/checkpoints as a run without a run.json: both name
    the run folder and the state to pass, which is analysed."""
    run_dir = _run_dir(tmp_path)
    states, name = run_dir / "checkpoints", "state-e0002-b000000"
    weights = torch.load(run_dir / "weights.pth", weights_only=True)
    for state in ("state-e0001-b000000", name):
        (states / state).mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, states / state / "model.safetensors")
    (states / "latest").write_text(name + "\n")
    for model in ([], ["--model", "zerosnet20_cifar"]):
        assert_one_line_error(
            capsys,
            ["stability", "--checkpoint", str(states / "latest"), *model],
            f"--checkpoint {states / 'latest'} names the run's latest training state, {name}, and holds no weights: "
            f"pass that state folder {states / name}, or the run folder {run_dir}",
        )
        assert_one_line_error(
            capsys,
            ["stability", "--checkpoint", str(states), *model],
            f"--checkpoint {states} is the folder of the run's training states, not a run: pass the run folder "
            f"{run_dir} (its final, ema or best weights with --weights), or one of its states, e.g. the latest, "
            f"{states / name}",
        )
    (states / "latest").write_text("state-e0009-b000000\n")  # a state removed by hand
    assert_one_line_error(
        capsys,
        ["stability", "--checkpoint", str(states / "latest")],
        f"names 'state-e0009-b000000', which is none of its training states: pass a state folder in {states} "
        f"(state-e0001-b000000, {name}), or the run folder {run_dir}",
    )
    assert run_json(capsys, "stability", "--checkpoint", str(states / name))["zero_stable"] is True


def test_scan_text_prints_grid_points_apart_from_the_boundary(capsys):
    """--scan -1.0001 -0.9999 --family lm (step 1e-7) printed its grid values with 6 (and in the table 4) digits: the
    zero-stable points began at "-1" although the region is -1 < k, and the table listed k = -1 both as unstable and
    as stable, with the unstable moduli 1.00005 as "1". The digits now follow the grid step."""
    code, out, err = run(capsys, "stability", "--scan", "-1.0001", "-0.9999", "--num", "2001", "--family", "lm")
    assert code == 0, err
    assert "zero-stable grid points: [-0.9999999, -0.9999]" in out
    lines = out.splitlines()
    table = lines[lines.index(f"{'k':>10}  {'max spurious |z|':>16}  zero stable") + 1 :]
    values = [line.split()[0] for line in table]
    assert len(set(values)) == len(values) == 13 and "-1" not in values
    unstable = [line for line in table if line.endswith(" no")]
    assert len(unstable) == 7 and all(" 1 + " in line for line in unstable[1:])
    assert [float(v) for v in values] == pytest.approx([-1.0001 + 1.66e-5 * i for i in range(13)], abs=1e-12)
    # an ordinary scan prints as before
    code, out, err = run(capsys, "stability", "--scan", "-3", "3")
    assert "zero-stable grid points: [-3, -1], [0.34, 3]" in out and "\n      -2.5            0.3873  yes\n" in out
