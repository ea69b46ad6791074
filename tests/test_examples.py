"""examples/: the zero-stability study can be run again into the same folder (it reuses its finished runs)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
from pathlib import Path

import pytest
import timm
import torch

from conftest import reset_accelerate

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("zerosnet_study", ROOT / "examples" / "zero_stability_study.py")
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def test_zero_stability_study_reruns_into_the_same_folder(tmp_path):
    """A second run with the same --out continues / reuses each run (it stopped with 'already holds a run')."""
    args = argparse.Namespace(epochs=1, img_size=8)
    threads = torch.get_num_threads()
    first = study.run_one("preresnet20_cifar", {}, 0, args, tmp_path, "euler")
    reset_accelerate()
    second = study.run_one("preresnet20_cifar", {}, 0, args, tmp_path, "euler")
    reset_accelerate()
    torch.set_num_threads(threads)
    assert first == second and first[1] == "ok"
    assert [p.name for p in tmp_path.iterdir()] == ["euler-e1-s8-seed0"]


def test_readme_quick_start_runs_and_says_what_it_does():
    """The README's first snippet, as a user pastes it: it runs, the custom coefficients warn, and the dense backbone
    stops at the reduction it names."""
    import re

    snippet = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    scope: dict = {}
    with pytest.warns(UserWarning, match="not zero stable"):
        exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["model"].num_classes == 10
    assert scope["backbone"].feature_info.reduction() == [2, 4, 8, 16, 32]
    assert scope["dense"].feature_info.reduction() == [2, 4, 8, 16, 16]
    features = scope["dense"](torch.randn(1, 3, 64, 64))
    assert features[-1].shape == (1, 2048, 4, 4)


def test_every_published_python_snippet_starts_by_registering_the_models():
    """TIMM.md: every snippet we publish starts with `import timm_zerosnet` (pasted alone, one without it fails with
    'Unknown model'); the README's snippet of the authors' checkpoints lacked it."""
    import re

    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.md"))]
    snippets = [(d.name, s) for d in docs for s in re.findall(r"```python\n(.*?)```", d.read_text(), re.S)]
    assert len(snippets) >= 2
    for name, snippet in snippets:
        code = [line for line in snippet.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert code[0].startswith("import timm_zerosnet"), (name, code[0])


def test_demo_replaces_only_its_own_earlier_runs(tmp_path, capsys):
    """--run-dir naming any other folder is refused, its files kept (it used to be removed whole)."""
    spec = importlib.util.spec_from_file_location("zerosnet_demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    victim = tmp_path / "victim"
    (victim / "checkpoints").mkdir(parents=True)
    (victim / "src").mkdir()
    (victim / "src" / "important.py").write_text("x")
    with pytest.raises(SystemExit, match=r"is not an earlier demo run \(it holds src\)"):
        demo.run_demo(victim)
    assert (victim / "src" / "important.py").read_text() == "x"
    with pytest.raises(ValueError, match="--epochs must be at least 1, got 0"):
        demo.run_demo(tmp_path / "fresh", epochs=0)  # not the recipe's 5
    assert demo.main(["--run-dir", str(tmp_path / "fresh"), "--epochs", "0"]) == 2  # one line, not a traceback
    assert capsys.readouterr().err == "demo: error: --epochs must be at least 1, got 0\n"


def test_a_failed_or_interrupted_demo_puts_the_earlier_demo_run_back(tmp_path, monkeypatch, capsys):
    """The demo removed its earlier run before training: --epochs 0 deleted it and then said what was wrong, and a
    Ctrl-C or a crash in training lost it too. The earlier run is now set aside and put back as it was."""
    spec = importlib.util.spec_from_file_location("zerosnet_demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    run_dir = tmp_path / "runs" / "demo"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"training": {"recipe": "/pkg/recipes/digits_demo.yaml"}}))
    (run_dir / "model.safetensors").write_bytes(b"earlier weights")
    with pytest.raises(ValueError, match="--epochs must be at least 1, got 0"):
        demo.run_demo(run_dir, epochs=0)

    def interrupted(args):  # as zerosnet-train, which has begun writing the new run
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "metrics.csv").write_text("epoch,top1\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "model.safetensors", "run.json"]
    assert (run_dir / "model.safetensors").read_bytes() == b"earlier weights"
    assert not list(run_dir.parent.glob(".demo*"))  # nothing left aside
    assert capsys.readouterr().err.count(f"the earlier demo run in {run_dir} is kept as it was") == 2
    # a demo killed while the earlier run was aside: the next demo names it
    (run_dir.parent / ".demo.earlier-123").mkdir()
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(run_dir)
    assert f"{run_dir.parent / '.demo.earlier-123'} is an earlier demo run that a killed demo left aside" in (
        capsys.readouterr().out
    )


def test_feature_extraction_refuses_a_checkpoint_it_cannot_find(tmp_path, capsys):
    """An explicit --checkpoint that is not there is an error, not a silent random backbone."""
    spec = importlib.util.spec_from_file_location("zerosnet_features", ROOT / "examples" / "feature_extraction.py")
    features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features)
    with pytest.raises(SystemExit):
        features.main(["--checkpoint", str(tmp_path / "missing.safetensors")])
    assert "no such weights file" in capsys.readouterr().err


def _load_finetune():
    spec = importlib.util.spec_from_file_location("zerosnet_finetune", ROOT / "examples" / "finetune.py")
    finetune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(finetune)
    return finetune


def test_finetune_refuses_a_source_without_weights(tmp_path, capsys):
    """An explicit --source that holds no weights is an error; it used to train a new source run in its place."""
    finetune = _load_finetune()
    (tmp_path / "unfinished").mkdir()  # a run directory without model.safetensors
    refusals = {"missing": "no such weights file or run directory", "unfinished": "has no final weights"}
    for name, message in refusals.items():
        with pytest.raises(SystemExit):
            finetune.main(["--source", str(tmp_path / name), "--output", str(tmp_path / "out")])
        assert f"--source: {tmp_path / name}" in (err := capsys.readouterr().err) and message in err
    # a run with its best weights only: advised as a --source file (the script has no --weights)
    (tmp_path / "unfinished" / "best.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit):
        finetune.main(["--source", str(tmp_path / "unfinished"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert f"fine-tune its best weights with --source {tmp_path / 'unfinished' / 'best.safetensors'}" in err
    assert "--weights" not in err
    assert not (tmp_path / "out").exists()


def test_finetune_starts_from_the_demo_run_and_reports_bad_settings_in_one_line(tmp_path, monkeypatch, capsys):
    """Without --source it fine-tunes runs/demo when there; a training refusal is one `error:` line and status 2."""
    finetune = _load_finetune()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    _weights_file(tmp_path / "runs" / "demo" / "model.safetensors", "zerosnet20_cifar")  # read before the images
    seen = []

    def refuse(args):
        seen.append(args)
        raise ValueError("Cannot resume runs/finetune-parity with changed settings")

    monkeypatch.setattr(finetune, "train", refuse)
    assert finetune.main([]) == 2
    assert capsys.readouterr().err == "finetune.py: error: Cannot resume runs/finetune-parity with changed settings\n"
    assert [Path(a.pretrained_path) for a in seen] == [Path("runs/demo")]
    assert (seen[0].in_chans, seen[0].experiment) == (1, "finetune-parity")


def test_feature_extraction_takes_a_runs_channels_and_preprocessing(tmp_path):
    """A run directory's backbone is built with the run's input channels and family options and fed with its data
    config (a grey run used to fail inside timm); a run of another model is refused by name; a grey bare file gets
    one channel and the averaged statistics, as zerosnet-train --pretrained-path reads it."""
    import json

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("zerosnet_features", ROOT / "examples" / "feature_extraction.py")
    features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features)
    source = features.timm.create_model("zerosnet20_cifar", in_chans=1, num_classes=2, lam=1.0)  # not the default
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "model.safetensors")
    data_config = {"input_size": [1, 32, 32], "mean": [0.47], "std": [0.2], "interpolation": "bilinear"}
    run = {"model": "zerosnet20_cifar", "model_kwargs": {"lam": 1.0}, "num_classes": 2, "data_config": data_config}
    (tmp_path / "run.json").write_text(json.dumps(run))

    backbone, config = features.load_backbone("zerosnet20_cifar", tmp_path)
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(backbone(x)[-1], source.eval().forward_intermediates(x, intermediates_only=True)[-1])
    first_conv = source.pretrained_cfg["first_conv"] + ".weight"
    loaded = dict(backbone.named_parameters())
    stem = next(v for k, v in loaded.items() if k.endswith(first_conv))
    assert stem.shape[1] == 1 and torch.equal(stem, source.state_dict()[first_conv])
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()} == data_config
    with pytest.raises(ValueError, match="holds a 'zerosnet20_cifar' .* pass --model zerosnet20_cifar"):
        features.load_backbone("preresnet20_cifar", tmp_path)

    bare = tmp_path / "bare" / "grey.safetensors"  # no run.json: channels from the first conv, RGB statistics averaged
    bare.parent.mkdir()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, bare)
    _, config = features.load_backbone("zerosnet20_cifar", bare)
    rgb = features.timm.get_pretrained_cfg("zerosnet20_cifar")
    assert config["input_size"] == (1, 32, 32) and config["mean"] == pytest.approx((sum(rgb.mean) / 3,))


def _weights_file(path, model):
    """A weights file of a freshly built ``model``, as zerosnet-train saves them; returns the model."""
    from safetensors.torch import save_file

    source = timm.create_model(model, num_classes=10)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    return source


def _fake_run(run_dir, model="lmresnet20_cifar"):
    """A run directory of ``model`` as zerosnet-train leaves it, as far as the examples read it."""
    run_dir.mkdir(parents=True)
    source = _weights_file(run_dir / "model.safetensors", model)
    data_config = {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
    run = {"model": model, "model_kwargs": {}, "num_classes": 10, "data_config": data_config}
    (run_dir / "run.json").write_text(json.dumps(run))
    return source


def test_finetune_refuses_a_model_of_another_architecture_before_writing_images(tmp_path, capsys):
    """A --model that contradicts the source run was refused only after 1,797 parity PNGs were written under
    --output."""
    finetune = _load_finetune()
    _fake_run(tmp_path / "lm")
    argv = ["--source", str(tmp_path / "lm"), "--model", "zerosnet20_cifar", "--output", str(tmp_path / "out")]
    assert finetune.main(argv) == 2
    assert "holds a 'lmresnet20_cifar' (see its run.json) but --model is 'zerosnet20_cifar'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "digits-parity").exists()


def test_feature_extraction_takes_the_architecture_of_a_run(tmp_path, capsys):
    """A run of another family was built as zerosnet20_cifar and refused ("pass --model lmresnet20_cifar"); the
    architecture now comes from the run's run.json, as finetune.py takes it."""
    spec = importlib.util.spec_from_file_location("zerosnet_features", ROOT / "examples" / "feature_extraction.py")
    features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features)
    source = _fake_run(tmp_path / "lm")
    built = []
    real = features.load_backbone

    def load_backbone(model, checkpoint):
        built.append(model)
        backbone, config = real(model, checkpoint)
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(backbone(x)[-1], source.eval().forward_intermediates(x, intermediates_only=True)[-1])
        raise SystemExit(0)  # the backbone is what the test is about, not the linear head

    features.load_backbone = load_backbone
    with pytest.raises(SystemExit):
        features.main(["--checkpoint", str(tmp_path / "lm")])
    assert built == ["lmresnet20_cifar"]
    with pytest.raises(SystemExit):  # a --model given still wins, and is checked against the run
        features.main(["--checkpoint", str(tmp_path / "lm"), "--model", "zerosnet20_cifar"])
    assert built == ["lmresnet20_cifar", "zerosnet20_cifar"]


def test_model_table_refuses_names_that_match_nothing(capsys):
    """An empty table (a filter that matches nothing) or timm's traceback (an unknown --compare) is a usage error."""
    spec = importlib.util.spec_from_file_location("zerosnet_model_table", ROOT / "examples" / "model_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    refused = [
        (["--filter", "nomatch*"], "--filter 'nomatch*' matches none of our models"),
        (["--filter", "zerosnet20_cifar", "--compare", "resnet18", "resnet_nope"], "timm has no model resnet_nope"),
    ]
    for argv, message in refused:
        with pytest.raises(SystemExit) as exit_info:
            table.main([*argv, "--no-forward"])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert table.main(["--filter", "zerosnet20_cifar", "--compare", "resnet18", "--no-forward"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| zerosnet20_cifar", "| resnet18"]
    # one of ours in --compare that --filter matches already, and a name given twice: each model one row
    twice = ["--compare", "zerosnet20_cifar", "resnet18", "resnet18", "--no-forward"]
    assert table.main(["--filter", "zerosnet20_cifar", *twice]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| zerosnet20_cifar", "| resnet18"]


def test_model_table_reports_a_failing_forward_and_goes_on(capsys, monkeypatch):
    """A model whose forward raises is a FAILED row and a line on stderr (exit 1), and the other rows follow."""
    spec = importlib.util.spec_from_file_location("zerosnet_model_table", ROOT / "examples" / "model_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    create = timm.create_model

    def failing_resnet18(name, **kwargs):
        model = create(name, **kwargs)
        if name == "resnet18" and kwargs.get("device") != "meta":
            model.forward = lambda x: x.view(-1, 11)  # a forward that raises a RuntimeError
        return model

    monkeypatch.setattr(timm, "create_model", failing_resnet18)
    assert table.main(["--filter", "zerosnet20_cifar", "--compare", "resnet18", "resnet10t"]) == 1
    out, err = capsys.readouterr()
    rows = out.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| zerosnet20_cifar", "| resnet18", "| resnet10t"]
    assert "ok (" in rows[0] and rows[1].endswith("| FAILED |") and "ok (" in rows[2]
    assert err.startswith("forward of resnet18 failed: RuntimeError: shape '[-1, 11]' is invalid")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0", "1", "0"], "--seeds 0 1 0: each seed once"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--img-size", "0"], "--img-size must be at least 1, got 0"),
        (["--seeds", "0", "-1"], "--seeds: -1 is not a seed; seeds are whole numbers from 0 to 4294967295"),
        (["--seeds", str(2**32)], f"--seeds: {2**32} is not a seed"),
    ],
)
def test_zero_stability_study_refuses_bad_options_before_writing(argv, message, tmp_path, capsys):
    """A repeated seed counted one run twice in the mean; a zero epoch or size, or a seed numpy cannot take (negative,
    2**32 and over), ended in a traceback from train, the last after the folder was made."""
    with pytest.raises(SystemExit) as exit_info:
        study.main([*argv, "--out", str(tmp_path / "study")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_zero_stability_study_names_an_out_folder_it_cannot_create(capsys):
    """An --out the system will not create (here under /proc) was mkdir's bare FileNotFoundError traceback."""
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--out", "/proc/zerosnet_study"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--out /proc/zerosnet_study: cannot create the folder (" in err, err


def test_demo_says_whether_it_reproduced_the_staged_release(tmp_path):
    """The demo's summary compares its export with the weights the package's manifest records for the tag: a
    retraining on another CPU, or after the training code changed, is said to hold other weights."""
    import json

    from test_hub_export import make_run

    from timm_zerosnet.hub.export import export
    from timm_zerosnet.hub.manifest import stage
    from timm_zerosnet.release import use_manifest

    spec = importlib.util.spec_from_file_location("zerosnet_demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    staged = export(make_run(tmp_path / "a"), tmp_path / "export_a", repo_id="testorg/zerosnet20_cifar.c10")
    other = export(make_run(tmp_path / "b", seed=1), tmp_path / "export_b", repo_id="testorg/zerosnet20_cifar.c10")
    stage(staged.path, tmp_path / "releases.json")
    sha256 = json.loads((tmp_path / "releases.json").read_text())["releases"][0]["sha256"]
    with use_manifest(tmp_path / "releases.json"):
        assert demo.release_line(staged).endswith("zerosnet20_cifar.c10 (staged): these weights, bit for bit")
        line = demo.release_line(other)
    assert f"zerosnet20_cifar.c10 (staged) holds other weights (sha256 {sha256[:12]}..., these " in line
    assert other.files["model.safetensors"]["sha256"][:12] in line
    with use_manifest({"format": "timm_zerosnet.releases/1", "releases": []}):
        assert demo.release_line(staged) is None


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(tool, arguments) of every command line in the README's bash blocks and of docs/*.md's inline commands that
    name arguments; `accelerate launch` / `torchrun` lines by the module they run."""
    import re
    import shlex

    lines = [
        ln for b in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S) for ln in b.splitlines()
    ]
    for doc in sorted((ROOT / "docs").glob("*.md")):
        lines += [span for span in re.findall(r"`(zerosnet-[^`]+)`", doc.read_text()) if len(span.split()) > 2]
    commands = []
    for line in lines:
        argv = shlex.split(line, comments=True)
        if "-m" in argv and argv[argv.index("-m") + 1] == "timm_zerosnet.train":
            commands.append(("zerosnet-train", argv[argv.index("-m") + 2 :]))
        elif argv and argv[0].startswith("zerosnet-"):
            commands.append((argv[0], argv[1:]))
    return commands


def test_every_documented_command_line_is_accepted_by_its_tool():
    """The commands the README and docs/ show parse with their tool's parser, and zerosnet-train's pass its checks
    (values, ranges, recipes), so a pasted command fails, if at all, only on the user's paths."""
    from timm_zerosnet.analysis.cli import build_parser as analyze_parser
    from timm_zerosnet.hub.cli import build_parser as hub_parser
    from timm_zerosnet.train import check_args, parse_args
    from timm_zerosnet.validate import build_parser as validate_parser
    from timm_zerosnet.validate import parse_noise

    commands = _documented_commands()
    tools = {tool for tool, _ in commands}
    assert tools == {"zerosnet-train", "zerosnet-validate", "zerosnet-analyze", "zerosnet-hub"}
    assert sum(tool == "zerosnet-train" for tool, _ in commands) >= 6
    for tool, argv in commands:
        if tool == "zerosnet-train":
            check_args(parse_args(argv))
        elif tool == "zerosnet-validate":
            parse_noise(validate_parser().parse_args(argv).noise)
        else:
            (analyze_parser if tool == "zerosnet-analyze" else hub_parser)().parse_args(argv)


SPEC = ROOT.parent / "shared" / "spec" / "ANALYSIS.md"  # the reference moduli by lambda


def test_zero_stability_study_prints_the_specs_moduli(tmp_path, monkeypatch):
    """The study's table (and the README's) shows each lambda's largest spurious-root modulus as ANALYSIS.md gives
    it: lambda = -1.2 read 0.825 for 0.82446 (rounded to 4 digits, then to 3)."""
    import re

    text = SPEC.read_text()
    listing = text[text.index("Largest spurious-root modulus by lambda:") : text.index("it tends to 1/2")]
    reference = {float(lam): modulus for lam, modulus in re.findall(r"(-?\d+(?:\.\d+)?): (\d\.\d{3})", listing)}
    monkeypatch.setattr(study, "run_one", lambda *args, **kwargs: (50.0, "ok"))  # the moduli need no training
    with pytest.warns(UserWarning, match="not zero stable"):  # the (1, 1, 1, 1) scheme
        assert study.main(["--depth", "20", "--seeds", "0", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "results.md").read_text()
    readme = (ROOT / "README.md").read_text()
    schemes = [(label, kwargs["lam"]) for label, _, kwargs in study.SCHEMES if "lam" in kwargs]
    assert -1.2 in [lam for _, lam in schemes]  # the one the double rounding printed wrong
    for label, lam in schemes:
        assert f"| {label} | zerosnet20_cifar | {reference[lam]} |" in table
        assert f"| ZeroSNet lambda = {lam:g} | {reference[lam]} |" in readme


def test_examples_refuse_an_output_path_that_is_a_file(tmp_path, monkeypatch, capsys):
    """An output folder option naming a file (or a path under one) is one usage error line and status 2 before any
    work; it was a FileExistsError / NotADirectoryError traceback (the study's mkdir, the demo's iterdir, the
    fine-tuning's image folder when a source run was there)."""
    spec = importlib.util.spec_from_file_location("zerosnet_demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    finetune = _load_finetune()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "model.safetensors").write_bytes(b"")  # a source: finetune goes straight to its data
    monkeypatch.setattr(finetune, "train", lambda args: pytest.fail("trained with --output a file"))
    monkeypatch.setattr(demo, "train", lambda args: pytest.fail("trained with --run-dir a file"))
    taken = tmp_path / "taken"
    taken.write_text("x")
    for path in (taken, taken / "sub"):
        cases = [
            (study.main, "--out", "the study writes a folder of results; choose a folder"),
            (finetune.main, "--output", "the runs and the parity images are folders inside --output; choose a folder"),
            (demo.main, "--run-dir", "the demo's run is a folder; choose a folder"),
        ]
        for main, option, what in cases:
            try:
                status = main([option, str(path)])
            except SystemExit as e:
                status = e.code
            err = capsys.readouterr().err
            assert status == 2, (option, path, err)
            assert f"error: {option} {path}: {taken} is a file, and {what}\n" in err
            assert "Traceback" not in err
    assert taken.read_text() == "x"


def test_zero_stability_study_reports_a_refused_run_in_one_line(tmp_path, monkeypatch, capsys):
    """A run that zerosnet-train refuses (an earlier run in --out with other settings, say) is one `error:` line and
    status 2, as in finetune.py; it was train's traceback."""
    monkeypatch.setattr(study, "train", lambda args: (_ for _ in ()).throw(ValueError("Cannot resume: changed lr")))
    assert study.main(["--depth", "20", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "zero_stability_study.py: error: Cannot resume: changed lr\n"


@pytest.mark.filterwarnings("ignore:.*not zero stable")
def test_zero_stability_study_keeps_its_earlier_results_when_writing_fails(tmp_path, monkeypatch):
    """The results are written whole or not at all: a failure while writing (here a full disk during the plot) left a
    half-written accuracy_vs_modulus.png in place of the earlier study's, and no temporary file stays behind."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(study, "run_one", lambda *args, **kwargs: (50.0, "ok"))
    argv = ["--depth", "20", "--seeds", "0", "--out", str(tmp_path)]
    assert study.main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert sorted(before) == ["accuracy_vs_modulus.png", "results.csv", "results.md"]
    assert before["accuracy_vs_modulus.png"].startswith(b"\x89PNG")

    def full_disk(self, fname, *args, **kwargs):
        with open(fname, "wb") if isinstance(fname, (str, Path)) else contextlib.nullcontext(fname) as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(OSError, match="No space left"):
        study.main(argv)
    assert (tmp_path / "accuracy_vs_modulus.png").read_bytes() == before["accuracy_vs_modulus.png"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(before)


def test_finetune_fine_tunes_a_source_as_the_architecture_it_holds(tmp_path, monkeypatch, capsys):
    """A --source run of another family fine-tunes as its run.json's architecture (it was refused with "pass --model
    preresnet20_cifar", which finetune.py did not take); a bare weights file takes --model."""
    import json

    finetune = _load_finetune()
    monkeypatch.setattr(finetune, "write_parity_folder", lambda root: root)  # no images needed
    seen = []

    def stop(args):
        seen.append(args)
        raise ValueError("stop here")

    monkeypatch.setattr(finetune, "train", stop)
    run = tmp_path / "run"
    run.mkdir()
    _weights_file(run / "model.safetensors", "preresnet20_cifar")  # read before the images are written
    data_config = {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3}
    run_info = {"model": "preresnet20_cifar", "status": "finished", "num_classes": 10, "data_config": data_config}
    (run / "run.json").write_text(json.dumps(run_info))
    bare = tmp_path / "lm.safetensors"
    _weights_file(bare, "lmresnet20_cifar")
    out = str(tmp_path / "out")
    assert finetune.main(["--source", str(run), "--output", out]) == 2
    assert finetune.main(["--source", str(bare), "--model", "lmresnet20_cifar", "--output", out]) == 2
    assert finetune.main(["--source", str(bare), "--output", out]) == 2
    assert [a.model for a in seen] == ["preresnet20_cifar", "lmresnet20_cifar", "zerosnet20_cifar"]
    assert [Path(a.pretrained_path) for a in seen] == [run, bare, bare]


def _documented_script_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of every `python benchmarks/<name>.py ...` command in inline code of the README and
    benchmarks/README.md (an inline span may wrap over lines)."""
    import re
    import shlex

    spans = []
    for doc in (ROOT / "README.md", ROOT / "benchmarks" / "README.md"):
        text = doc.read_text()
        spans += [ln for block in re.findall(r"```\w*\n(.*?)```", text, re.S) for ln in block.splitlines()]
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # the blocks' fences would pair with inline backticks
        spans += [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", text)]
    commands = []
    for span in spans:
        match = re.match(r"(?:\S+=\S+ )*(?:(?:python3?|\.venv/bin/python) )?(benchmarks/\w+\.py)(.*)", span.strip())
        if match:
            commands.append((match.group(1), shlex.split(match.group(2), comments=True)))
    return commands


def test_every_documented_benchmark_command_is_accepted_by_its_script():
    """The benchmark commands the READMEs show parse with the script's own parser (its range, model and output
    checks included), as the zerosnet-* ones do; a GPU's command is refused here in the one line that says so."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        commands = _documented_script_commands()
        scripts = {}
        for script, _ in commands:
            module = importlib.import_module(Path(script).stem)
            if hasattr(module, "parse_args"):
                scripts[script] = module.parse_args
        checked = [(script, argv) for script, argv in commands if script in scripts]
        assert len(checked) >= 15 and {"benchmarks/benchmark.py", "benchmarks/bench_pairs.py"} <= set(scripts)
        for script, argv in checked:
            cuda = any(a.startswith("cuda") for a in argv) and not torch.cuda.is_available()
            try:
                scripts[script](argv)
            except SystemExit as e:
                assert cuda and e.code == 2, (script, argv)
            else:
                assert not cuda, (script, argv)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
