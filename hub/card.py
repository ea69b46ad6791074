"""Model cards in the layout of timm's own: YAML metadata, model details, usage, evaluation results, citations.

Everything in a card is derived from an export folder's ``config.json`` and ``release.json`` plus a count of the
model's parameters, multiply-adds and activations, so a card can be regenerated from the folder alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["DatasetInfo", "dataset_info", "default_image_mode", "model_stats", "model_card", "CITATIONS"]


class DatasetInfo:
    """A dataset's display name, Hub dataset id, the default weight tag for it and its number of classes (where
    known)."""

    def __init__(self, key: str, name: str, hub_id: str | None, tag: str | None, num_classes: int | None = None):
        self.key, self.name, self.hub_id, self.tag, self.num_classes = key, name, hub_id, tag, num_classes

    def __repr__(self) -> str:
        return f"DatasetInfo({self.key!r}, {self.name!r}, {self.hub_id!r}, {self.tag!r})"


_DATASETS = {
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", "uoft-cs/cifar10", "c10", 10),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100", "uoft-cs/cifar100", "c100", 100),
    "imagenet": DatasetInfo("imagenet", "ImageNet-1k", "ILSVRC/imagenet-1k", "in1k", 1000),
    "digits": DatasetInfo("digits", "scikit-learn digits (8x8 images upsampled to 32x32)", None, "digits", 10),
}
_ALIASES = {
    "imagenet-1k": "imagenet",
    "imagenet1k": "imagenet",
    "in1k": "imagenet",
    "ilsvrc2012": "imagenet",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}


# timm's dataset prefixes (create_dataset), and hf-hub: as the Hub spells a repo
_DATASET_PREFIXES = ("torch", "tfds", "hfds", "hfids", "wds", "hf-hub")


def _hub_repo_id(text: str | None) -> str | None:
    """``text`` if it is an 'org/name' repo id the Hub accepts, else None: the front matter's ``datasets`` and
    ``base_model`` take only those (anything else, a local path or a name with spaces, is a "YAML Metadata Error")."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(text, str) or text.count("/") != 1:
        return None
    try:
        validate_repo_id(text)
    except HFValidationError:
        return None
    return text


def dataset_info(name: str | None) -> DatasetInfo | None:
    """Recognise a dataset from a timm dataset name ('torch/cifar10', 'hfds/uoft-cs/cifar10', 'imagenet', ...)."""
    if not name:
        return None
    name = name.strip()
    prefix, sep, rest = name.partition(":") if name.startswith("hf-hub:") else name.partition("/")
    if not sep or prefix not in _DATASET_PREFIXES:
        prefix, rest = "", name
    key = rest.lower()
    for info in _DATASETS.values():
        if info.hub_id and key == info.hub_id.lower():
            return info
    key = _ALIASES.get(key, key)
    if key in _DATASETS:
        return _DATASETS[key]
    # hfds/ORG/NAME names a Hub dataset; torch/, tfds/ and wds/ name none (a bare ORG/NAME is taken as one)
    hub = rest if prefix in ("hfds", "hfids", "hf-hub") else name if not prefix and "/" in name else None
    return DatasetInfo(key, name, _hub_repo_id(hub), None)


def dataset_of_tag(tag: str) -> DatasetInfo | None:
    """The known dataset whose default weight tag is ``tag`` (c10, c100, in1k, digits), or None."""
    return next((info for info in _DATASETS.values() if info.tag == tag), None)


# ----- numbers -----


def model_stats(
    architecture: str, model_args: Mapping[str, Any], input_size: tuple[int, int, int], model: Any = None
) -> dict[str, Any]:
    """Parameters, GMACs and activations (outputs of conv and linear layers, in M) of one image at ``input_size``, and
    the shapes the card's snippets print: the feature maps (``feature_shapes``, as ``features_only=True`` returns
    them), the unpooled features (``unpooled_shape``) and the width of the pooled ones (``pooled_features``, twice
    ``num_features`` for a pool such as 'catavgmax'), each measured on the network rather than derived.

    Counted on the meta device, where nothing is computed, so this is fast for any depth. A network whose shapes
    depend on its weights (learnable strides) cannot run there: it is counted on a copy of ``model``, the exported
    network itself, so the figures are those of its learned strides.
    """
    import copy

    import timm
    import torch

    meta = timm.create_model(architecture, device="meta", **dict(model_args)).eval()
    try:
        stats = _count(meta, torch.empty((1, *input_size), device="meta"))
    except (NotImplementedError, RuntimeError):
        if model is None:
            raise
        real = copy.deepcopy(model).eval()
        param = next(real.parameters())
        stats = _count(real, torch.zeros((1, *input_size), device=param.device, dtype=param.dtype))
    return stats


def _count(model: Any, x: Any) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    activations = 0

    def count(_module, _inputs, output):
        nonlocal activations
        activations += output.numel()

    layers = (torch.nn.Conv2d, torch.nn.Linear)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    # the shapes the card's snippets print, measured (learned strides and widening pools make the nominal ones wrong)
    with torch.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)  # what features_only=True returns
        unpooled = model.forward_features(x)
        pooled = model.forward_head(unpooled, pre_logits=True)  # what num_classes=0 returns
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        gmacs=counter.get_total_flops() / 2 / 1e9,
        activations_m=activations / 1e6,
        feature_info=[dict(num_chs=f["num_chs"], reduction=f["reduction"]) for f in model.feature_info],
        num_features=model.num_features,
        feature_shapes=[list(t.shape) for t in maps],
        unpooled_shape=list(unpooled.shape),
        pooled_features=int(pooled.shape[-1]),
    )


# ----- citations -----

CITATIONS = {
    "2206.13100": dict(
        title="Zero-Stability Well Predicts Performance of Convolutional Neural Networks",
        venue="AAAI 2022",
        code="https://github.com/LongJin-lab/ZeroSNet",
        bibtex="""@inproceedings{chen2022zerostability,
  title={Zero-Stability Well Predicts Performance of Convolutional Neural Networks},
  author={Chen, Liangming and Jin, Long and Shang, Mingsheng},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
  volume={36},
  year={2022},
  eprint={2206.13100},
  archivePrefix={arXiv}
}""",
    ),
    "1710.10121": dict(
        title="Beyond Finite Layer Neural Networks: Bridging Deep Architectures and Numerical Differential Equations",
        venue="ICML 2018",
        code=None,
        bibtex="""@inproceedings{lu2018beyond,
  title={Beyond Finite Layer Neural Networks: Bridging Deep Architectures and Numerical Differential Equations},
  author={Lu, Yiping and Zhong, Aoxiao and Li, Quanzheng and Dong, Bin},
  booktitle={Proceedings of the 35th International Conference on Machine Learning (ICML)},
  series={Proceedings of Machine Learning Research},
  volume={80},
  year={2018},
  eprint={1710.10121},
  archivePrefix={arXiv}
}""",
    ),
    "1903.07120": dict(
        title="Convergence Theory of Learning Over-parameterized ResNet: A Full Characterization",
        venue="arXiv 2019",
        code="https://github.com/dayu11/tau-ResNet",
        bibtex="""@article{zhang2019convergence,
  title={Convergence Theory of Learning Over-parameterized ResNet: A Full Characterization},
  author={Zhang, Huishuai and Yu, Da and Yi, Mingyang and Chen, Wei and Liu, Tie-Yan},
  journal={arXiv preprint arXiv:1903.07120},
  year={2019}
}""",
    ),
    "2202.01653": dict(
        title="Learning Strides in Convolutional Neural Networks",
        venue="ICLR 2022",
        code="https://github.com/google-research/diffstride",
        bibtex="""@inproceedings{riad2022learning,
  title={Learning Strides in Convolutional Neural Networks},
  author={Riad, Rachid and Teboul, Olivier and Grangier, David and Zeghidour, Neil},
  booktitle={International Conference on Learning Representations},
  year={2022},
  eprint={2202.01653},
  archivePrefix={arXiv}
}""",
    ),
    "1603.05027": dict(
        title="Identity Mappings in Deep Residual Networks",
        venue="ECCV 2016",
        code=None,
        bibtex="""@inproceedings{he2016identity,
  title={Identity Mappings in Deep Residual Networks},
  author={He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  booktitle={Computer Vision -- ECCV 2016},
  pages={630--645},
  year={2016},
  publisher={Springer},
  eprint={1603.05027},
  archivePrefix={arXiv}
}""",
    ),
}

TIMM_CITATION = r"""@misc{rw2019timm,
  author = {Ross Wightman},
  title = {PyTorch Image Models},
  year = {2019},
  publisher = {GitHub},
  journal = {GitHub repository},
  doi = {10.5281/zenodo.4414861},
  howpublished = {\url{https://github.com/huggingface/pytorch-image-models}}
}"""


DIFFSTRIDE_PAPER = "2202.01653"


def _arxiv_ids(paper_ids: Any) -> list[str]:
    if not paper_ids:
        return []
    if isinstance(paper_ids, str):
        paper_ids = [paper_ids]
    out = []
    for pid in paper_ids:
        m = re.search(r"(\d{4}\.\d{4,5})", str(pid))
        if m:
            out.append(m.group(1))
    return out


# ----- the card -----

_FAMILY_NAMES = {
    "zerosnet": "ZeroSNet",
    "lmresnet": "LM-ResNet",
    "preresnet": "pre-activation ResNet",
    "tauresnet": "tau-ResNet",
}


def _family(architecture: str) -> str:
    """The registry module of an architecture (timm's 'module' name), e.g. 'zerosnet'."""
    from timm.models import model_entrypoint

    return model_entrypoint(architecture).__module__.rsplit(".", 1)[-1]


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|])")


def _md(value: Any) -> str:
    """Recorded text (a dataset name, a split) as one line of markdown that shows it as written: line breaks become
    spaces and markdown's special characters, the table's '|' among them, are escaped."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(str(value).split()))


def _code(value: Any) -> str:
    """Recorded text (a recipe or run name) as one inline code span, whatever backticks it holds."""
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _val_subset(metrics: Mapping[str, Any]) -> str | None:
    """How the results name the part of the split they were measured on (zerosnet-train --val-num-samples), or
    None for the whole split."""
    count = metrics.get("val_num_samples")
    return f"evenly spaced subset of {count:,} images" if count else None


def _hub_model(hf_hub_id: Any) -> tuple[str | None, str | None]:
    """The Hub repo and revision of a timm ``hf_hub_id`` ('org/name' or 'org/name@revision', as timm records an
    'hf-hub:org/name@revision' source); (None, None) when it names no Hub repo."""
    repo, _, revision = str(hf_hub_id or "").partition("@")
    repo = _hub_repo_id(repo)
    return (repo, revision or None) if repo else (None, None)


def _metadata(
    architecture: str, tag: str, family: str, release: Mapping[str, Any], license: str, headless: bool
) -> str:
    ds = dataset_info(release.get("dataset"))
    metrics = release.get("metrics") or {}
    task = "image-feature-extraction" if headless else "image-classification"
    meta: dict[str, Any] = {
        "tags": [task, "timm", "timm_zerosnet", family],
        "library_name": "timm",
        "pipeline_tag": task,
        "license": license,
    }
    if ds is not None and ds.hub_id:  # the Hub links it: never a torch/ or wds/ name, nor digits (no Hub dataset)
        meta["datasets"] = [ds.hub_id]
    base = (release.get("training") or {}).get("finetuned_from") or {}
    base_repo, _ = _hub_model(base.get("hf_hub_id"))
    if base_repo:  # the Hub's model tree links the two repos (a model id: never 'org/name@revision')
        meta["base_model"] = base_repo
    results = [
        dict(type="accuracy", name=f"Top-{k[-1]} accuracy", value=round(float(metrics[k]), 4))
        for k in ("top1", "top5")
        if metrics.get(k) is not None
    ]
    if results:
        meta["metrics"] = ["accuracy"]
    if results and ds is not None:  # the Hub's results name their dataset: none for data the run did not name
        dataset = dict(name=ds.name, type=ds.hub_id or ds.key)
        if metrics.get("split") or _val_subset(metrics):
            # a subset's results say so: the Hub reads a split's name as all of it
            subset = _val_subset(metrics)
            dataset["split"] = metrics.get("split") or "validation"
            dataset["split"] += f" ({subset})" if subset else ""
        meta["model-index"] = [
            dict(
                name=f"{architecture}.{tag}",
                results=[
                    dict(
                        task=dict(type="image-classification", name="Image Classification"),
                        dataset=dataset,
                        metrics=results,
                    )
                ],
            )
        ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


# a training state's weights by kind (release.json's weights), for the card
_STATE_WEIGHTS = {"final": "the model's weights", "ema": "the EMA's weights", "best": "the best weights so far"}


def _base_weights(base: Mapping[str, Any]) -> str:
    """The card's words for the weights a fine-tuned model started from (export's ``finetuned_from``)."""
    if base.get("local"):
        what = f"the weights of a local run or file ({_code(base['local'])}, not published)"
    else:
        repo, revision = _hub_model(base.get("hf_hub_id"))
        url = f"https://huggingface.co/{repo}" + (f"/tree/{revision}" if revision else "")
        shown = repo + (f"@{revision}" if revision else "") if repo else None
        what = _code(base.get("name")) + (f" ([{shown}]({url}))" if repo else "")  # a repo id: no markdown in it
    return what + (", backbone frozen (only the new head trained)" if base.get("frozen_backbone") else "")


def default_image_mode(in_chans: int) -> str | None:
    """The PIL mode zerosnet-train converts images to for ``in_chans`` channels without --input-img-mode (L, RGB,
    RGBA); None for a channel count that has none."""
    from timm_zerosnet.train import image_mode

    try:
        return image_mode(in_chans, None)
    except ValueError:
        return None


def _usage(
    model_id: str,
    img_mode: str | None,
    stats: Mapping[str, Any],
    input_size: tuple[int, int, int],
    headless: bool,
) -> str:
    if img_mode:
        load = f"img = Image.open('image.png').convert('{img_mode}')"
    else:  # no PIL mode has this many channels (a bare file's; a run records its mode)
        load = f"img = Image.open('image.png')  # the model takes {input_size[0]}-channel images; no PIL mode has that"
    shapes = "\n".join(f"    # torch.Size([{', '.join(map(str, s))}])" for s in stats["feature_shapes"])
    unpooled = f"({', '.join(map(str, stats['unpooled_shape']))})"
    pooled = f"(1, {stats['pooled_features']})"
    head = f"""import timm_zerosnet  # registers the model families with timm
import timm
import torch
from PIL import Image

{load}
"""
    transforms = """data_config = timm.data.resolve_model_data_config(model)
transforms = timm.data.create_transform(**data_config, is_training=False)
"""
    classification = f"""### Image Classification
```python
{head}
model = timm.create_model('{model_id}', pretrained=True)
model = model.eval()

# get model specific transforms (normalization, resize)
{transforms}
with torch.no_grad():
    output = model(transforms(img).unsqueeze(0))  # unsqueeze single image into batch of 1
top_probabilities, top_class_indices = torch.topk(output.softmax(dim=1) * 100, k=min(5, model.num_classes))
labels = model.pretrained_cfg.get('label_names') or [str(i) for i in range(model.num_classes)]
print([(labels[i], float(p)) for p, i in zip(top_probabilities[0], top_class_indices[0])])
```

"""
    if headless:  # no classifier was trained: the backbone's uses only (a new head: num_classes=N, then train it)
        classification = ""
    remove = "  # remove the classifier" if not headless else "  # a backbone: it has no classifier"
    return f"""{classification}### Feature Map Extraction
```python
{head}
model = timm.create_model('{model_id}', pretrained=True, features_only=True)
model = model.eval()

{transforms}
output = model(transforms(img).unsqueeze(0))  # one feature map per stride level
for o in output:
    print(o.shape)
{shapes}
```

### Image Embeddings
```python
{head}
model = timm.create_model('{model_id}', pretrained=True, num_classes=0){remove}
model = model.eval()

{transforms}
output = model(transforms(img).unsqueeze(0))  # a (1, head_hidden_size) tensor: {pooled}

# or equivalently (without needing to set num_classes=0)
output = model.forward_features(transforms(img).unsqueeze(0))  # unpooled: {unpooled}
output = model.forward_head(output, pre_logits=True)  # {pooled}
```
"""


def model_card(
    config: Mapping[str, Any],
    release: Mapping[str, Any],
    stats: Mapping[str, Any],
    repo_id: str | None = None,
) -> str:
    """The README.md of an export folder.

    Args:
        config: the folder's config.json (as timm writes it).
        release: the folder's release.json (tag, dataset, metrics, training recipe, weights sha256).
        stats: ``model_stats`` of the architecture.
        repo_id: the Hub repo the folder is meant for (the usage snippets load it); default: release['repo_id'].
    """
    from timm_zerosnet.models.multistep import network_options

    architecture = config["architecture"]
    cfg = config.get("pretrained_cfg") or {}
    tag = release.get("tag") or cfg.get("tag")
    repo_id = repo_id or release.get("repo_id")
    family = _family(architecture)
    license = cfg.get("license") or "apache-2.0"
    input_size = tuple(cfg.get("input_size") or (3, 224, 224))
    in_chans = int(input_size[0])
    # the run's --input-img-mode (export records it at the top of config.json), else the channel count's usual mode
    default_mode = default_image_mode(in_chans)
    img_mode = config.get("input_img_mode") or default_mode
    ds = dataset_info(release.get("dataset"))
    metrics = release.get("metrics") or {}
    training = release.get("training") or {}
    name = f"{architecture}.{tag}"
    model_id = f"hf-hub:{repo_id}" if repo_id else name
    papers = _arxiv_ids(cfg.get("paper_ids"))
    options = network_options(config.get("model_args"))
    if options.get("downsample") == "diffstride" and DIFFSTRIDE_PAPER not in papers:
        papers.append(DIFFSTRIDE_PAPER)  # learned strides: the registered *_diffstride_* models cite it too

    headless = config.get("num_classes") == 0
    lines = [_metadata(architecture, tag, family, release, license, headless), f"# Model card for {name}", ""]
    trained_on = _md(ds.name) if ds else "an unnamed dataset"
    kind = "feature backbone without a classifier" if headless else "image classification model"
    lines.append(
        f"A {_FAMILY_NAMES.get(family, family)} {kind} ({architecture}, see the papers below) "
        f"trained on {trained_on} with timm-zerosnet, a plugin that registers ODE-inspired residual networks with "
        f"timm. `import timm_zerosnet` before `timm.create_model`: timm has no plugin discovery."
    )
    lines += [
        "",
        "## Model Details",
        "- **Model Type:** "
        + ("Feature backbone (num_classes=0)" if headless else "Image classification / feature backbone"),
        "- **Model Stats:**",
        f"  - Params (M): {stats['params'] / 1e6:.2f}",
        f"  - GMACs: {stats['gmacs']:.3f}",
        f"  - Activations (M): {stats['activations_m']:.2f}",
        f"  - Image size: {input_size[1]} x {input_size[2]} ({in_chans} channel{'s' if in_chans > 1 else ''}"
        + (f", {img_mode})" if img_mode != default_mode else ")"),
    ]
    if papers:
        lines.append("- **Papers:**")
        for pid in papers:
            ref = CITATIONS.get(pid)
            title = f"{ref['title']} ({ref['venue']})" if ref else cfg.get("paper_name") or pid
            lines.append(f"  - {title}: https://arxiv.org/abs/{pid}")
    if options:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        lines.append(
            f"- **Model options:** {_code(given)}, not the defaults of {architecture}: the weights are of the network "
            f"`timm.create_model('{architecture}', {given})` builds. `hf-hub:` and `local-dir:` pass them from "
            f"config.json's `model_args`; pass them yourself to load `model.safetensors` as a file: "
            f"`timm.create_model('{architecture}', pretrained=True, {given}, "
            f"pretrained_cfg_overlay=dict(file='model.safetensors'))`."
        )
    subset = f", a subset of {training['train_samples']:,} training images" if training.get("train_samples") else ""
    lines.append(f"- **Dataset:** {_md(ds.name) if ds else 'not recorded'}{subset}")
    recipe = training.get("recipe")
    parts = [f"{k} {_md(training[k])}" for k in ("opt", "lr", "weight_decay", "sched") if training.get(k) is not None]
    if training.get("global_batch_size"):
        parts.append(f"global batch {training['global_batch_size']}")
    if training.get("epochs"):
        parts.append(f"{training['epochs']} epochs")
    if recipe or parts:
        lines.append(f"- **Recipe:** {f'{_code(recipe)}: ' if recipe else ''}{', '.join(parts)}")
    if base := training.get("finetuned_from"):
        lines.append(f"- **Fine-tuned from:** {_base_weights(base)}")
    code = [CITATIONS[p]["code"] for p in papers if p in CITATIONS and CITATIONS[p]["code"]]
    if code:
        lines.append(f"- **Original:** {code[0]}")
    weights = f"`model.safetensors`, sha256 `{release.get('sha256', '-')}`"
    if release.get("state"):  # a training state's weights, which its run never evaluated (no results below)
        which = _STATE_WEIGHTS.get(release.get("weights"), "the weights")
        weights += f": {which} of the training state `{_md(release['state'])}` of the run, not evaluated by it"
    lines.append(f"- **Weights:** {weights}")
    lines += ["", "## Model Usage"]
    if img_mode != default_mode:
        lines += [
            f"The model was trained and evaluated on images converted to {img_mode} (PIL mode `{img_mode}`, "
            f"config.json's `input_img_mode`), and its mean and std normalise the {img_mode} channels: convert "
            f"images to {img_mode} before the transforms, as the snippets do. timm's pretrained cfg has no image "
            f"mode, so nothing converts them for you, and {default_mode or 'other'} images give other outputs than "
            f"those evaluated below.",
            "",
        ]
    lines.append(_usage(model_id, img_mode, stats, input_size, headless))
    lines += [
        "### Checking the weights",
        "`golden.safetensors` holds a seeded input batch and the logits and pooled features these weights give "
        "for it (eval mode, one CPU thread). `check_golden` reruns it: on the machine that exported the weights "
        "the outputs are bit-identical; elsewhere expect float32 rounding differences (see `max_abs_diff`).",
    ]
    if repo_id:
        lines += [
            "```python",
            "import timm_zerosnet  # registers the model families with timm",
            "import timm",
            "from huggingface_hub import hf_hub_download",
            "from timm_zerosnet.release import check_golden",
            "",
            f"model = timm.create_model('{model_id}', pretrained=True)",
            f"print(check_golden(model, hf_hub_download('{repo_id}', 'golden.safetensors')))",
            "```",
        ]
    lines.append("")

    lines += ["## Evaluation Results"]
    if metrics.get("top1") is not None:
        split = metrics.get("split") or "validation"
        if subset := _val_subset(metrics):
            split += f" ({subset})"
        lines += [
            "| dataset | split | images | top-1 (%) | top-5 (%) | loss | weights | epoch |",
            "|---|---|---:|---:|---:|---:|---|---:|",
            f"| {_md(ds.name) if ds else 'not recorded'} | {_md(split)} | {_fmt(metrics.get('samples'))} | "
            f"{_fmt(metrics.get('top1'))} | {_fmt(metrics.get('top5'))} | {_fmt(metrics.get('loss'), 4)} | "
            f"{_md(metrics.get('weights') or '-')} | {_fmt(metrics.get('epoch'))} |",
            "",
            "Single run, single center crop at the image size above, as recorded by the training run (`run.json`).",
        ]
    else:
        lines.append("No evaluation results were recorded for these weights.")

    lines += ["", "## Citation"]
    for pid in papers:
        if pid in CITATIONS:
            lines += ["```bibtex", CITATIONS[pid]["bibtex"], "```"]
    lines += ["```bibtex", TIMM_CITATION, "```", ""]
    return "\n".join(lines)
