"""The run layout that the tools read (timm_zerosnet.run_layout): a run folder, a training state of it
(``<run>/checkpoints/state-*``) and the files in them. A state is part of its run: the run's model, options and data
config apply, with the state's own weights."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from timm.models import clean_state_dict

import timm_zerosnet.run_layout as run_layout
from conftest import reset_accelerate
from timm_zerosnet.run_layout import read_run_info, resolve_weights, weights_kind
from timm_zerosnet.train import parse_args, pretrained_source, train
from timm_zerosnet.validate import build_parser, load_model

MODEL = "zerosnet20_cifar"
OPTIONS = f"--model {MODEL} --img-size 16 --train-num-samples 32 --val-num-samples 16 -b 16 --epochs 2 --workers 0"
OPTIONS += " --log-interval 0 --lr 0.05 --threads 1 --model-ema --model-ema-decay 0.5"
# what the defect dropped: the family options and the normalisation of the run a state belongs to
SOURCE = "--model-kwargs lam=-1.2 --mean 0.5 --std 0.25"

EMA_FILE = "custom_checkpoint_2.pkl"  # accelerate's file of the third object train registers: the EMA

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


@pytest.fixture(scope="module")
def lam_run(tmp_path_factory) -> Path:
    """A finished two-epoch run with an EMA, lam=-1.2 and its own mean / std: a state after each epoch."""
    out, threads = tmp_path_factory.mktemp("layout"), torch.get_num_threads()
    train(parse_args([*OPTIONS.split(), *SOURCE.split(), "--output", str(out), "--experiment", "lam"]))
    reset_accelerate()
    torch.set_num_threads(threads)
    return out / "lam"


def _first_state(run: Path) -> Path:
    return run / "checkpoints" / "state-e0001-b000000"


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


@pytest.mark.parametrize("given", ["state folder", "weights file in it"])
def test_a_state_is_read_as_part_of_its_run_with_its_own_weights(lam_run, given):
    """A state, or its model.safetensors (the path train's 'Cannot resume' advice gives), was read as a bare file:
    its run's lam and mean / std were dropped without a word."""
    state = _first_state(lam_run)
    path = state if given == "state folder" else state / "model.safetensors"
    weights, info = resolve_weights(path)
    assert weights == state / "model.safetensors"  # the state's, not the run's final weights
    run_info = json.loads((lam_run / "run.json").read_text())
    assert info is not None and info["training_state"] == str(state)
    for key in ("model", "model_kwargs", "num_classes", "in_chans", "data_config", "training"):
        assert info[key] == run_info[key]
    assert info["model_kwargs"] == {"lam": -1.2} and info["data_config"]["mean"] == [0.5, 0.5, 0.5]
    # what run.json says of the run's end is not said of the state: its metrics, weights files and epochs
    assert not {"metrics", "weights", "epochs"} & set(info)
    assert weights_kind(weights.name, info) is None  # not the run's final weights
    assert read_run_info(path) == info and run_layout.training_state(path) == state


def test_a_state_as_pretrained_path_gives_its_runs_options_and_normalisation(lam_run):
    for path in (_first_state(lam_run), _first_state(lam_run) / "model.safetensors"):
        source = pretrained_source(path, MODEL)
        assert source["model_kwargs"] == {"lam": -1.2}
        overlay = source["overlay"]
        assert overlay["file"] == str(_first_state(lam_run) / "model.safetensors")
        assert overlay["mean"] == [0.5] * 3 and overlay["std"] == [0.25] * 3
        assert overlay["num_classes"] == 10 and overlay["input_size"] == [3, 16, 16]


def test_validate_builds_a_state_as_its_run_and_loads_its_ema(lam_run):
    """validate asked for --model (no run.json found), and refused --weights ema: 'has no ema weights'."""
    state = _first_state(lam_run)
    for weights, file in ((None, "model.safetensors"), ("ema", EMA_FILE)):
        argv = ["--checkpoint", str(state), *(["--weights", weights] if weights else [])]
        model, info = load_model(build_parser().parse_args(argv))
        assert info is not None and info["model"] == MODEL
        assert float(model.scheme.lam) == -1.2
        loaded = model.state_dict()
        if weights == "ema":  # timm's ModelEmaV3 state dict, as accelerate saved it
            expected = clean_state_dict(torch.load(state / file, map_location="cpu", weights_only=True))
        else:
            expected = load_file(state / file)
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_a_states_ema_is_the_ema_train_saved(lam_run):
    """The EMA of the last state is the run's model_ema.safetensors (the state was saved at the end); the first
    state's is its own, not the run's file."""
    last = lam_run / "checkpoints" / "state-e0002-b000000"
    run_ema = load_file(lam_run / "model_ema.safetensors")
    for state, same in ((last, True), (_first_state(lam_run), False)):
        weights, _ = resolve_weights(state, "ema")
        assert weights == state / EMA_FILE
        ema = clean_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        assert set(ema) == set(run_ema)
        assert all(torch.equal(ema[k], run_ema[k]) for k in run_ema) == same


def test_a_states_best_weights_are_its_copy(lam_run, tmp_path):
    state = _first_state(lam_run)
    assert resolve_weights(state, "best")[0] == state / "best.safetensors"
    run = _copy(lam_run, tmp_path)
    (_first_state(run) / "best.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no best weights \(best\.safetensors; saved before") as e:
        resolve_weights(_first_state(run), "best")
    assert f"the run folder {run} with --weights best" in str(e.value)


def test_a_state_without_its_ema_says_where_the_ema_is(lam_run, tmp_path):
    run = _copy(lam_run, tmp_path)
    state = _first_state(run)
    (state / EMA_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="has no ema weights") as e:
        resolve_weights(state, "ema")
    message = str(e.value)
    assert f"--resume {state.absolute()}" in message and "--weights ema (its model_ema.safetensors)" in message


def test_a_state_of_a_run_that_recorded_no_ema_setting_and_holds_none(tmp_path):
    """An older run.json records no model_ema: where neither the state nor its run holds an EMA, the refusal says so
    and names the state's model weights, not a resume or the run's EMA file, which cannot work; a missing best file
    of both names no run file either."""
    run = tmp_path / "old"
    state = run / "checkpoints" / "state-e0001-b000000"
    state.mkdir(parents=True)
    info = {"model": MODEL, "model_kwargs": {}, "training": {}, "weights": {}}
    (run / "run.json").write_text(json.dumps(info))
    (state / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        resolve_weights(state, "ema")
    assert str(e.value) == (
        f"{state} has no ema weights: neither it ({EMA_FILE}) nor its run (model_ema.safetensors) holds an EMA: "
        f"trained without --model-ema?; use the state's model weights (--weights final, or "
        f"{state / 'model.safetensors'})"
    )
    with pytest.raises(FileNotFoundError, match=r"has no best weights .*: pass another state$"):
        resolve_weights(state, "best")
    (run / "best.safetensors").write_bytes(b"")  # the run's own: named
    with pytest.raises(FileNotFoundError, match=rf"pass another state, or the run folder {run} with --weights best"):
        resolve_weights(state, "best")


def test_a_state_of_a_run_without_ema_refuses_weights_ema(tmp_path):
    """A state written by hand as train lays it out, of a run that recorded no --model-ema."""
    run = tmp_path / "plain"
    state = run / "checkpoints" / "state-e0001-b000000"
    state.mkdir(parents=True)
    info = {"model": MODEL, "model_kwargs": {"lam": -1.5}, "training": {"model_ema": False}, "weights": {}}
    (run / "run.json").write_text(json.dumps(info))
    (state / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="its run was trained without --model-ema") as e:
        resolve_weights(state, "ema")
    assert str(state / "model.safetensors") in str(e.value)
    assert resolve_weights(state)[1]["model_kwargs"] == {"lam": -1.5}


def test_a_state_copied_into_a_run_of_another_model_is_refused(lam_run, tmp_path):
    run = _copy(lam_run, tmp_path)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "model": "lmresnet20_cifar"}))
    other = rf"training state of '{MODEL}' \(its settings\) but .* 'lmresnet20_cifar'"
    for path in (_first_state(run), _first_state(run) / "model.safetensors"):
        with pytest.raises(ValueError, match=other):
            resolve_weights(path)


@pytest.mark.parametrize("name", ["optimizer.bin", "custom_checkpoint_1.pkl", "random_states_0.pkl"])
def test_a_states_files_without_weights_are_named(lam_run, name):
    state = _first_state(lam_run)
    with pytest.raises(ValueError, match="of the training state .* not weights: pass the state folder"):
        resolve_weights(state / name)


def test_run_folders_and_bare_files_read_as_before(lam_run, tmp_path):
    weights, info = resolve_weights(lam_run, "ema")
    assert weights == lam_run / "model_ema.safetensors" and "training_state" not in info and info["metrics"]
    assert weights_kind("model.safetensors", info) == "final"
    # a folder named like a state, with a run.json above it, but not in a run's checkpoints/: a bare file
    bare = tmp_path / "copies" / "state-e0001-b000000"
    bare.mkdir(parents=True)
    shutil.copy(_first_state(lam_run) / "model.safetensors", bare)
    shutil.copy(lam_run / "run.json", tmp_path)
    assert resolve_weights(bare / "model.safetensors")[1] is None


@pytest.mark.parametrize("weights", ["final", "ema", "best"])
def test_hub_export_of_a_state_publishes_its_own_weights(lam_run, tmp_path, weights):
    """zerosnet-hub export refused --weights ema / best of a state ('export takes its model's weights') although
    validate reads them; it exports them now, with the run's model options, as validate loads them."""
    from timm_zerosnet.hub.export import export, verify_export

    state = _first_state(lam_run)
    logs = []
    out = export(state, tmp_path / weights, weights=weights, tag="lam", log=logs.append).path
    assert any(f"the run recorded no evaluation of its {weights} weights" in line for line in logs)
    exported = load_file(out / "model.safetensors")
    model, _ = load_model(build_parser().parse_args(["--checkpoint", str(state), "--weights", weights]))
    expected = model.state_dict()
    assert set(exported) <= set(expected) and all(torch.equal(exported[k], expected[k]) for k in exported)
    if weights == "ema":  # not the model's weights, nor the run's EMA at its end
        assert not torch.equal(exported["fc.weight"], load_file(state / "model.safetensors")["fc.weight"])
        assert not torch.equal(exported["fc.weight"], load_file(lam_run / "model_ema.safetensors")["fc.weight"])
    config = json.loads((out / "config.json").read_text())
    assert config["model_args"]["lam"] == -1.2 and config["pretrained_cfg"]["mean"] == [0.5] * 3
    # which weights of which state: recorded, and said on the card (an epoch-1 EMA looked like the run's final model)
    release = json.loads((out / "release.json").read_text())
    assert (release["weights"], release["state"], release["run"]) == (weights, state.name, lam_run.name)
    assert release["metrics"] == {}  # the run's metrics are those of its end, not of this state
    card = (out / "README.md").read_text()
    kind = {"final": "the model's weights", "ema": "the EMA's weights", "best": "the best weights so far"}[weights]
    assert f"{kind} of the training state `{state.name}` of the run, not evaluated by it" in card
    verified = verify_export(out)  # the folder passes the round trip that stage repeats
    assert verified.golden_exact and verified.timm_local_dir_exact


def test_validate_takes_a_states_weights_files_as_what_they_are(lam_run):
    """<state>/custom_checkpoint_2.pkl --weights ema was refused ('holds no EMA weights (no state_dict_ema ...)'),
    although it is the EMA; a state's files were recorded as weights null."""
    from timm_zerosnet.validate import validate

    state = _first_state(lam_run)
    ema = clean_state_dict(torch.load(state / EMA_FILE, map_location="cpu", weights_only=True))
    for file, given, kind in (
        (EMA_FILE, "ema", "ema"),
        (EMA_FILE, None, "ema"),
        ("model.safetensors", None, "final"),
        ("best.safetensors", "best", "best"),
    ):
        argv = ["--checkpoint", str(state / file), "--workers", "0", "--num-samples", "4"]
        argv += ["--weights", given] if given else []
        assert validate(build_parser().parse_args(argv))["weights"] == kind, (file, given)
        if kind == "ema":
            model, _ = load_model(build_parser().parse_args(argv))
            assert all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
    with pytest.raises(ValueError, match=r"--weights final: .*custom_checkpoint_2.pkl is its training state's ema"):
        validate(build_parser().parse_args(["--checkpoint", str(state / EMA_FILE), "--weights", "final"]))


def test_validate_and_fine_tuning_name_what_to_pass_for_the_folder_of_states_and_its_latest_pointer(lam_run):
    """zerosnet-analyze named the state or run to pass for <run>/checkpoints and its latest pointer, but validate
    asked for --model ('no run.json') and train read the pointer as a weights file: the run layout refuses them for
    every tool, naming the option the path came with."""
    states = lam_run / "checkpoints"
    latest = states / (states / "latest").read_text().strip()
    with pytest.raises(ValueError, match=rf"^--checkpoint {states / 'latest'} names the run's latest training state"):
        load_model(build_parser().parse_args(["--checkpoint", str(states / "latest")]))
    message = (
        f"--pretrained-path {states} is the folder of the run's training states, not a run: pass the run folder "
        f"{lam_run} (its final weights), or one of its states, e.g. the latest, {latest}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pretrained_source(states, MODEL)
    with pytest.raises(ValueError, match=rf"^--pretrained-path {states / 'latest'} names .* {latest}, or the run"):
        pretrained_source(states / "latest", MODEL)
