"""zerosnet-validate: checkpoint loading from a run directory, exact counts, and the pixel-space noise transform."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.data import create_transform

from conftest import reset_accelerate, write_tiny_mnist
from timm_zerosnet.data import TransformDataset, create_datasets
from timm_zerosnet.train import parse_args, train
from timm_zerosnet.validate import (
    PixelNoise,
    build_parser,
    create_eval_transform,
    main,
    noise_label,
    parse_noise,
    validate,
)

DATA_CONFIG = {
    "input_size": (3, 32, 32),
    "mean": (0.4914, 0.4822, 0.4465),
    "std": (0.2023, 0.1994, 0.2010),
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "crop_mode": "center",
}


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("val")
    options = "--img-size 16 --train-num-samples 64 --val-num-samples 45 -b 16 --epochs 1 --workers 0 --lr 0.05"
    options += " --threads 1"
    threads = torch.get_num_threads()
    train(parse_args([*options.split(), "--log-interval", "0", "--output", str(out), "--experiment", "run"]))
    reset_accelerate()
    torch.set_num_threads(threads)
    return out / "run"


def _image() -> Image.Image:
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[:16] = 255  # top half white, bottom half black
    arr[16:, :, 1] = 128
    return Image.fromarray(arr)


def test_noise_is_added_in_pixel_space_then_clamped_then_normalised():
    x = create_eval_transform(DATA_CONFIG, ("const", 0.1))(_image())
    mean, std = torch.tensor(DATA_CONFIG["mean"])[:, None, None], torch.tensor(DATA_CONFIG["std"])[:, None, None]
    pixels = x * std + mean  # back to [0, 1]
    assert torch.allclose(pixels[:, :16], torch.ones(3, 16, 32), atol=1e-6)  # 1 + 0.1 clamped to 1
    assert torch.allclose(pixels[0, 16:], torch.full((16, 32), 0.1), atol=1e-6)  # 0 + 0.1
    assert torch.allclose(pixels[1, 16:], torch.full((16, 32), 128 / 255 + 0.1), atol=1e-6)
    # adding c after normalisation (the authors' CIFAR-100 bug) would give something else
    clean = create_eval_transform(DATA_CONFIG)(_image())
    assert not torch.allclose(x, clean + 0.1, atol=1e-3)


def test_noise_free_pipeline_equals_timm_eval_transform():
    reference = create_transform(**DATA_CONFIG, is_training=False)(_image())
    assert torch.allclose(create_eval_transform(DATA_CONFIG, ("const", 0.0))(_image()), reference, atol=1e-6)
    assert torch.equal(create_eval_transform(DATA_CONFIG)(_image()), reference)


@pytest.mark.parametrize("kind", ["randn", "rand"])
def test_random_noise_is_seeded_per_image(kind):
    val = create_datasets({"val_num_samples": 4}, train=False).val
    tf = create_eval_transform(DATA_CONFIG, (kind, 0.1))
    a = TransformDataset(val, tf, seed=0)
    b = TransformDataset(val, tf, seed=0)
    assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[1][0], b[1][0])  # reproducible, order-independent
    assert not torch.equal(a[2][0], TransformDataset(val, tf, seed=1)[2][0])
    noisy = a[2][0]
    clean = TransformDataset(val, create_eval_transform(DATA_CONFIG), seed=None)[2][0]
    assert not torch.equal(noisy, clean)
    pixels = noisy * torch.tensor(DATA_CONFIG["std"])[:, None, None] + torch.tensor(DATA_CONFIG["mean"])[:, None, None]
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_rand_noise_has_positive_mean_and_randn_is_centred():
    x = torch.full((3, 64, 64), 0.5)
    torch.manual_seed(0)
    assert (PixelNoise("rand", 0.1)(x.clone()) - 0.5).mean() == pytest.approx(0.05, abs=5e-3)
    assert (PixelNoise("randn", 0.1)(x.clone()) - 0.5).mean() == pytest.approx(0.0, abs=5e-3)


def test_parse_noise():
    assert parse_noise("randn:0.1,rand:0.2, const:0.05") == [("randn", 0.1), ("rand", 0.2), ("const", 0.05)]
    assert parse_noise("randn") == [("randn", 0.1)] and parse_noise(None) == []
    with pytest.raises(ValueError, match="Unknown noise"):
        parse_noise("salt:0.1")
    for bad in ("randn:nan", "const:inf", "rand:-inf"):
        with pytest.raises(ValueError, match="the strength c must be a finite number"):
            parse_noise(bad)
    with pytest.raises(ValueError, match=r"lists randn:0.1 twice \(results are keyed by it\)"):
        parse_noise("randn:0.1,rand:0.1,randn:0.10")
    with pytest.raises(ValueError, match=r"lists const:0 twice"):  # -0 is 0 (two conditions labelled 0 and -0)
        parse_noise("const:0,const:-0")
    # the labels keep every digit of c that %g would drop: randn:0.1234567 was randn:0.123457, and a second
    # strength that rounds alike was refused as the same condition
    assert parse_noise("randn:0.1234567,randn:0.1234568") == [("randn", 0.1234567), ("randn", 0.1234568)]
    labels = [noise_label(k, c) for k, c in parse_noise("randn:0.1234567,rand:0.25,const:-0.05,randn:1e-07")]
    assert labels == ["randn:0.1234567", "rand:0.25", "const:-0.05", "randn:1e-07"]


def test_validate_a_run_directory_matches_the_training_metrics(trained_run, tmp_path):
    results_file = tmp_path / "results.json"
    options = "--workers 0 -b 7 --noise randn:0.1,const:0.1".split()
    assert main(["--checkpoint", str(trained_run), *options, "--results-file", str(results_file)]) == 0
    out = json.loads(results_file.read_text())
    logged = json.loads((trained_run / "metrics.json").read_text())[-1]
    clean = out["results"]["clean"]
    assert clean["count"] == logged["val_samples"] == 45
    assert clean["correct1"] == logged["val_correct1"] and clean["correct5"] == logged["val_correct5"]
    assert clean["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert set(out["results"]) == {"clean", "randn:0.1", "const:0.1"}
    assert out["model"] == "zerosnet20_cifar" and out["data_config"]["input_size"] == [3, 16, 16]
    assert out["weights"] == "final" and out["weights_file"] == str(trained_run / "model.safetensors")
    assert (out["in_chans"], out["input_img_mode"], out["model_kwargs"]) == (3, "RGB", {})
    # the same weights in a model built with other family options: the results say which (they had no word of it)
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "5", "--model-kwargs", "tau=0.5"]
    assert validate(build_parser().parse_args(argv))["model_kwargs"] == {"tau": 0.5}


def test_results_record_the_weights_actually_evaluated(trained_run, tmp_path):
    """A file of the run is recorded under the run's own name for it; --weights naming another kind is refused (it
    chooses among a run directory's weights; it was once ignored); the results file is written atomically."""
    results_file = tmp_path / "new" / "folder" / "final.json"  # folders made as needed
    weights = str(trained_run / "model.safetensors")
    for other in ("best", "ema"):
        with pytest.raises(ValueError, match=rf"--weights {other}: .*model.safetensors is the run's final weights"):
            validate(build_parser().parse_args(["--checkpoint", weights, "--weights", other, "--workers", "0"]))
        reset_accelerate()
    argv = ["--checkpoint", weights, "--weights", "final", "--workers", "0", "--results-file", str(results_file)]
    out = validate(build_parser().parse_args(argv))
    assert out["weights"] == "final" and json.loads(results_file.read_text())["weights_file"] == weights
    assert [p.name for p in results_file.parent.iterdir()] == ["final.json"]
    assert out["noise_seed"] is None  # no noise evaluated: no seed to record
    reset_accelerate()
    bare = tmp_path / "bare"  # a folder of weights without run.json: --weights picks the file, and is recorded
    bare.mkdir()
    (bare / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    argv = ["--checkpoint", str(bare), "--model", "zerosnet20_cifar", "--workers", "0", "--num-samples", "5"]
    out = validate(build_parser().parse_args(argv))
    assert out["weights"] == "final" and out["weights_file"] == str(bare / "model.safetensors")


def test_data_flags_win_over_the_runs_dataset_settings():
    from timm_zerosnet.validate import _data_args

    info = {"dataset": {"name": "folder", "data_dir": "/d", "val_split": "validation", "class_map": "run_map"}}
    args = build_parser().parse_args(["--checkpoint", "x", "--split", "test", "--class-map", "other_map"])
    data = _data_args(args, info, 3)
    assert (data["val_split"], data["class_map"], data["data_dir"]) == ("test", "other_map", "/d")
    data = _data_args(build_parser().parse_args(["--checkpoint", "x"]), info, 3)
    assert (data["val_split"], data["class_map"]) == ("validation", "run_map")
    # another dataset: the run's folder, split, class map and columns were its own (its folder was once kept)
    info["dataset"].update(input_key="img", target_key="y", input_img_mode="L")
    data = _data_args(build_parser().parse_args(["--checkpoint", "x", "--dataset", "digits"]), info, 1)
    assert data["dataset"] == "digits" and data["input_img_mode"] == "L"
    assert [data[k] for k in ("data_dir", "val_split", "class_map", "input_key", "target_key")] == [None] * 5


def test_another_dataset_than_the_runs_is_read_without_its_folder(tmp_path, trained_run):
    """A folder-trained run evaluated on the embedded digits: --dataset digits alone (it was refused, naming a
    --data-dir the user never gave)."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.safetensors", "run.json"):
        (run / name).write_bytes((trained_run / name).read_bytes())
    info = json.loads((run / "run.json").read_text())
    info["dataset"].update(name="folder", data_dir=str(tmp_path / "images"), val_split="val")
    (run / "run.json").write_text(json.dumps(info))
    argv = ["--checkpoint", str(run), "--dataset", "digits", "--workers", "0", "--num-samples", "10"]
    assert validate(build_parser().parse_args(argv))["results"]["clean"]["count"] == 10


def test_input_img_mode_is_an_option_and_a_channel_count_without_a_mode_is_refused(trained_run, tmp_path):
    """timm's --input-img-mode: a bare 2-channel file has no default mode (it was fed 'L' images and failed deep in
    torch); a mode with other bands is refused, and so is one whose pixels are not 8-bit."""
    from timm import create_model

    two = tmp_path / "two.safetensors"
    save_file(create_model("zerosnet20_cifar", in_chans=2).state_dict(), two)
    argv = ["--checkpoint", str(two), "--model", "zerosnet20_cifar", "--in-chans", "2", "--workers", "0"]
    with pytest.raises(ValueError, match="--in-chans 2: no default image mode has 2 channels; pass --input-img-mode"):
        validate(build_parser().parse_args(argv))
    reset_accelerate()
    out = validate(build_parser().parse_args([*argv, "--input-img-mode", "LA", "--num-samples", "4"]))
    assert out["results"]["clean"]["count"] == 4 and out["input_img_mode"] == "LA"  # the results say which
    reset_accelerate()
    with pytest.raises(ValueError, match="--input-img-mode RGB gives 3-channel images but the model takes 2"):
        validate(build_parser().parse_args([*argv, "--input-img-mode", "RGB"]))
    reset_accelerate()
    grey = tmp_path / "grey.safetensors"
    save_file(create_model("zerosnet20_cifar", in_chans=1).state_dict(), grey)
    one = ["--checkpoint", str(grey), "--model", "zerosnet20_cifar", "--in-chans", "1", "--workers", "0"]
    # modes whose pixels are not 8-bit: I / I;16 were a TypeError traceback from Normalize, F evaluated unscaled
    # 0..255 values and P palette indices, without a word (with or without --noise)
    for mode in ("F", "I", "I;16", "P"):
        for noise in ([], ["--noise", "const:0.1"]):
            with pytest.raises(ValueError, match=rf"--input-img-mode {mode}: its pixels are not 8-bit intensities"):
                validate(build_parser().parse_args([*one, "--input-img-mode", mode, *noise]))
            reset_accelerate()
    out = validate(
        build_parser().parse_args([*one, "--input-img-mode", "L", "--noise", "const:0.1", "--num-samples", "4"])
    )
    assert set(out["results"]) == {"clean", "const:0.1"}


def test_a_run_with_another_image_mode_is_evaluated_in_that_mode(tmp_path):
    """run.json records the run's --input-img-mode (here YCbCr): evaluating in RGB gave other numbers."""
    options = "--img-size 16 --train-num-samples 32 --val-num-samples 20 -b 16 --epochs 1 --workers 0 --threads 1"
    threads = torch.get_num_threads()
    argv = [*options.split(), "--input-img-mode", "YCbCr", "--log-interval", "0", "--output", str(tmp_path)]
    train(parse_args([*argv, "--experiment", "ycbcr"]))
    reset_accelerate()
    torch.set_num_threads(threads)
    out = validate(build_parser().parse_args(["--checkpoint", str(tmp_path / "ycbcr"), "--workers", "0"]))
    logged = json.loads((tmp_path / "ycbcr" / "metrics.json").read_text())[-1]
    clean = out["results"]["clean"]
    assert clean["correct1"] == logged["val_correct1"] and clean["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert out["input_img_mode"] == "YCbCr"  # the results name the mode evaluated, taken from the run
    # its export, loaded as a published model: config.json's input_img_mode (it was evaluated in RGB)
    from timm_zerosnet.hub.export import export

    exported = export(tmp_path / "ycbcr", tmp_path / "export", tag="ycc").path
    reset_accelerate()
    argv = ["--model", f"local-dir:{exported}", "--pretrained", "--workers", "0", "--dataset", "digits"]
    published_out = validate(build_parser().parse_args([*argv, "--num-samples", "20"]))
    published = published_out["results"]["clean"]
    assert published["correct1"] == clean["correct1"] and published["loss"] == pytest.approx(clean["loss"], rel=1e-5)
    assert published_out["input_img_mode"] == "YCbCr"  # from the export's config.json


def test_validate_noise_results_are_reproducible(trained_run):
    argv = ["--checkpoint", str(trained_run / "model.safetensors"), "--workers", "0", "--noise", "randn:0.3"]
    first = validate(build_parser().parse_args(argv))["results"]["randn:0.3"]
    AcceleratorState._reset_state(reset_partial_state=True)
    second = validate(build_parser().parse_args(argv + ["-b", "5"]))["results"]["randn:0.3"]
    assert first["correct1"] == second["correct1"] and first["loss"] == pytest.approx(second["loss"], rel=1e-5)


def test_model_kwargs_are_parsed_like_zerosnet_train(capsys):
    assert build_parser().parse_args(["--model-kwargs", "lam=-1.5", "tau=0.5"]).model_kwargs == dict(lam=-1.5, tau=0.5)
    with pytest.raises(SystemExit):  # it became lam=None
        build_parser().parse_args(["--model-kwargs", "lam"])
    assert "--model-kwargs expects key=value pairs, got 'lam'" in capsys.readouterr().err


def test_bare_weights_file_needs_the_model_name(trained_run, tmp_path):
    lone = tmp_path / "weights.safetensors"
    lone.write_bytes((trained_run / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="--model"):
        validate(build_parser().parse_args(["--checkpoint", str(lone)]))
    AcceleratorState._reset_state(reset_partial_state=True)
    options = "--model zerosnet20_cifar --num-classes 10 --img-size 16 --num-samples 45 --workers 0".split()
    out = validate(build_parser().parse_args(["--checkpoint", str(lone), *options]))
    assert out["results"]["clean"]["count"] == 45


def test_an_export_folders_weights_are_refused_naming_its_local_dir_source(trained_run, tmp_path):
    """An export's model.safetensors with --model was evaluated at the default input size and lambda, not those of
    its config.json (12.39% where local-dir: gives 10.99%, without a word); the folder named only --model."""
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    (export / "config.json").write_text(json.dumps({"architecture": "zerosnet20_cifar", "num_classes": 10}))
    (export / "release.json").write_text("{}")
    for checkpoint in (export, export / "model.safetensors"):
        args = build_parser().parse_args(["--checkpoint", str(checkpoint), "--model", "zerosnet20_cifar"])
        with pytest.raises(
            ValueError, match=rf"{export} is an export folder .*--model local-dir:{export} --pretrained"
        ):
            validate(args)


def test_missing_data_dir_is_named(trained_run, tmp_path):
    argv = ["--checkpoint", str(trained_run), "--dataset", "folder", "--data-dir", str(tmp_path / "missing")]
    with pytest.raises(FileNotFoundError, match="data dir .*missing' does not exist; pass --data-dir"):
        validate(build_parser().parse_args([*argv, "--workers", "0"]))


def test_more_dataset_classes_than_model_outputs_is_a_clear_error(trained_run, tmp_path):
    three = tmp_path / "three"
    three.mkdir()
    info = json.loads((trained_run / "run.json").read_text())
    info["num_classes"], info["label_names"] = 3, ["0", "1", "2"]
    (three / "run.json").write_text(json.dumps(info))
    weights = load_file(trained_run / "model.safetensors")
    weights["fc.weight"], weights["fc.bias"] = weights["fc.weight"][:3].clone(), weights["fc.bias"][:3].clone()
    save_file(weights, three / "model.safetensors")
    argv = ["--checkpoint", str(three), "--dataset", "digits", "--workers", "0"]
    with pytest.raises(ValueError, match=r"the dataset has 10 classes \(0, 1, 2, 3, 4, ...\) but the model predicts 3"):
        validate(build_parser().parse_args(argv))


def test_missing_or_damaged_weights_say_why_and_what_to_evaluate(trained_run, tmp_path):
    """A run without EMA asked for its EMA, nothing to evaluate, a damaged file, bad sample counts and noise."""

    def run(*argv):
        return validate(build_parser().parse_args([*argv, "--workers", "0"]))

    with pytest.raises(FileNotFoundError, match=r"has no ema weights .*trained without --model-ema.*--weights final"):
        run("--checkpoint", str(trained_run), "--weights", "ema")
    with pytest.raises(FileNotFoundError, match="no such weights file or run directory"):
        run("--checkpoint", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="Nothing to evaluate: pass --checkpoint"):
        run()
    with pytest.raises(ValueError, match="--pretrained evaluates the model's released weights and --checkpoint"):
        run("--checkpoint", str(trained_run), "--pretrained")  # --pretrained was ignored
    with pytest.raises(ValueError, match="--num-samples must be at least 0, got -1"):
        run("--checkpoint", str(trained_run), "--num-samples", "-1")
    with pytest.raises(ValueError, match=r"--noise randn:abc: the strength c must be a number \(e.g. randn:0.1\)"):
        run("--checkpoint", str(trained_run), "--noise", "randn:abc")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes((trained_run / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cannot read .*damaged.safetensors .*damaged or truncated"):
        run("--checkpoint", str(damaged), "--model", "zerosnet20_cifar", "--num-classes", "10")


def test_bad_input_is_one_error_line_and_exit_status_2(trained_run, tmp_path, capsys):
    from timm_zerosnet.train import main as train_main

    assert main(["--checkpoint", str(trained_run), "--weights", "ema", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zerosnet-validate: error: ") and "trained without" in err
    for extra, message in (
        (["--model", "nosuch"], "--model 'nosuch' is not a registered model"),  # were tracebacks
        (["--model-kwargs", "foo=1"], "--model-kwargs foo=1: zerosnet20_cifar cannot be built with them"),
        (["--model", "zerosnet32_cifar"], "the --model, --num-classes, --in-chans and --model-kwargs it was"),
        (["--num-classes", "5"], "does not fit zerosnet20_cifar (num_classes=5, in_chans=3"),  # the flags win
        (["--in-chans", "1"], "does not fit zerosnet20_cifar (num_classes=10, in_chans=1"),
        (["-b", "0"], "--batch-size must be at least 1, got 0"),
    ):
        assert main(["--checkpoint", str(trained_run), "--workers", "0", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("zerosnet-validate: error: ") and message in err
    # --weights with --pretrained was ignored: the released weights were evaluated and the results said weights None
    assert main(["--model", "zerosnet20_cifar", "--pretrained", "--weights", "ema", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--weights ema chooses among a run directory's weights (--checkpoint)" in err
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"x" * 100)
    argv = ["--pretrained-path", str(damaged), "--output", str(tmp_path), "--no-keep-heap"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zerosnet-train: error: --pretrained-path ")
    assert "damaged or truncated" in err


def test_an_unknown_pretrained_tag_is_one_error_line_naming_the_tags(trained_run, capsys):
    """timm's "Invalid pretrained tag (nonexist) for ..." was a RuntimeError traceback (exit status 1), with released
    weights asked for or a weights file given."""
    for argv, message in (
        (["--model", "zerosnet20_cifar.nonexist", "--pretrained"], "those with weights are zerosnet20_cifar.digits"),
        (
            ["--model", "resnet18.nonexist", "--checkpoint", str(trained_run / "model.safetensors")],
            "those with weights are resnet18.a1_in1k, ",
        ),
    ):
        assert main([*argv, "--workers", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"zerosnet-validate: error: --model '{argv[1]}': "), err
        assert "has no pretrained tag 'nonexist'" in err and message in err, err


def test_num_samples_defaults_to_the_runs_and_0_is_the_whole_split(trained_run):
    def count(*argv):
        out = validate(build_parser().parse_args(["--checkpoint", str(trained_run), "--workers", "0", *argv]))
        reset_accelerate()
        return out["results"]["clean"]["count"]

    assert count() == 45  # the run's --val-num-samples
    assert count("--num-samples", "0") == 355  # the whole digits validation split
    assert count("--num-samples", "10") == 10


def test_a_sample_count_past_the_split_reads_it_whole_with_a_note_and_records_no_count(trained_run, capsys):
    """--num-samples 100000 evaluated all 355 digits without a word, and the results recorded 100000 beside them."""
    capsys.readouterr()
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "100000"]
    out = validate(build_parser().parse_args(argv))
    assert (
        "note: --num-samples 100000: the 'validation' split has only 355 images, so all 355 are used"
        in capsys.readouterr().out
    )
    assert (out["dataset"]["num_samples"], out["dataset"]["samples"], out["results"]["clean"]["count"]) == (
        None,
        355,
        355,
    )
    reset_accelerate()
    out = validate(build_parser().parse_args([*argv[:-1], "10"]))
    assert (out["dataset"]["num_samples"], out["dataset"]["samples"]) == (10, 10) and "note:" not in (
        capsys.readouterr().out
    )


def test_a_count_past_the_split_taken_from_the_run_is_named_as_the_runs(trained_run, tmp_path, capsys):
    """A run.json whose --val-num-samples is larger than the evaluated split (one written before such counts were
    recorded as the whole split): the note named --num-samples, an option the user never passed."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    info = json.loads((run / "run.json").read_text())
    info["dataset"]["val_num_samples"] = 1000
    (run / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    out = validate(build_parser().parse_args(["--checkpoint", str(run), "--workers", "0"]))
    reset_accelerate()
    printed = capsys.readouterr().out
    assert "note: the run's --val-num-samples 1000: the 'validation' split has only 355 images" in printed
    assert "--num-samples 1000" not in printed and out["results"]["clean"]["count"] == 355


def test_mean_and_std_counts_are_checked_as_in_training(trained_run):
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--mean", "0.1", "0.9"]
    with pytest.raises(ValueError, match=r"--mean has 2 values but the model takes 3 channel\(s\)"):
        validate(build_parser().parse_args(argv))


def test_dataset_names_without_their_prefix_say_what_to_use():
    from timm_zerosnet.data import create_datasets

    with pytest.raises(ValueError, match=r"--dataset 'cifar10' is not a dataset name .*'torch/cifar10'"):
        create_datasets({"dataset": "cifar10"})
    assert len(create_datasets({"dataset": "Digits"}, train=False).val) == 355


def test_a_data_dir_alone_on_a_digits_run_evaluates_that_folder(trained_run, tmp_path, monkeypatch):
    """The run's dataset is the digits, which read no data dir: --data-dir must not be silently ignored."""
    for i in range(10):
        (tmp_path / "val" / str(i)).mkdir(parents=True)
        Image.new("RGB", (32, 32), (20 * i, 0, 0)).save(tmp_path / "val" / str(i) / "a.png")
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--data-dir", str(tmp_path), "--num-samples", "0"]
    out = validate(build_parser().parse_args(argv))
    assert out["results"]["clean"]["count"] == 10
    # the results name the split read: the folder timm's search found (they said "split": null)
    assert out["dataset"]["split"] == "val"
    reset_accelerate()
    # and the data dir absolute, as run.json does (they recorded it as typed)
    monkeypatch.chdir(tmp_path.parent)
    relative = validate(build_parser().parse_args([*argv[:-3], tmp_path.name, *argv[-2:]]))
    assert relative["dataset"]["data_dir"] == str(tmp_path) and relative["results"]["clean"]["count"] == 10
    reset_accelerate()
    for i in range(10):  # beside val/, a validation/ folder: the one the default split 'validation' reads
        (tmp_path / "validation" / str(i)).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (32, 32), (20 * i, j, 0)).save(tmp_path / "validation" / str(i) / f"{j}.png")
    out = validate(build_parser().parse_args(argv))
    assert out["dataset"]["split"] == "validation" and out["results"]["clean"]["count"] == 20
    reset_accelerate()
    digits = validate(build_parser().parse_args(["--checkpoint", str(trained_run), "--workers", "0"]))
    assert digits["dataset"]["split"] == "validation"


def test_a_split_folder_is_read_whole_without_a_split_and_download_is_no_folders_option(trained_run, tmp_path):
    """--data-dir DATA/val --split train (or a typo) evaluated DATA/val without a word and recorded the split given;
    --dataset-download was ignored for an ImageFolder. Both are refused; the split folder alone records no split."""
    for i in range(10):
        (tmp_path / "val" / str(i)).mkdir(parents=True)
        Image.new("RGB", (32, 32), (20 * i, 0, 0)).save(tmp_path / "val" / str(i) / "a.png")
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--dataset", "folder", "--num-samples", "0"]
    with pytest.raises(ValueError, match=r"--split train: --data-dir .*val is a split folder itself"):
        validate(build_parser().parse_args([*argv, "--data-dir", str(tmp_path / "val"), "--split", "train"]))
    torch_folder = [*argv[:-4], "--dataset", "torch/folder", "--num-samples", "0"]  # timm's name of an ImageFolder
    with pytest.raises(ValueError, match=r"--split train: --data-dir .*val is a split folder itself"):
        validate(build_parser().parse_args([*torch_folder, "--data-dir", str(tmp_path / "val"), "--split", "train"]))
    out = validate(build_parser().parse_args([*argv, "--data-dir", str(tmp_path / "val")]))
    assert out["dataset"]["split"] is None and out["results"]["clean"]["count"] == 10
    # a root whose split folder is named as no timm split: --split names it, and it is the root
    (tmp_path / "val").rename(tmp_path / "holdout")
    out = validate(build_parser().parse_args([*argv, "--data-dir", str(tmp_path), "--split", "holdout"]))
    assert out["dataset"]["split"] == "holdout" and out["results"]["clean"]["count"] == 10
    (tmp_path / "holdout").rename(tmp_path / "val")
    for data_dir in (tmp_path, tmp_path / "val"):
        with pytest.raises(ValueError, match="is an ImageFolder, read as it is: leave --dataset-download out"):
            validate(build_parser().parse_args([*argv, "--data-dir", str(data_dir), "--dataset-download"]))


def test_data_flags_override_a_run_directorys_recorded_data_config(trained_run):
    """A run directory's run.json gives the data config (input size 16, crop_pct 1.0, ...), but --img-size, --mean,
    --std, --crop-pct and --interpolation given by the user win: each one is what the evaluation used."""
    recorded = json.loads((trained_run / "run.json").read_text())["data_config"]
    flags = "--img-size 24 --crop-pct 0.9 --mean 0.1 0.2 0.3 --std 0.4 0.5 0.6 --interpolation bicubic".split()
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "5", *flags]
    cfg = validate(build_parser().parse_args(argv))["data_config"]
    assert list(recorded["input_size"]) == [3, 16, 16] and recorded["crop_pct"] != 0.9  # the flags change things
    assert recorded["interpolation"] != "bicubic" and list(recorded["mean"]) != [0.1, 0.2, 0.3]
    assert cfg["input_size"] == [3, 24, 24]  # --img-size, not the run's 16
    assert cfg["crop_pct"] == 0.9 and cfg["interpolation"] == "bicubic"
    assert cfg["mean"] == [0.1, 0.2, 0.3] and cfg["std"] == [0.4, 0.5, 0.6]
    assert "img_size" not in cfg  # applied as input_size, not stored under its own key


def test_a_run_named_by_a_hub_source_builds_its_architecture_offline(trained_run, tmp_path):
    """A run started from hf-hub:ORG/NAME records that name; validating the run's own weights builds the
    architecture its pretrained cfg recorded, so nothing is looked up on the Hub (the tests run offline)."""
    run = tmp_path / "from_hub"
    run.mkdir()
    for name in ("model.safetensors", "metrics.json", "run.json"):
        (run / name).write_bytes((trained_run / name).read_bytes())
    info = json.loads((run / "run.json").read_text())
    cfg = dict(info.get("pretrained_cfg") or {}, architecture=info["model"])
    (run / "run.json").write_text(json.dumps(dict(info, model="hf-hub:nobody/not-in-any-cache", pretrained_cfg=cfg)))
    results_file = tmp_path / "results.json"
    assert main(["--checkpoint", str(run), "--workers", "0", "--results-file", str(results_file)]) == 0
    out = json.loads(results_file.read_text())
    logged = json.loads((trained_run / "metrics.json").read_text())[-1]
    assert out["results"]["clean"]["correct1"] == logged["val_correct1"]
    assert out["model"] == "hf-hub:nobody/not-in-any-cache"


def test_results_are_keyed_as_given(trained_run):
    """Each condition is keyed kind:c as --noise names it ('rand:1', not 'rand:1.0'), after 'clean', and the noise
    seed (default 0) is recorded. (--pretrained with --checkpoint, which once evaluated the checkpoint, is refused:
    test_missing_or_damaged_weights_say_why_and_what_to_evaluate.)"""
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "6"]
    out = validate(build_parser().parse_args([*argv, "--noise", "rand:1,const:0.25"]))
    assert out["weights_file"] == str(trained_run / "model.safetensors")
    assert list(out["results"]) == ["clean", "rand:1", "const:0.25"]
    assert out["results"]["rand:1"]["count"] == 6 and out["noise_seed"] == 0


def test_torchcompile_evaluates_the_same_and_crop_mode_overrides_the_runs(trained_run):
    """--torchcompile compiles the evaluated model (a captured graph, the same predictions as eager); --crop-mode
    replaces the run's eval crop (squash: both sides resized to the crop's scale; the default keeps the aspect)."""
    from torch._dynamo.utils import counters

    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "40"]
    eager = validate(build_parser().parse_args(argv))["results"]["clean"]
    torch._dynamo.reset()  # an earlier test's compiled graph of the same model code would be reused, not counted
    counters.clear()
    reset_accelerate()  # accelerate keeps its first Accelerator's state, torch.compile setting included
    try:
        compiled = validate(build_parser().parse_args([*argv, "--torchcompile", "eager"]))["results"]["clean"]
        assert counters["stats"]["unique_graphs"] >= 1
    finally:
        torch._dynamo.reset()
        reset_accelerate()
    assert (compiled["correct1"], compiled["count"]) == (eager["correct1"], eager["count"])
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-5)
    out = validate(build_parser().parse_args([*argv, "--crop-mode", "squash"]))
    assert out["data_config"]["crop_mode"] == "squash"
    resize = create_eval_transform(out["data_config"]).transforms[0]
    assert isinstance(resize.size, (tuple, list)) and len(resize.size) == 2  # both sides: the aspect is not kept
    assert isinstance(create_eval_transform(dict(out["data_config"], crop_mode="center")).transforms[0].size, int)


def test_the_runs_global_pool_is_rebuilt(trained_run, tmp_path):
    """run.json records --gp; the evaluated model pools the same way (a pool has no weights to say so)."""
    from timm_zerosnet.validate import load_model

    run = tmp_path / "maxpool"
    run.mkdir()
    info = json.loads((trained_run / "run.json").read_text())
    info["global_pool"] = "max"
    (run / "run.json").write_text(json.dumps(info))
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    model, _ = load_model(build_parser().parse_args(["--checkpoint", str(run)]))
    assert model.global_pool.pool_type == "max"
    model, _ = load_model(build_parser().parse_args(["--checkpoint", str(trained_run)]))
    assert model.global_pool.pool_type == "avg"


def test_a_folder_with_some_of_the_checkpoints_classes_keeps_their_labels(trained_run, tmp_path):
    """Evaluating a digits run on a folder holding only the 3s and 7s: their labels are the checkpoint's 3 and 7,
    not 0 and 1 (the folder's own order)."""
    from timm_zerosnet.validate import _data_args

    for c in ("3", "7"):
        (tmp_path / "val" / c).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "val" / c / "a.png")
    info = json.loads((trained_run / "run.json").read_text())
    args = build_parser().parse_args(["--checkpoint", str(trained_run), "--data-dir", str(tmp_path)])
    val = create_datasets(_data_args(args, info, 3), train=False).val
    assert sorted(val[i][1] for i in range(len(val))) == [3, 7]


def test_a_bare_grey_weights_file_gets_grey_images_and_one_channel_statistics(tmp_path):
    """Without run.json, the images are read in the mode of the model's channels (L for one) and the RGB mean/std of
    the model's config become one value each, their average (as timm sums the RGB stem filters)."""
    import timm

    model = timm.create_model("zerosnet20_cifar", in_chans=1)
    save_file(model.state_dict(), tmp_path / "grey.safetensors")
    argv = ["--checkpoint", str(tmp_path / "grey.safetensors"), "--model", "zerosnet20_cifar", "--in-chans", "1"]
    out = validate(build_parser().parse_args([*argv, "--workers", "0", "--num-samples", "3", "--img-size", "16"]))
    rgb = model.pretrained_cfg
    assert out["data_config"]["input_size"] == [1, 16, 16] and out["results"]["clean"]["count"] == 3
    assert out["data_config"]["mean"] == [pytest.approx(sum(rgb["mean"]) / 3)]
    assert out["data_config"]["std"] == [pytest.approx(sum(rgb["std"]) / 3)]


def test_data_flags_reach_the_data_config_of_a_bare_weights_file(trained_run, tmp_path):
    """Without run.json the data config is timm's for the model, with --img-size, --crop-pct, --interpolation,
    --mean and --std applied; the model's class count is recorded."""
    lone = tmp_path / "weights.safetensors"
    lone.write_bytes((trained_run / "model.safetensors").read_bytes())
    flags = "--img-size 24 --crop-pct 0.9 --interpolation bicubic --mean 0.1 0.2 0.3 --std 0.4 0.5 0.6".split()
    argv = ["--checkpoint", str(lone), "--model", "zerosnet20_cifar", "--workers", "0", "--num-samples", "3", *flags]
    out = validate(build_parser().parse_args(argv))
    cfg = out["data_config"]
    assert cfg["input_size"] == [3, 24, 24] and cfg["crop_pct"] == 0.9 and cfg["interpolation"] == "bicubic"
    assert cfg["mean"] == [0.1, 0.2, 0.3] and cfg["std"] == [0.4, 0.5, 0.6] and out["num_classes"] == 10


def test_classes_that_differ_from_the_checkpoints_are_warned_about(trained_run, tmp_path, capsys):
    run = tmp_path / "named"
    run.mkdir()
    info = json.loads((trained_run / "run.json").read_text())
    info["label_names"] = [f"class{i}" for i in range(10)]
    (run / "run.json").write_text(json.dumps(info))
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    validate(build_parser().parse_args(["--checkpoint", str(run), "--workers", "0", "--num-samples", "3"]))
    out = capsys.readouterr().out
    assert "warning: the dataset's classes ['0', '1', '2', '3', '4']... differ from the checkpoint's" in out
    assert "['class0', 'class1'" in out
    reset_accelerate()
    validate(build_parser().parse_args(["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "3"]))
    assert "warning" not in capsys.readouterr().out


def test_a_results_file_never_overwrites_the_run_it_evaluates(trained_run, tmp_path):
    """--results-file onto the weights evaluated, run.json, the metrics, other weights or a training state is refused
    before anything is written (it once replaced run.json, after which the run could not be read)."""
    run = tmp_path / "run"
    run.mkdir()
    for p in trained_run.iterdir():
        if p.is_file():
            (run / p.name).write_bytes(p.read_bytes())
    (run / "checkpoints").mkdir()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for checkpoint, target in (
        (run, "run.json"),
        (run, "metrics.json"),
        (run, "model_ema.safetensors"),
        (run, "best.safetensors"),
        (run / "model.safetensors", "args.yaml"),
        (run, "checkpoints/latest"),
    ):
        argv = ["--checkpoint", str(checkpoint), "--workers", "0", "--results-file", str(run / target)]
        with pytest.raises(ValueError, match=rf"would overwrite {target} of the run in .*; name a file of its own"):
            validate(build_parser().parse_args(argv))
        reset_accelerate()
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((run / "model.safetensors").read_bytes())
    for checkpoint, target, message in (
        (bare, bare, "is the weights file being evaluated"),
        (run, run / "model.safetensors", "would overwrite model.safetensors of the run in"),
    ):
        argv = ["--checkpoint", str(checkpoint), "--model", "zerosnet20_cifar", "--results-file", str(target)]
        with pytest.raises(ValueError, match=message):
            validate(build_parser().parse_args(argv))
        reset_accelerate()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert not any((run / "checkpoints").iterdir())
    reset_accelerate()
    argv = ["--checkpoint", str(run), "--workers", "0", "--num-samples", "3"]
    assert validate(build_parser().parse_args([*argv, "--results-file", str(run / "validation.json")]))["results"]


def test_a_results_file_never_overwrites_another_run_or_a_file_that_is_not_results(
    trained_run, tmp_path, capsys, monkeypatch
):
    """Another run's weights, run.json or training states, and any existing file that is not an earlier results
    file, are refused before the evaluation, as a folder that cannot be written in is (these were replaced by the
    results JSON, or the evaluation ran to a PermissionError traceback)."""
    from timm_zerosnet import run_layout

    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    for name in ("run.json", "model.safetensors"):
        (other / name).write_bytes((trained_run / name).read_bytes())
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n not results")
    before = {p: p.read_bytes() for p in (*other.iterdir(), photo) if p.is_file()}
    base = ["--checkpoint", str(trained_run), "--workers", "0", "--results-file"]
    for target, message in (
        (other / "model.safetensors", f"would overwrite model.safetensors of the run in {other}"),
        (other / "run.json", f"would overwrite run.json of the run in {other}"),
        (other / "checkpoints" / "r.json", f"would overwrite checkpoints/r.json of the run in {other}"),
        (photo, f"--results-file {photo} exists and is not a results file of zerosnet-validate; name another file"),
    ):
        assert main([*base, str(target)]) == 2, target
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and message in captured.err, captured.err
        assert "clean" not in captured.out
    assert {p: p.read_bytes() for p in before} == before and not (other / "checkpoints" / "r.json").exists()

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_layout.tempfile, "TemporaryFile", no_write)
    assert main([*base, str(tmp_path / "new" / "r.json")]) == 2
    captured = capsys.readouterr()
    assert f"cannot write in {tmp_path} (Permission denied); name a path you can write" in captured.err
    assert "clean" not in captured.out and not (tmp_path / "new").exists()


def test_a_run_json_overwritten_by_another_file_is_named_as_such(trained_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    (run / "run.json").write_text(json.dumps({"weights": "final", "results": {}}))  # results written over it
    with pytest.raises(ValueError, match=r"run.json is not a run.json of zerosnet-train .* restore it"):
        validate(build_parser().parse_args(["--checkpoint", str(run), "--workers", "0"]))


def test_a_training_checkpoint_of_timms_train_py_is_evaluated(trained_run, tmp_path, capsys):
    """timm's train.py saves dict(state_dict=..., state_dict_ema=..., args=Namespace, ...), with DDP's 'module.'
    prefix when it trained on several processes: its weights load (weights_only, the Namespace allowed as timm
    allows it), --weights ema takes the EMA ones, and a checkpoint without them says so. Without --weights, a note
    says which weights were evaluated (zerosnet-train --pretrained-path fine-tunes the others)."""
    import argparse

    sd = load_file(trained_run / "model.safetensors")
    ema = {k: v.clone() for k, v in sd.items()}
    ema["fc.bias"] += 100.0 * torch.arange(ema["fc.bias"].numel())  # the EMA head always predicts the last class
    path = tmp_path / "model_best.pth.tar"
    ckpt = dict(epoch=3, arch="zerosnet20_cifar", args=argparse.Namespace(lr=0.1, model="zerosnet20_cifar"))
    torch.save(dict(ckpt, state_dict={f"module.{k}": v for k, v in sd.items()}, state_dict_ema=ema), path)
    base = ["--model", "zerosnet20_cifar", "--img-size", "16", "--workers", "0", "--num-samples", "20"]
    capsys.readouterr()
    out = validate(build_parser().parse_args(["--checkpoint", str(path), *base]))
    note = f"note: {path} holds the model's weights (state_dict) and their EMA (state_dict_ema): evaluating state_dict"
    printed = capsys.readouterr().out
    assert note in printed and "--weights ema evaluates state_dict_ema, the weights that zerosnet-train" in printed
    reset_accelerate()
    reference = validate(build_parser().parse_args(["--checkpoint", str(trained_run / "model.safetensors"), *base]))
    assert out["results"] == reference["results"] and out["weights"] is None
    reset_accelerate()
    out = validate(build_parser().parse_args(["--checkpoint", str(path), "--weights", "ema", *base]))
    assert "holds the model's weights" not in capsys.readouterr().out  # asked for: nothing to note
    nines = sum(int(label) == 9 for _, label in create_datasets({"val_num_samples": 20}, train=False).val)
    assert out["weights"] == "ema" and out["results"]["clean"]["correct1"] == nines  # the 9s of the 20 images
    assert out["results"] != reference["results"]
    reset_accelerate()
    torch.save(dict(ckpt, state_dict=sd), path)
    with pytest.raises(ValueError, match="--weights ema: .* holds no EMA weights"):
        validate(build_parser().parse_args(["--checkpoint", str(path), "--weights", "ema", *base]))
    torch.save(dict(ckpt, state_dict=sd, optimizer=torch.optim.SGD), path)  # a class: weights_only refuses it
    with pytest.raises(ValueError, match=r"holds Python objects that torch.load\(weights_only=True\) refuses"):
        validate(build_parser().parse_args(["--checkpoint", str(path), *base]))


def test_a_results_file_that_cannot_be_written_keeps_the_previous_results(trained_run, tmp_path, monkeypatch):
    """The results file is replaced whole: a write that fails (simulated I/O error) leaves the old results and no
    temporary file."""
    import os

    results = tmp_path / "results.json"
    previous = {"weights_file": "w.safetensors", "data_config": {}, "results": {"clean": {"top1": 1.0}}}
    results.write_text(json.dumps(previous))  # an earlier evaluation: replaced, never lost half-way

    def fsync_fails(fd):
        raise OSError(5, "I/O error (simulated)")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "3", "--results-file", str(results)]
    with pytest.raises(OSError, match="simulated"):
        validate(build_parser().parse_args(argv))
    assert json.loads(results.read_text()) == previous and os.listdir(tmp_path) == ["results.json"]


def test_a_grey_torch_dataset_is_evaluated_by_an_rgb_run(trained_run, tmp_path):
    """timm's torch/ datasets ignore the image mode: MNIST's grey images still reach the 3-channel digits model
    (converted to RGB), every one of them counted."""
    write_tiny_mnist(tmp_path / "mnist", "validation", range(0, 4), range(4, 16))
    argv = ["--checkpoint", str(trained_run), "--dataset", "torch/mnist", "--data-dir", str(tmp_path / "mnist")]
    out = validate(build_parser().parse_args([*argv, "--split", "test", "--workers", "0", "--num-samples", "0"]))
    assert out["results"]["clean"]["count"] == 12


def test_each_condition_prints_its_counts_as_the_results_file_holds_them(trained_run, tmp_path, capsys):
    results_file = tmp_path / "results.json"
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "5", "--noise", "randn :0.2"]
    assert main([*argv, "--results-file", str(results_file)]) == 0  # a space before the colon is fine too
    printed = capsys.readouterr().out
    results = json.loads(results_file.read_text())["results"]
    assert list(results) == ["clean", "randn:0.2"]
    for label, r in results.items():
        assert f"{label}: top1 {r['top1']:.2f}% ({r['correct1']}/5), top5 {r['top5']:.2f}%" in printed


def test_bad_values_are_refused_before_anything_is_evaluated(trained_run, tmp_path, capsys):
    """Values that gave a traceback (an unknown interpolation, a negative channel count, a results file that is a
    folder: after the whole evaluation), a silent fallback (a count of 0 read as 'the run's') or a meaningless
    result (a NaN mean, a zero std or crop, negative Gaussian noise) are one error line naming the flag."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    for extra, message in (
        (["--in-chans", "0"], "--in-chans must be at least 1, got 0"),
        (["--in-chans", "-2"], "--in-chans must be at least 1, got -2"),
        (["--num-classes", "0"], "--num-classes must be at least 1, got 0"),
        (["--img-size", "0"], "--img-size must be at least 1, got 0"),
        (["--mean", "nan", "0.5", "0.5"], "--mean must be in (-inf, inf) (each value), got nan"),
        (["--std", "0"], "--std must be in (0, inf) (each value), got 0.0"),
        (["--crop-pct", "0"], "--crop-pct must be in (0, inf) (each value), got 0.0"),
        (["--noise", "randn:-0.5"], "noise randn:-0.5: c is the standard deviation of the noise, so at least 0"),
        (["--torchcompile", "foo"], "--torchcompile foo: not a torch.compile backend accelerate knows; use one of"),
        (["--noise", "const:7"], "noise const:7.0: pixels are in [0, 1], so an offset of 7.0 clamps every pixel to 1"),
        (["--noise", "rand:0.1,const:-1"], "an offset of -1.0 clamps every pixel to 0 and the images carry nothing"),
        (["--noise", "randn:0.1,,"], "--noise 'randn:0.1,,': an empty condition; list conditions such as"),
        (["--noise", ""], "--noise '': an empty condition"),
        (["--noise-seed", "5"], "--noise-seed seeds the draws of --noise: add --noise"),
        (["--data-dir", ""], "--data-dir '': name the dataset's folder, or leave --data-dir out"),  # "$DATA" unset
        (["--results-file", str(tmp_path / "folder")], f"--results-file {tmp_path / 'folder'} is a folder"),
        (["--results-file", str(tmp_path / "file" / "r.json")], f"{tmp_path / 'file'} is a file, not a folder"),
    ):
        assert main(["--checkpoint", str(trained_run), "--workers", "0", *extra]) == 2, extra
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and message in captured.err, (extra, captured.err)
        assert "clean" not in captured.out  # refused before the first evaluation
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(trained_run), "--interpolation", "foo"])
    assert e.value.code == 2 and "argument --interpolation: invalid choice: 'foo'" in capsys.readouterr().err
    # negative offsets stay a valid perturbation: darker images
    assert parse_noise("const:-0.2,rand:-0.1,const:0.99") == [("const", -0.2), ("rand", -0.1), ("const", 0.99)]


def test_a_damaged_run_json_is_named(trained_run, tmp_path, capsys):
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    (run / "run.json").write_text('{"model": "zerosnet20_cifar", ')
    assert main(["--checkpoint", str(run), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'run.json'} is not valid JSON" in err and "restore it" in err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", 5, "model is 5, not a model name"),
        ("label_names", 5, "label_names is 5, not a list of names"),
        ("num_classes", "ten", "num_classes is 'ten', not a class count >= 1"),
        ("model_kwargs", ["lam"], "model_kwargs is ['lam'], not an object of model arguments"),
        ("dataset", ["x"], "dataset is ['x'], not a name or an object"),
        ("weights", {"final": 5}, "weights is {'final': 5}, not an object of file names in the run folder"),
        ("weights", {"final": "../w.safetensors"}, "weights is {'final': '../w.safetensors'}, not an object of file"),
        ("data_config", {"input_size": "big"}, "data_config.input_size is 'big', not [channels, height, width]"),
        ("metrics", {"final": {"top1": "high"}}, "metrics.final.top1 is 'high', not a number"),
    ],
)
def test_a_hand_edited_run_json_field_is_named_by_every_tool(trained_run, tmp_path, capsys, field, value, message):
    """A run.json field of the wrong type gave TypeError / AttributeError tracebacks in zerosnet-validate,
    zerosnet-analyze and zerosnet-hub export; each now names the field, in one line, before any work."""
    from timm_zerosnet.analysis.cli import main as analyze
    from timm_zerosnet.hub.cli import main as hub

    run = tmp_path / "edited"
    run.mkdir()
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    info = json.loads((trained_run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, field: value}))
    for tool, argv, code in (
        (main, ["--checkpoint", str(run), "--workers", "0"], 2),
        (analyze, ["stability", "--checkpoint", str(run)], 2),
        (hub, ["export", str(run), "--out", str(tmp_path / "export")], 1),
    ):
        assert tool(argv) == code, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{run / 'run.json'}: {message}" in err and "edited by hand" in err, err
    assert not (tmp_path / "export").exists()


def test_a_run_stopped_before_its_first_evaluation_is_named_as_such(trained_run, tmp_path, capsys):
    """zerosnet-train records null metrics until the first evaluation; the run.json check read them as a run.json
    edited by hand ('metrics is {'final': None, 'best': None}, not an object of evaluations')."""
    run = tmp_path / "stopped"
    run.mkdir()
    info = json.loads((trained_run / "run.json").read_text())
    info.update(status="interrupted", metrics={"final": None, "best": None}, weights=dict.fromkeys(info["weights"]))
    (run / "run.json").write_text(json.dumps(info))
    (run / "args.yaml").write_text((trained_run / "args.yaml").read_text())
    assert main(["--checkpoint", str(run), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "edited by hand" not in err and f"{run} has no final weights" in err
    assert "(the run is interrupted: final weights are written when it finishes)" in err
    assert f"`zerosnet-train -c {run.absolute() / 'args.yaml'} --resume auto` continues it" in err


def test_the_folder_of_timms_train_py_as_the_checkpoint_names_the_weights_files_it_holds(trained_run, tmp_path):
    """timm's train.py output folder (model_best.pth.tar, last.pth.tar, args.yaml) given as --checkpoint was said to
    hold "no weights files yet"; its files are named, and one of them given itself is evaluated."""
    folder = tmp_path / "20261203-train"
    folder.mkdir()
    sd = load_file(trained_run / "model.safetensors")
    for name in ("model_best.pth.tar", "last.pth.tar"):
        torch.save(dict(epoch=3, state_dict=sd), folder / name)
    (folder / "args.yaml").write_text("model: zerosnet20_cifar\n")
    base = ["--model", "zerosnet20_cifar", "--img-size", "16", "--workers", "0", "--num-samples", "8"]
    expected = r"has no final weights .* holds last\.pth\.tar, model_best\.pth\.tar, .*: pass one of those files itself"
    with pytest.raises(FileNotFoundError, match=expected):
        validate(build_parser().parse_args(["--checkpoint", str(folder), *base]))
    out = validate(build_parser().parse_args(["--checkpoint", str(folder / "model_best.pth.tar"), *base]))
    assert out["results"]["clean"]["count"] == 8


def test_a_run_record_given_as_the_checkpoint_is_named(trained_run, capsys):
    """--checkpoint run/run.json was read with torch.load, whose refusal advised weights_only=False."""
    from timm_zerosnet.analysis.cli import main as analyze

    for name in ("run.json", "args.yaml"):
        path = trained_run / name
        message = f"{path} is the run's {name}, not a weights file: pass the run folder {trained_run}"
        assert main(["--checkpoint", str(path), "--workers", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "weights_only" not in err, err
        assert analyze(["stability", "--checkpoint", str(path)]) == 2
        assert message in capsys.readouterr().err


def test_help_gives_each_default_once():
    """'model name (default: from run.json) (default: None)': the help's own default, then argparse's."""
    import re

    from timm_zerosnet.train import build_parser as train_parser

    for parser in (build_parser(), train_parser()):
        text = " ".join(parser.format_help().split())
        assert not re.search(r"\(default:[^()]*\) \(default:", text), re.findall(r".{60}\) \(default:.{20}", text)
        # a help that says its default without the parenthesis ("default: the run's") got argparse's too
        formatter = parser._get_formatter()
        for action in parser._actions:
            shown = formatter._get_help_string(action) or ""
            assert shown.count("default:") <= 1, (parser.prog, action.option_strings, shown)
        assert "(default: from run.json)" in text or parser.prog == "zerosnet-train"
        assert "(default: None)" in text  # argparse's own defaults are still shown where the help gives none


def test_a_split_that_a_dataset_root_lacks_is_refused_in_evaluation(trained_run, tmp_path, capsys):
    """--data-dir may be the split folder itself; but a root with split folders and a --split it lacks (a typo)
    read the whole root as one split, with train/ and val/ as its classes."""
    for split in ("train", "val"):
        for c in ("3", "7"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(tmp_path / "data" / split / c / "a.png")
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--split", "vall"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'data'} has no folder for the 'vall' split" in err and "holds train/, val/" in err
    assert "name other ones with --split" in err
    assert validate(build_parser().parse_args([*argv, "--split", "val"]))["results"]["clean"]["count"] == 2
    reset_accelerate()
    split_folder = [*argv[:-1], str(tmp_path / "data" / "val")]  # the split folder itself, as timm takes it
    assert validate(build_parser().parse_args(split_folder))["results"]["clean"]["count"] == 2


def _digits_folder(root: Path, classes: set[int]) -> Path:
    """The digits validation images of ``classes`` as an ImageFolder ``root/val/<digit>/``."""
    from timm_zerosnet.data import DigitsDataset

    ds = DigitsDataset("validation", img_mode="L")
    for i, (img, target) in enumerate(zip(ds.images, ds.targets)):
        if target in classes:
            (root / "val" / str(target)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, "L").save(root / "val" / str(target) / f"{i:04d}.png")
    return root


def test_released_weights_label_a_folder_by_their_classes_and_keep_their_head(trained_run, tmp_path, capsys):
    """Weights loaded with --pretrained (here local-dir: of an export) labelled a folder of the 3s, 5s and 7s as 0, 1
    and 2 (their config.json's label names were ignored), and --num-classes gave them a new random head."""
    from timm_zerosnet.hub.export import export

    folder = _digits_folder(tmp_path / "images", {3, 5, 7})
    exported = export(trained_run, tmp_path / "export", tag="digits").path
    common = ["--data-dir", str(folder), "--workers", "0", "--cpu"]
    by_run = validate(build_parser().parse_args(["--checkpoint", str(trained_run), *common]))["results"]["clean"]
    reset_accelerate()
    argv = ["--model", f"local-dir:{exported}", "--pretrained", *common]
    released = validate(build_parser().parse_args(argv))["results"]["clean"]
    reset_accelerate()
    assert by_run["count"] == released["count"] > 0 and by_run["correct1"] > 0
    assert released == by_run
    assert "weights name no classes" not in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"^--num-classes 12: the released weights of .* classify 10 classes"):
        validate(build_parser().parse_args([*argv, "--num-classes", "12"]))


def test_a_bare_weights_file_on_a_folder_of_fewer_classes_warns_how_they_are_labelled(trained_run, tmp_path, capsys):
    folder = _digits_folder(tmp_path / "images", {3, 5, 7})
    bare = tmp_path / "bare.safetensors"  # no run.json next to it
    bare.write_bytes((trained_run / "model.safetensors").read_bytes())
    argv = ["--checkpoint", str(bare), "--model", "zerosnet20_cifar"]
    validate(build_parser().parse_args([*argv, "--data-dir", str(folder), "--workers", "0", "--img-size", "16"]))
    out = capsys.readouterr().out
    assert "warning: the weights name no classes (no run.json), so the data's 3 classes (3, 5, 7, ...)" in out
    assert "--class-map" in out


def test_fp16_on_the_cpu_is_refused_instead_of_evaluating_in_float32(trained_run):
    with pytest.raises(ValueError, match=r"^--mixed-precision fp16 needs a GPU: on cpu accelerate would evaluate"):
        validate(build_parser().parse_args(["--checkpoint", str(trained_run), "--cpu", "--mixed-precision", "fp16"]))


def test_the_results_name_the_data_and_precision_and_another_dataset_keeps_none_of_the_runs(trained_run, tmp_path):
    """The results file said nothing of the data evaluated; a run's --val-num-samples (45) was applied to another
    dataset, and --dataset folder did not match the '' that run.json records for an ImageFolder run."""
    from timm_zerosnet.validate import _data_args

    folder = _digits_folder(tmp_path / "images", {1, 2})
    argv = ["--checkpoint", str(trained_run), "--data-dir", str(folder), "--workers", "0", "--cpu"]
    out = validate(build_parser().parse_args([*argv, "--mixed-precision", "bf16"]))
    assert out["mixed_precision"] == "bf16"
    assert out["dataset"] == dict(
        name="",
        data_dir=str(folder),
        split="val",  # the dataset's own validation split: the folder read (it said None)
        num_samples=None,
        class_map=None,
        samples=len(
            create_datasets(
                dict(dataset="", data_dir=str(folder), class_names=[str(i) for i in range(10)]), train=False
            ).val
        ),
    )
    assert out["results"]["clean"]["count"] == out["dataset"]["samples"] > 45
    info = {"dataset": {"name": "", "data_dir": "/run/images", "val_split": "val", "val_num_samples": 45}}
    for given in ("folder", "ImageFolder", ""):
        data = _data_args(build_parser().parse_args(["--checkpoint", "x", "--dataset", given]), info, 3)
        assert (data["data_dir"], data["val_split"], data["val_num_samples"]) == ("/run/images", "val", 45), given
    info = {"dataset": {"name": "torch/cifar10", "data_dir": "/c", "val_num_samples": 45}}
    data = _data_args(build_parser().parse_args(["--checkpoint", "x", "--dataset", "torch/CIFAR10"]), info, 3)
    assert (data["data_dir"], data["val_num_samples"]) == ("/c", 45)


def test_an_error_in_a_dataloader_worker_is_its_own_one_line_message(capsys):
    """A bad image refused in a worker (the default -j 2) printed "Caught ValueError in DataLoader worker process 0."
    and the worker's traceback after "error:"; the error line is the image's own message now."""
    import sys

    from torch._utils import ExceptionWrapper

    from timm_zerosnet.train import usage_error

    try:
        try:
            raise ValueError("/data/val/3/a.tif: a F (32-bit) image\nthat spans lines")
        except ValueError:
            ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0").reraise()  # as torch does
    except ValueError as e:
        assert str(e).startswith("Caught ValueError in DataLoader worker process 0.")
        assert usage_error("zerosnet-validate", e) == 2
    err = capsys.readouterr().err
    assert err == "zerosnet-validate: error: /data/val/3/a.tif: a F (32-bit) image\nthat spans lines\n"
    usage_error("zerosnet-validate", ValueError("Caught nothing: an ordinary message"))
    assert capsys.readouterr().err == "zerosnet-validate: error: Caught nothing: an ordinary message\n"


def test_a_results_file_named_for_another_format_is_refused_before_evaluating(trained_run, tmp_path):
    """--results-file out.txt would get JSON without saying so."""
    for name in ("out.txt", "out.CSV.txt"):
        with pytest.raises(
            ValueError, match=rf"^--results-file .*{name}: zerosnet-validate writes the results as JSON .* or CSV"
        ):
            validate(
                build_parser().parse_args(["--checkpoint", str(trained_run), "--results-file", str(tmp_path / name)])
            )
    assert not list(tmp_path.iterdir())


def test_a_csv_results_file_has_a_row_per_condition(trained_run, tmp_path, capsys):
    """--results-file out.csv was refused (timm's validate.py writes CSV): now one row per condition, with the numbers
    of the JSON results; an earlier results CSV is replaced, any other CSV is not."""
    import csv

    results = tmp_path / "out.csv"
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "9", "--noise", "const:0.3"]
    out = validate(build_parser().parse_args([*argv, "--results-file", str(results)]))
    rows = list(csv.DictReader(results.open(newline="")))
    assert [r["condition"] for r in rows] == ["clean", "const:0.3"] == list(out["results"])
    for row, r in zip(rows, out["results"].values()):
        assert row["model"] == "zerosnet20_cifar" and row["weights_file"] == str(trained_run / "model.safetensors")
        assert float(row["top1"]) == pytest.approx(r["top1"]) and int(row["correct1"]) == r["correct1"] <= 9
        assert float(row["top1_err"]) == pytest.approx(100 - r["top1"]) and int(row["count"]) == r["count"] == 9
        assert float(row["loss"]) == pytest.approx(r["loss"], abs=1e-6)
        assert (row["img_size"], row["interpolation"]) == ("16", out["data_config"]["interpolation"])
    reset_accelerate()
    assert main([*argv, "--results-file", str(results)]) == 0  # its own earlier results: replaced
    foreign = tmp_path / "table.csv"
    foreign.write_text("name,score\na,1\n")
    capsys.readouterr()
    assert main([*argv, "--results-file", str(foreign)]) == 2
    assert "exists and is not a results file of zerosnet-validate" in capsys.readouterr().err
    assert foreign.read_text() == "name,score\na,1\n"


def test_a_strength_left_out_after_the_colon_is_refused(trained_run, capsys):
    """'randn:' (the number forgotten) was evaluated as randn:0.1 without a word; the bare kind still means 0.1."""
    for spec in ("randn:", "rand:0.2,const: "):
        with pytest.raises(ValueError, match=r"no strength c after the colon; give one \(e.g. (randn|const):0.1\)"):
            parse_noise(spec)
    assert parse_noise("randn,rand:0.2") == [("randn", 0.1), ("rand", 0.2)]
    assert main(["--checkpoint", str(trained_run), "--workers", "0", "--noise", "randn:"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--noise 'randn:': no strength c" in captured.err
    assert "clean" not in captured.out


def test_help_says_where_the_noise_is_added_and_what_c_means():
    """--help said only 'e.g. randn:0.1,...': not that c is in [0, 1] pixel units, added before normalisation and
    clamped (the authors' CIFAR-100 script added it after), which decides what the results mean."""
    text = " ".join(build_parser().format_help().split())
    assert "added to the [0, 1] pixels, clamped to [0, 1], then normalised" in text
    assert "randn x + c*N(0, 1), rand x + c*U[0, 1), const x + c" in text and "a bare kind: c = 0.1" in text
    assert "seed of the --noise draws, made per image: the same for any batch size, workers or --num-samples" in text


def test_a_file_that_is_no_weights_file_or_is_named_for_another_format_says_so(trained_run, tmp_path, capsys):
    """A JSON or text file was reported as holding Python objects to trust (advising an unsafe torch.load) or as
    damaged; a .npz as damaged; safetensors named .bin, or a torch.save file named .safetensors, as damaged or
    unsafe. Each is named for what it is, in one line, before anything is evaluated."""
    from timm_zerosnet.validate import read_state_dict

    weights = trained_run / "model.safetensors"
    (tmp_path / "notes.json").write_text('{"lr": 0.1}')
    (tmp_path / "notes.txt").write_text("top1 90%\n")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    for name in ("notes.json", "notes.txt", "arrays.npz"):
        with pytest.raises(ValueError, match=rf"{name} is not a weights file \(neither safetensors nor torch.save"):
            read_state_dict(tmp_path / name)
    (tmp_path / "weights.bin").write_bytes(weights.read_bytes())
    with pytest.raises(ValueError, match=r"weights.bin is a safetensors file but named .bin, .*name it weights.safe"):
        read_state_dict(tmp_path / "weights.bin")
    torch.save(load_file(weights), tmp_path / "pickled.safetensors")
    with pytest.raises(ValueError, match=r"pickled.safetensors is a torch.save file but named .safetensors, .*pickled"):
        read_state_dict(tmp_path / "pickled.safetensors")
    # torch.save's files, zip or legacy, are read as before
    torch.save(load_file(weights), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert read_state_dict(tmp_path / "legacy.pth").keys() == load_file(weights).keys()
    argv = ["--model", "zerosnet20_cifar", "--num-classes", "10", "--workers", "0", "--num-samples", "3"]
    assert main(["--checkpoint", str(tmp_path / "notes.json"), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "notes.json is not a weights file" in captured.err
    assert "weights_only" not in captured.err and "clean" not in captured.out
    reset_accelerate()
    assert main(["--checkpoint", str(tmp_path / "legacy.pth"), *argv, "--img-size", "16"]) == 0


def test_a_launch_that_accelerate_would_run_as_single_processes_is_refused(trained_run, tmp_path, capsys, monkeypatch):
    """`accelerate launch --num_processes 2` without GPUs and without --cpu: accelerate runs each process alone, so
    each evaluated the whole split and both wrote the same results file (racing on its temporary file)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    results_file = tmp_path / "r.json"
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--results-file", str(results_file)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "2 processes were launched (WORLD_SIZE=2) but accelerate runs" in (
        captured.err
    )
    assert "pass --cpu" in captured.err and "clean" not in captured.out and not results_file.exists()


def test_the_reported_numbers_are_those_of_a_manual_computation(trained_run):
    """top-1, top-5 and the mean loss, clean and under noise, in batches of 7 (a partial last batch), equal those
    computed by hand from the model's logits on the same images (the noise drawn per image as documented)."""
    import timm

    from timm_zerosnet.data import DigitsDataset

    argv = ["--checkpoint", str(trained_run), "--workers", "0", "-b", "7", "--num-samples", "0", "--noise", "rand:0.3"]
    out = validate(build_parser().parse_args([*argv, "--noise-seed", "3"]))
    model = timm.create_model("zerosnet20_cifar", num_classes=10)
    model.load_state_dict(load_file(trained_run / "model.safetensors"))
    model.eval()
    config = dict(out["data_config"], input_size=tuple(out["data_config"]["input_size"]))
    images = DigitsDataset("validation", img_mode="RGB")
    for label, noise in (("clean", None), ("rand:0.3", ("rand", 0.3))):
        dataset = TransformDataset(images, create_eval_transform(config, noise), seed=3 if noise else None)
        x = torch.stack([dataset[i][0] for i in range(len(dataset))])
        y = torch.tensor([dataset[i][1] for i in range(len(dataset))])
        with torch.no_grad():
            logits = model(x)
        correct1 = int((logits.argmax(1) == y).sum())
        correct5 = int((logits.topk(5, dim=1).indices == y[:, None]).any(1).sum())
        r = out["results"][label]
        assert (r["count"], r["correct1"], r["correct5"]) == (len(y), correct1, correct5) == (355, correct1, correct5)
        assert r["top1"] == pytest.approx(100 * correct1 / 355) and r["top5"] == pytest.approx(100 * correct5 / 355)
        assert r["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert out["results"]["rand:0.3"] != out["results"]["clean"]


def test_an_empty_results_file_name_is_refused(trained_run, capsys):
    """--results-file '' was taken as no results file: the evaluation ran and wrote nothing, without a word."""
    argv = ["--checkpoint", str(trained_run), "--workers", "0", "--num-samples", "4", "--results-file", ""]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "--results-file '': name a .json or .csv file" in err and "Traceback" not in err
