"""The release manifest: its schema, the pretrained cfgs generated from it, registering a temporary one, staging."""

from __future__ import annotations

import copy
import json

import pytest
import safetensors.torch
import timm
from test_hub_export import CIFAR10_LABELS, MODEL, REPO, make_run
from timm.models import generate_default_cfgs

from hub import HubError
from hub.cli import main
from hub.export import export
from hub.manifest import stage
from timm_zerosnet.models.multistep import cifar_cfg
from timm_zerosnet.release import (
    MANIFEST_FORMAT,
    ReleaseError,
    active_manifest,
    is_our_model,
    load_manifest,
    manifest_path,
    released_cfgs,
    repo_id_problem,
    use_manifest,
    validate_manifest,
    verify_sha256,
    with_released,
)

SHA = "3" * 64
ENTRY = dict(
    model=MODEL,
    tag="c10",
    repo_id=REPO,
    state="staged",
    hub_commit=None,
    sha256=SHA,
    size=1,
    num_classes=10,
    in_chans=3,
    dataset="uoft-cs/cifar10",
    license="apache-2.0",
    recipe="zerosnet_cifar10",
    data_config=dict(
        input_size=[3, 32, 32],
        mean=[0.4914, 0.4822, 0.4465],
        std=[0.2023, 0.1994, 0.2010],
        interpolation="bilinear",
        crop_pct=1.0,
        crop_mode="center",
    ),
    metrics=dict(top1=92.5, top5=99.7, split="test"),
)


def manifest_with(*entries) -> dict:
    return dict(format=MANIFEST_FORMAT, releases=[dict(ENTRY, **e) for e in entries])


def test_shipped_manifest_is_valid_and_matches_list_pretrained():
    shipped = load_manifest()
    assert manifest_path().name == "releases.json" and shipped == active_manifest()
    for entry in shipped["releases"]:
        assert entry["state"] in ("staged", "published")
        if entry["state"] == "published":
            assert len(entry["hub_commit"]) == 40
    ours = {name for name in timm.list_pretrained() if is_our_model(name.split(".")[0])}
    assert ours == {f"{e['model']}.{e['tag']}" for e in shipped["releases"]}


def test_pretrained_without_released_weights_lists_tags_and_how_to_publish():
    released = {e["model"] for e in active_manifest()["releases"]}
    model = next(n for n in timm.list_models(module="zerosnet") if n not in released)
    with pytest.raises(RuntimeError, match=r"has no released weights.*zerosnet-train.*zerosnet-hub"):
        timm.create_model(model, pretrained=True)


def test_released_cfgs_carry_hub_id_data_config_and_metrics():
    base = cifar_cfg(paper_ids="arXiv:2206.13100")
    cfgs = released_cfgs(
        MODEL,
        manifest_with(
            {},
            dict(
                tag="c100",
                repo_id="testorg/x.c100",
                num_classes=100,
                data_config=dict(ENTRY["data_config"], input_size=[3, 64, 64]),
                state="published",
                hub_commit="b" * 40,
            ),
        ),
        base=base,
    )
    assert list(cfgs) == ["c10", "c100"]
    c10, c100 = cfgs["c10"], cfgs["c100"]
    assert c10["hf_hub_id"] == REPO and c10["num_classes"] == 10 and c10["input_size"] == (3, 32, 32)
    assert c10["mean"] == (0.4914, 0.4822, 0.4465) and c10["crop_pct"] == 1.0 and c10["interpolation"] == "bilinear"
    assert c10["license"] == "apache-2.0" and c10["paper_ids"] == "arXiv:2206.13100" and c10["first_conv"] == "conv1"
    assert c10["pool_size"] == (8, 8) and c100["pool_size"] == (16, 16)
    assert "top-1 92.50%" in c10["description"] and f"sha256 {SHA}" in c10["notes"]
    assert "staged: not pushed to the Hub yet" in c10["notes"] and "origin_url" not in c10
    assert c100["origin_url"] == "https://huggingface.co/testorg/x.c100" and "url" not in c100
    assert released_cfgs("zerosnet32_cifar", manifest_with({})) == {}


def test_with_released_makes_the_release_the_default_and_keeps_untrained():
    family = {f"{MODEL}.untrained": cifar_cfg(), "zerosnet32_cifar.untrained": cifar_cfg()}
    merged = with_released(family, manifest_with({}))
    assert list(merged) == [f"{MODEL}.c10", f"{MODEL}.untrained", "zerosnet32_cifar.untrained"]
    default_cfgs = generate_default_cfgs(merged)
    assert list(default_cfgs[MODEL].tags) == ["c10", "untrained"] and default_cfgs[MODEL].is_pretrained
    assert list(default_cfgs["zerosnet32_cifar"].tags) == ["untrained"]


def test_use_manifest_registers_the_tags_and_restores_the_registry():
    before = timm.list_pretrained("zerosnet*")
    default_before = timm.models.get_pretrained_cfg(MODEL).tag
    with use_manifest(manifest_with({}, dict(model="lmresnet20_cifar", repo_id="testorg/lm.c10"))):
        assert {f"{MODEL}.c10", "lmresnet20_cifar.c10"} <= set(timm.list_pretrained())
        assert timm.models.get_pretrained_cfg(MODEL).tag == "c10"  # the release is the default tag
        assert timm.models.get_pretrained_cfg(f"{MODEL}.untrained").hf_hub_id is None
        assert timm.create_model(f"{MODEL}.untrained").num_classes == 10
        assert active_manifest()["releases"][0]["tag"] == "c10"
    assert timm.list_pretrained("zerosnet*") == before
    assert timm.models.get_pretrained_cfg(MODEL).tag == default_before
    assert active_manifest() == load_manifest()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(state="released"), "state must be one of"),
        (dict(sha256="abc"), "sha256 must be 64 lowercase hex"),
        (dict(state="published"), "a published release needs its 40-hex hub_commit"),
        (dict(repo_id="timm/zerosnet20_cifar.c10"), "in timm's own organisation"),
        (dict(repo_id="TIMM/zerosnet20_cifar.c10"), "in timm's own organisation"),
        (dict(repo_id="noslash"), "must be 'org/name'"),
        (dict(repo_id="org/a--b"), "not a valid Hub repo id"),
        (dict(tag="untrained"), "not be 'untrained'"),
        (dict(tag="C10.x"), r"tag 'C10.x' must match \[a-z0-9_\]\+"),
        (dict(data_config=None), "missing data_config"),
        (dict(label_names=["a", "b"]), "label_names must be a list of num_classes strings"),
        (dict(data_config=dict(input_size=[32, 32])), r"data_config needs input_size \(C, H, W\)"),
    ],
)
def test_manifest_errors_name_the_entry_and_the_problem(change, message):
    with pytest.raises(ReleaseError, match=message):
        validate_manifest(manifest_with(change))


def test_manifest_refuses_duplicates_and_bad_files(tmp_path):
    with pytest.raises(ReleaseError, match=r"zerosnet20_cifar\.c10 is listed twice"):
        validate_manifest(manifest_with({}, {}))
    with pytest.raises(ReleaseError, match="'format' must be"):
        validate_manifest({"releases": []})
    (tmp_path / "bad.json").write_text('{"format": ')
    with pytest.raises(ReleaseError, match=r"bad\.json: not valid JSON"):
        load_manifest(tmp_path / "bad.json")


def test_verify_sha256_refuses_a_different_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not the weights")
    with pytest.raises(
        ReleaseError,
        match=rf"refusing .*model\.safetensors: its sha256 is [0-9a-f]{{64}} but the "
        rf"release manifest records {SHA} for m\.t",
    ):
        verify_sha256(path, SHA, "m.t")


def test_stage_records_a_verified_export(tmp_path, capsys):
    folder = export(make_run(tmp_path / "run"), tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    entry = stage(folder, manifest)
    data = load_manifest(manifest)
    assert data["releases"] == [entry]
    assert entry["state"] == "staged" and entry["hub_commit"] is None and entry["repo_id"] == REPO
    assert entry["sha256"] == entry["files"]["model.safetensors"]["sha256"] and entry["num_classes"] == 10
    assert entry["data_config"]["input_size"] == [3, 32, 32] and entry["metrics"]["top1"] == 90.0
    assert entry["dataset"] == "uoft-cs/cifar10" and entry["recipe"] == "zerosnet_cifar10"
    assert entry["label_names"] == CIFAR10_LABELS
    with use_manifest(manifest):  # the registry tag carries them as the hf-hub: route does (config.json)
        assert timm.models.get_pretrained_cfg(f"{MODEL}.c10").label_names == tuple(CIFAR10_LABELS)
    assert stage(folder, manifest)["sha256"] == entry["sha256"]  # staging again: same single entry
    assert len(load_manifest(manifest)["releases"]) == 1

    published = copy.deepcopy(data)
    published["releases"][0].update(state="published", hub_commit="c" * 40, sha256=SHA)
    manifest.write_text(json.dumps(published))
    with pytest.raises(HubError, match="already published with other weights.*export under a new tag"):
        stage(folder, manifest)

    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", tag="other", repo_id=REPO).path
    with pytest.raises(HubError, match="already holds zerosnet20_cifar.c10; one repo per tag"):
        stage(other, manifest)


def test_stage_refuses_weights_that_need_model_arguments(tmp_path):
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, model_kwargs={"lam": -1.5})))
    folder = export(run, tmp_path / "export", repo_id=REPO).path
    assert json.loads((folder / "config.json").read_text())["model_args"]["lam"] == -1.5
    with pytest.raises(HubError, match=r"trained with model arguments \{'lam': -1.5\}.*'hf-hub:"):
        stage(folder, tmp_path / "releases.json")


@pytest.mark.parametrize(
    "repo_id, problem",
    [
        ("testorg/zerosnet20_cifar.c10", None),
        ("Org-1/name_2.v3", None),
        ("org/a--b", "not a valid Hub repo id"),
        ("org/a..b", "not a valid Hub repo id"),
        ("org/name.", "not a valid Hub repo id"),
        ("org/name-", "not a valid Hub repo id"),
        ("org/" + "a" * 97, "not a valid Hub repo id"),
        ("a/b/c", "must be 'org/name'"),
        ("name", "must be 'org/name'"),
        (None, "must be 'org/name'"),
        ("timm/x", "in timm's own organisation"),
        ("Timm/x", "in timm's own organisation"),
    ],
)
def test_repo_id_problem_follows_the_hub_rules(repo_id, problem):
    found = repo_id_problem(repo_id)
    assert found is None if problem is None else problem in found


def test_export_does_not_inherit_the_cfg_of_a_released_default_tag(tmp_path):
    """A release registered as the model's default tag: an export of other weights gets the family's own cfg, not
    that release's description, notes, Hub origin or data config."""
    other = dict(tag="other", data_config=dict(ENTRY["data_config"], mean=[0.1, 0.2, 0.3]), metrics=dict(top1=12.5))
    with use_manifest(manifest_with(other)):
        assert "top-1 12.50%" in timm.models.get_pretrained_cfg(MODEL).description  # the default tag
        weights = tmp_path / "w.safetensors"
        safetensors.torch.save_file(timm.create_model(MODEL, num_classes=10).state_dict(), str(weights))
        logs = []
        out = export(weights, tmp_path / "out", model=MODEL, tag="c10", dataset="cifar10", log=logs.append).path
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert not {"description", "notes", "origin_url", "hf_hub_id"} & cfg.keys()
    assert cfg["tag"] == "c10" and cfg["mean"] == [0.4914, 0.4822, 0.4465]  # the family's default, said in the log
    assert any("recorded no input_size, mean, std" in line for line in logs)


def test_a_release_std_other_than_the_family_default_reaches_the_pretrained_cfg():
    base = cifar_cfg(paper_ids="arXiv:2206.13100")
    assert tuple(base["std"]) != (0.25, 0.25, 0.25)
    data_config = dict(ENTRY["data_config"], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    c10 = released_cfgs(MODEL, manifest_with(dict(data_config=data_config)), base=base)["c10"]
    assert c10["std"] == (0.25, 0.25, 0.25) and c10["mean"] == (0.5, 0.5, 0.5)


def test_stage_from_the_command_line_takes_the_repo_id(tmp_path, capsys):
    """An export made without --repo-id is staged for the repo given to `zerosnet-hub stage --repo-id`."""
    folder = export(make_run(tmp_path / "run"), tmp_path / "export").path
    manifest = tmp_path / "releases.json"
    repo = "testorg/zerosnet20_cifar.staged"
    assert main(["stage", str(folder), "--repo-id", repo, "--manifest", str(manifest)]) == 0
    (entry,) = load_manifest(manifest)["releases"]
    assert entry["repo_id"] == repo and entry["state"] == "staged" and f"({repo}, sha256" in capsys.readouterr().out
