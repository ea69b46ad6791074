"""The model card as a Hugging Face / timm user reads it: front matter the Hub accepts, markdown that recorded text
cannot break, and figures that are the model's own."""

from __future__ import annotations

import json
import re

import pytest
import timm
import torch
from huggingface_hub import ModelCard
from huggingface_hub.utils import validate_repo_id
from test_hub_export import MODEL, REPO, front_matter, make_run

from timm_zerosnet.hub.card import dataset_info, model_card, model_stats
from timm_zerosnet.hub.export import export


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    return export(make_run(tmp / "run"), tmp / "export", repo_id=REPO).path


@pytest.fixture(scope="module")
def parts(folder):
    config = json.loads((folder / "config.json").read_text())
    release = json.loads((folder / "release.json").read_text())
    stats = model_stats(MODEL, config["model_args"], tuple(config["pretrained_cfg"]["input_size"]))
    return config, release, stats


def _card(parts, **release) -> str:
    config, base, stats = parts
    return model_card(config, {**base, **release}, stats)


def _cells(row: str) -> list[str]:
    """A markdown table row's cells: split at the pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_recorded_text_cannot_break_the_cards_markdown(parts):
    """A dataset name, split, recipe or run name holding '|', backticks or line breaks used to end up verbatim in
    the card: a line break started a heading or paragraph of its own, a '|' added columns to the results row and a
    backtick ended the recipe's code span. Each now shows as written, on its line; the front matter keeps it as is."""
    base = parts[1]
    training = dict(
        base["training"],
        recipe="my`recipe|v2",
        sched="cos|ine",
        finetuned_from={"local": "run`1\n# x", "frozen_backbone": False},
    )
    metrics = dict(base["metrics"], split="test|hard\nsubset")
    card = _card(parts, dataset="my|data: 'x'\n## injected heading", metrics=metrics, training=training)
    assert not any(line.startswith(("## injected", "# x", "subset")) for line in card.splitlines())
    assert "- **Dataset:** my\\|data: 'x' ## injected heading\n" in card
    assert "- **Recipe:** ``my`recipe|v2``: opt sgd, lr 0.1, weight_decay 0.0001, sched cos\\|ine," in card
    assert "(``run`1 # x``, not published)" in card
    header, _, row = card.split("## Evaluation Results\n", 1)[1].splitlines()[:3]
    assert len(_cells(row)) == len(_cells(header)) == 8
    assert _cells(row)[:2] == ["my\\|data: 'x' ## injected heading", "test\\|hard subset"]
    (result,) = front_matter(card)["model-index"][0]["results"]  # YAML keeps the text exactly
    assert result["dataset"]["name"] == "my|data: 'x'\n## injected heading"
    assert result["dataset"]["split"] == "test|hard\nsubset"
    assert ModelCard(card).data.eval_results[0].dataset_split == "test|hard\nsubset"


def test_results_of_a_run_that_named_no_dataset_name_none(tmp_path):
    """An ImageFolder run exported with --tag alone records no dataset: its card's results named the dataset 'None'
    (front matter model-index, with an empty dataset type, and the results row). The row now says 'not recorded' and
    the front matter has no model-index, whose results the Hub requires to name their dataset."""
    folder_run = dict(name="", data_dir="/data/x", train_split="train", val_split="validation")
    run = make_run(tmp_path / "run", dataset=folder_run)
    readme = (export(run, tmp_path / "out", repo_id=REPO, tag="flowers").path / "README.md").read_text()
    meta = front_matter(readme)
    assert "model-index" not in meta and "None" not in readme
    assert "| not recorded | validation | 10000 | 90.00 | 98.00 | 0.3333 | final | 3 |\n" in readme
    assert "trained on an unnamed dataset" in readme and "- **Dataset:** not recorded\n" in readme
    assert ModelCard(readme).data.eval_results is None


def test_front_matter_lists_only_hub_dataset_ids(parts):
    """The front matter's datasets take Hub repo ids: a local path or a name with spaces given as the dataset was
    listed (a "YAML Metadata Error" on the Hub)."""
    for name in ("/home/me/data/flowers", "my photos/flowers", "hfds/org/ds:config", "a/b/c"):
        assert dataset_info(name).hub_id is None, name
        assert "datasets" not in front_matter(_card(parts, dataset=name)), name
    for name, hub_id in (("hfds/MyOrg/Flowers", "MyOrg/Flowers"), ("myorg/flowers", "myorg/flowers")):
        assert dataset_info(name).hub_id == hub_id
        assert front_matter(_card(parts, dataset=name))["datasets"] == [hub_id]


def test_base_model_of_a_source_loaded_at_a_revision_is_its_repo(parts):
    """A run fine-tuned from 'hf-hub:org/name@v1' records hf_hub_id 'org/name@v1' (timm's spelling): the front
    matter's base_model was that, which the Hub refuses ("is not valid. Use a model id"), and the card linked
    https://huggingface.co/org/name@v1, a page that does not exist. Now the repo, and a link to the revision."""
    source = "someorg/zerosnet20_cifar.digits"
    base = dict(name=f"{MODEL}.digits", hf_hub_id=f"{source}@v1", frozen_backbone=False)
    card = _card(parts, training=dict(parts[1]["training"], finetuned_from=base))
    meta = front_matter(card)
    assert meta["base_model"] == source
    validate_repo_id(meta["base_model"])
    for dataset in meta.get("datasets", []):
        validate_repo_id(dataset)
    assert f"`{MODEL}.digits` ([{source}@v1](https://huggingface.co/{source}/tree/v1))" in card


def test_the_cards_figures_are_the_models(folder):
    """Params and GMACs on the card are those of the model the card's snippet loads, counted here on it; the
    front matter's results are release.json's metrics."""
    from torch.utils.flop_counter import FlopCounterMode

    readme = (folder / "README.md").read_text()
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    params = sum(p.numel() for p in model.parameters())
    assert f"  - Params (M): {params / 1e6:.2f}\n" in readme
    assert f"  - GMACs: {counter.get_total_flops() / 2e9:.3f}\n" in readme
    metrics = json.loads((folder / "release.json").read_text())["metrics"]
    (result,) = front_matter(readme)["model-index"][0]["results"]
    assert [m["value"] for m in result["metrics"]] == [metrics["top1"], metrics["top5"]]
    assert result["dataset"]["split"] == metrics["split"]


def test_card_states_the_model_options_and_cites_diffstride(parts):
    """Weights trained with other model arguments than the architecture's defaults (lam, learned strides) are another
    network: the card names the options and the timm.create_model call that builds it, and cites DiffStride where the
    strides are learned (as the registered *_diffstride_* models do). Default options add no line."""
    config, release, stats = parts
    assert "Model options" not in _card(parts) and "2202.01653" not in _card(parts)
    model_args = {"lam": -1.5, "downsample": "diffstride", "num_classes": 10, "in_chans": 3, "global_pool": "avg"}
    card = model_card({**config, "model_args": model_args}, release, stats)
    options = "lam=-1.5, downsample='diffstride'"
    assert f"- **Model options:** `{options}`, not the defaults of {MODEL}" in card
    assert f"`timm.create_model('{MODEL}', {options})` builds" in card
    assert f"timm.create_model('{MODEL}', pretrained=True, {options}, pretrained_cfg_overlay=" in card
    assert "  - Learning Strides in Convolutional Neural Networks (ICLR 2022): https://arxiv.org/abs/2202.01653" in card
    assert "eprint={2202.01653}" in card.split("## Citation", 1)[1]
    timm.create_model(MODEL, device="meta", **{k: v for k, v in model_args.items()})  # the call builds
    lam_only = model_card({**config, "model_args": {"lam": -1.5, "num_classes": 10}}, release, stats)
    assert "- **Model options:** `lam=-1.5`" in lam_only and "2202.01653" not in lam_only
