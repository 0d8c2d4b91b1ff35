"""Probes on tiny synthetic data: finite gradients, exact lesions, shape changes never silently wrong."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn

import zoo
from leaderboards._probes import lesion_per_net, write_probe_page
from search.config import TrialConfig
from search.data import load_dataset
from search.probe import gradient_probe, layer_responses, lesion_probe, main, response_probe, run_dataset
from search.train import train
from tests.search.helpers import write_image_folder


@pytest.fixture(scope="module")
def synthetic() -> object:
    return load_dataset("synthetic", data_seed=0)


def test_gradient_norms_are_finite_and_positive_for_every_model(synthetic: object) -> None:
    models = ["plain20", "resnet20", "preresnet110", "plain110"]  # plain110: the deepest, without OOM
    table = gradient_probe(models, synthetic, batches=3, batch_size=8, seed=0)
    assert list(dict.fromkeys(table["model"])) == models
    assert len(table[table["model"] == "plain110"]) == 54
    assert all(math.isfinite(v) and v > 0 for v in table["grad_norm"])
    assert table["correlation"].between(-1, 1).all()
    assert set(table["family"]) == {"plain", "residual", "pre-activation"}


def test_one_lesioned_unit_equals_the_network_built_without_it() -> None:
    torch.manual_seed(0)
    for name in ("resnet20", "preresnet110"):
        model = zoo.create_model(name).eval()
        by_hand = copy.deepcopy(model)
        model.layer2[1].lesion()
        stage = list(by_hand.layer2)
        by_hand.layer2 = nn.Sequential(*(stage[:1] + stage[2:]))  # the same weights, one unit fewer
        x = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(model(x), by_hand(x)), name
        model.layer2[1].lesion(False)
        with torch.no_grad():
            assert not torch.equal(model(x), by_hand(x))


def test_plain_unit_that_changes_shape_is_refused_and_residual_one_reported_apart() -> None:
    plain = zoo.create_model("plain20")
    with pytest.raises(ValueError, match="changes shape"):
        plain.layer2[0].lesion()
    plain.layer2[1].lesion()  # same shape: becomes the identity
    assert plain.layer2[1].lesioned
    residual = zoo.create_model("resnet20")
    assert residual.layer2[0].changes_shape and not residual.layer2[1].changes_shape


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke-trained ResNet-20 and plain-20 (one seed), as ``search.train`` leaves them."""
    root = tmp_path_factory.mktemp("pair")
    for name in ("resnet20", "plain20"):
        # few validation images: the lesion probe evaluates every lesion on all of them
        train(TrialConfig(model=name, data="synthetic", budget="smoke", recipe_overrides={"val_size": 64, "train_subset": 256}, threads=1), root / name, log=None)
    return root


def test_lesion_probe_on_a_trained_run_and_its_page(trained_pair: Path, tmp_path: Path) -> None:
    table = pd.concat([lesion_probe(trained_pair / name, draws=2, seed=0, images=40) for name in ("resnet20", "plain20")], ignore_index=True)
    assert set(table["images"]) == {40}
    plain = table[table["label"] == "plain-20"]
    refused = plain[plain["status"] != "ok"]
    assert len(refused) == 2 and refused["changes_shape"].all() and refused["accuracy"].isna().all()
    residual_single = table[(table["label"] == "ResNet-20 (A)") & (table["kind"] == "single")]
    assert len(residual_single) == 9 and residual_single["accuracy"].notna().all()
    assert sorted(table.loc[table["kind"] == "random", "k"].unique()) == [1, 2, 3, 4, 5]
    assert table["accuracy"].dropna().between(0, 1).all()
    # The page renders from the table alone.
    out = tmp_path / "probe"
    out.mkdir()
    table.to_csv(out / "lesion.csv", index=False)
    page = write_probe_page(out / "lesion.csv", out)
    text = page.path.read_text()
    assert "## Claims" in text and (out / "lesion-accuracy-vs-removed.png").exists()
    # One net per design: each claim shows its numbers and cannot be settled.
    assert text.count("**not enough evidence**") == 2 and "**holds**" not in text
    # Three seeds of each design, intact at 80% (chance 10%): the residual nets' single lesions keep
    # about 98% of the margin and the plain nets' about 3%, so both claims hold ...
    def seeds(residual_single: float) -> pd.DataFrame:
        copies = []
        for seed in (1, 2, 3):
            copy_ = table.assign(seed=seed, run=table["run"] + f"-{seed}")
            single = (copy_["kind"] == "single") & copy_["accuracy"].notna()
            copy_.loc[copy_["kind"] == "none", "accuracy"] = 0.8
            copy_.loc[single & (copy_["family"] == "residual"), "accuracy"] = residual_single + 0.01 * seed
            copy_.loc[single & (copy_["family"] == "plain"), "accuracy"] = 0.1 + 0.01 * seed
            copies.append(copy_)
        return pd.concat(copies)

    seeds(0.77).to_csv(out / "lesion.csv", index=False)
    text = write_probe_page(out / "lesion.csv", out).path.read_text()
    assert text.count("| **holds** |") == 2 and "98.6% of the margin above chance kept (mean over 3 seed(s)" in text
    assert "| ResNet-20 (A) | 3 | 0.8000 |" in text  # the per-net table lists each seed
    # ... and a residual net whose single lesions keep about half of it does not hold.
    seeds(0.42).to_csv(out / "lesion.csv", index=False)
    text = write_probe_page(out / "lesion.csv", out).path.read_text()
    assert "barely hurts" in text and "| **does not hold at this budget** |" in text and text.count("| **holds** |") == 1
    # A net within 2 binomial standard errors of chance keeps no share: 10.4% on 1000 images of 10
    # classes is 0.4 points above chance, under 2 x 0.95; 12% on the same images is clear of it.
    for intact, measured in ((0.104, False), (0.12, True)):
        untrained = seeds(0.77).assign(images=1000)
        untrained.loc[untrained["kind"] == "none", "accuracy"] = intact
        per_net = lesion_per_net(untrained)
        assert per_net["kept"].notna().all() == measured


def test_bad_probe_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradients", "--models", "resnet21", "--data", "synthetic", "--out", str(tmp_path / "g")]) == 2
    assert "unknown model 'resnet21'" in capsys.readouterr().err
    assert main(["lesion", "--runs", str(tmp_path), "--images", "0", "--out", str(tmp_path / "l")]) == 2
    assert capsys.readouterr().err == "error: --images must be positive, got 0\n"  # by name: once "--draws and --images ..., got 5 and 0"
    assert main(["lesion", "--runs", str(tmp_path), "--draws", "0", "--out", str(tmp_path / "l")]) == 2
    assert capsys.readouterr().err == "error: --draws must be positive, got 0\n"
    assert main(["gradients", "--models", "resnet20", "--data", "synthetic", "--batch-size", "1", "--out", str(tmp_path / "g")]) == 2
    assert capsys.readouterr().err == "error: --batch-size must be at least 2, got 1\n"
    assert main(["gradients", "--models", "resnet20", "--data", "synthetic", "--batches", "2", "--out", str(tmp_path / "g")]) == 2
    assert capsys.readouterr().err == "error: --batches must be at least 3 (verdicts pair batches), got 2\n"
    assert main(["lesion", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "l")]) == 2  # the older spelling still parses
    assert "not a finished search.train run" in capsys.readouterr().err
    assert main(["gradients", "--models", "resnet20", "--data", "synthetic", "--batches", "100000", "--out", str(tmp_path / "g")]) == 2  # once empty batches, for hours
    assert "100000 batches of 2 need 200000 validation images; the split has 400" in capsys.readouterr().err
    assert main(["gradients", "--models", "resnet20", "--data", "synthetic", "--data-seed", "-1", "--out", str(tmp_path / "g")]) == 2
    assert "--data-seed must not be negative, got -1" in capsys.readouterr().err
    assert main(["lesion", "--runs", str(tmp_path), "--seed", "-2", "--out", str(tmp_path / "l")]) == 2
    assert "--seed must not be negative, got -2" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() and not (tmp_path / "l").exists()


def test_gradient_probe_defaults_work_on_the_smallest_source(tmp_path: Path) -> None:
    # 8 batches of 64 would need 512 validation images; synthetic holds 400.
    assert main(["gradients", "--models", "resnet20,plain20", "--data", "synthetic", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "gradients.csv")
    assert set(table["batches"]) == {8} and set(table["batch_size"]) == {400 // 8}


def test_a_model_without_residual_units_is_refused_before_any_data_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # cifar10 is not in the test cache: loading it would try to download. The check comes first.
    assert main(["gradients", "--models", "resnet20,cifar_vgg16_bn", "--data", "cifar10", "--out", str(tmp_path / "g")]) == 2
    assert "cifar_vgg16_bn is not a ResNet-family model" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(("block", "last_response"), [("basic", "bn2"), ("basic_bn_after_add", "conv2"), ("preact_basic", "conv2"), ("relu_preact_basic", "bn2")])
def test_a_units_response_is_measured_before_the_addition(block: str, last_response: str) -> None:
    torch.manual_seed(0)
    model = zoo.ResNet(block=block, depth=8, widths=(4, 8, 16)).eval()
    branch = model.layer1[0].branch
    # Silence the unit's last layer: its response is exactly zero, while the unit's output (the
    # shortcut's input added back) is not; measured after the addition, it would not be zero.
    with torch.no_grad():
        for parameter in getattr(branch, last_response).parameters():
            parameter.zero_()
    images = torch.randn(6, 3, 16, 16)
    responses = dict(layer_responses(model, images, batch_size=4))
    assert responses["layer1.0.branch.conv2"] == 0.0
    captured = {}
    model.layer1[0].register_forward_hook(lambda m, i, o: captured.setdefault("unit", o))
    with torch.no_grad():
        model(images)
    assert captured["unit"].std() > 0.1
    assert set(responses) == {name for name, module in model.named_modules() if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3)}


def test_layer_response_is_the_std_of_the_bn_output_over_every_element() -> None:
    torch.manual_seed(0)
    model = zoo.ResNet(block="basic", depth=8, widths=(4, 8, 16)).eval()
    images = torch.randn(10, 3, 16, 16)
    outputs = []
    model.layer2[0].branch.bn1.register_forward_hook(lambda m, i, o: outputs.append(o.double()))
    responses = dict(layer_responses(model, images, batch_size=3))  # batches of 3, 3, 3, 1
    by_hand = torch.cat(outputs).flatten().std(correction=0).item()
    assert responses["layer2.0.branch.conv1"] == pytest.approx(by_hand, rel=1e-9)


def test_responses_probe_on_trained_runs_and_its_page(trained_pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "responses"
    runs = [str(trained_pair / name) for name in ("resnet20", "plain20")]
    assert main(["responses", "--runs", ",".join(map(str, runs)), "--images", "50", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "probe.json").read_text())["device"] == "cpu"
    table = pd.read_csv(out / "responses.csv")
    assert table.groupby("label").size().to_dict() == {"ResNet-20 (A)": 19, "plain-20": 19}
    assert (table["std"] > 0).all() and set(table["images"]) == {50}
    assert set(table["num_classes"]) == {10} and set(table["val_images"]) == {json.loads(Path(runs[0], "summary.json").read_text())["splits"]["val"]}
    assert sorted(table.loc[table["label"] == "plain-20", "rank"]) == list(range(1, 20))
    page = write_probe_page(out / "responses.csv", out)
    text = page.path.read_text()
    # One pair of nets: the claim is stated with its numbers and cannot be settled.
    assert "ResNet-20 (A) has smaller responses than plain-20" in text and "**not enough evidence**" in text
    assert "**holds**" not in text and (out / "responses-by-layer.png").exists()
    assert "from `responses/responses.csv`, written by `search.probe responses`" in text  # its folder and file
    # The probe's own commit and machine are not the nets': the page says what trained each.
    summary = json.loads(Path(runs[0], "summary.json").read_text())
    assert [run["run"] for run in json.loads((out / "probe.json").read_text())["trained"]] == runs
    assert f"- trained on: {summary['hardware']}, cpu {summary['precision']}; torch {summary['torch_version']}; git commit {summary['git_commit']}: `{runs[0]}`, `{runs[1]}`\n" in text
    # Three paired seeds of trained nets where the residual net's responses are half its plain
    # twin's: it holds.
    seeds = []
    for seed in (1, 2, 3):
        copy_ = table.assign(seed=seed, run=table["run"] + f"-{seed}", val_accuracy=0.8, val_images=1000)
        copy_.loc[copy_["family"] == "residual", "std"] *= 0.5
        seeds.append(copy_)
    pd.concat(seeds).to_csv(out / "responses.csv", index=False)
    assert "| **holds** |" in write_probe_page(out / "responses.csv", out).path.read_text()
    # A plain net that never left chance (10.4% on 1000 images of 10 classes: within 2 binomial
    # standard errors) has learned no function to compare: its seed's pair is left out, and two
    # pairs cannot settle the claim.
    seeds[2].loc[seeds[2]["family"] == "plain", "val_accuracy"] = 0.104
    pd.concat(seeds).to_csv(out / "responses.csv", index=False)
    text = write_probe_page(out / "responses.csv", out).path.read_text()
    assert "n=2 paired seed(s); left out: seed(s) 3, where a net is not clearly above chance | **not enough evidence** |" in text
    assert "| plain-20 | 3 | 0.1040 | no |" in text and "| plain-20 | 2 | 0.8000 | yes |" in text


def test_bad_responses_input_exits_2_and_writes_nothing(trained_pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["responses", "--runs", str(trained_pair / "resnet20"), "--images", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--images must be positive, got 0" in capsys.readouterr().err
    assert main(["responses", "--runs", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a finished search.train run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["responses", "--runs", str(trained_pair / "resnet20"), "--device", "tpu", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2 and "invalid choice 'tpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["lesion", "--runs", str(trained_pair / "resnet20"), "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
        assert "no CUDA device is visible" in capsys.readouterr().err
    # A net trained for one more epoch than its twin: the page would give one recipe for both and
    # pool their seeds, so one table takes nets trained alike only.
    longer = tmp_path / "longer"
    shutil.copytree(trained_pair / "resnet20", longer)
    summary = json.loads((longer / "summary.json").read_text())
    epochs = summary["recipe"]["epochs"]
    summary["recipe"]["epochs"] = epochs + 1
    (longer / "summary.json").write_text(json.dumps(summary))
    for probe in ("responses", "lesion"):
        assert main([probe, "--runs", f"{trained_pair / 'plain20'},{longer}", "--out", str(tmp_path / "r")]) == 2
        error = capsys.readouterr().err
        assert error.strip() == f"error: --runs {longer} was trained with recipe epochs {epochs + 1}, unlike {trained_pair / 'plain20'} ({epochs}); one probe table holds nets trained alike: probe each setup into its own --out"
    # One net given twice (or two of one name) once gave the table its rows twice, and a claim two seeds.
    copy = tmp_path / "copy" / "resnet20"
    shutil.copytree(trained_pair / "resnet20", copy)
    for twice in (f"{trained_pair / 'resnet20'},{trained_pair / 'resnet20'}/", f"{trained_pair / 'resnet20'},{copy}"):
        assert main(["responses", "--runs", twice, "--out", str(tmp_path / "r")]) == 2
        assert "two runs named resnet20; a probe table keys its nets by folder name, so each may be given once" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_runs_added_to_a_probe_table_equal_probing_them_all_at_once(trained_pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resnet, plain = str(trained_pair / "resnet20"), str(trained_pair / "plain20")
    settings = {"responses": ["--images", "50"], "lesion": ["--images", "40", "--draws", "1", "--seed", "3"]}
    for probe, options in settings.items():
        at_once, part = tmp_path / f"{probe}-at-once", tmp_path / f"{probe}-part"
        assert main([probe, "--runs", f"{resnet},{plain}", *options, "--device", "cpu", "--out", str(at_once)]) == 0
        assert main([probe, "--runs", resnet, *options, "--device", "cpu", "--out", str(part)]) == 0
        assert main([probe, "--runs", plain, *options, "--device", "cpu", "--out", str(part), "--add"]) == 0
        pd.testing.assert_frame_equal(pd.read_csv(part / f"{probe}.csv"), pd.read_csv(at_once / f"{probe}.csv"))
        recorded = json.loads((part / "probe.json").read_text())
        assert [run["run"] for run in recorded["trained"]] == [resnet, plain]
        assert [addition["runs"] for addition in recorded["additions"]] == [[plain]] and "--add" in recorded["additions"][0]["command"]
        # Probing a run again replaces its rows where they were.
        assert main([probe, "--runs", resnet, *options, "--device", "cpu", "--out", str(part), "--add"]) == 0
        pd.testing.assert_frame_equal(pd.read_csv(part / f"{probe}.csv"), pd.read_csv(at_once / f"{probe}.csv"))
        assert sorted(run["run"] for run in json.loads((part / "probe.json").read_text())["trained"]) == sorted([resnet, plain])
    # Another net of a model already in the table goes after that model's nets, so the page's
    # per-net table stays grouped by model.
    second = tmp_path / "resnet20-again"
    shutil.copytree(resnet, second)
    assert main(["responses", "--runs", str(second), "--images", "50", "--device", "cpu", "--out", str(tmp_path / "responses-part"), "--add"]) == 0
    assert list(pd.read_csv(tmp_path / "responses-part" / "responses.csv")["run"].unique()) == ["resnet20", "resnet20-again", "plain20"]
    text = write_probe_page(tmp_path / "responses-part" / "responses.csv", tmp_path).path.read_text()
    assert f"- added later: `{plain}`, probed on " in text and text.count("- added later: ") == 3
    assert "from `responses-part/responses.csv`" in text  # its own folder, not the page's name

    # An addition probed or trained unlike the table is refused, and the table stays as it was.
    part = tmp_path / "responses-part"
    before = {path.name: path.read_bytes() for path in part.iterdir()}
    assert main(["responses", "--runs", plain, "--images", "40", "--out", str(part), "--add"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --add: images 40 differs from the 50 {part / 'responses.csv'} was probed with; valid: the same images"
    longer = tmp_path / "longer"
    shutil.copytree(trained_pair / "plain20", longer)
    summary = json.loads((longer / "summary.json").read_text())
    summary["recipe"]["epochs"] += 1
    (longer / "summary.json").write_text(json.dumps(summary))
    assert main(["responses", "--runs", str(longer), "--images", "50", "--out", str(part), "--add"]) == 2
    assert f"error: --runs {longer} was trained with recipe epochs {summary['recipe']['epochs']}, unlike the nets in {part / 'responses.csv'}" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in part.iterdir()} == before
    assert main(["responses", "--runs", plain, "--out", str(tmp_path / "empty"), "--add"]) == 2
    assert "holds no responses probe" in capsys.readouterr().err and not (tmp_path / "empty").exists()
    torn = tmp_path / "torn"  # a table torn by an old crash: once pandas' message, naming no file
    shutil.copytree(part, torn)
    (torn / "responses.csv").write_text('run,layer,std\n"plain20,1,0.5\n')
    assert main(["responses", "--runs", plain, "--images", "50", "--out", str(torn), "--add"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {torn / 'responses.csv'} is not a readable CSV table: ")
    # A table written before probe.json recorded the carve: a responses table shows it per row, a
    # lesion table does not, so it cannot take additions.
    for probe in ("responses", "lesion"):
        settings_path = tmp_path / f"{probe}-part" / "probe.json"
        settings_path.write_text(json.dumps({key: value for key, value in json.loads(settings_path.read_text()).items() if key not in ("data_seed", "draws")}))
    assert main(["responses", "--runs", plain, "--images", "50", "--device", "cpu", "--out", str(part), "--add"]) == 0
    assert main(["lesion", "--runs", plain, *settings["lesion"], "--out", str(tmp_path / "lesion-part"), "--add"]) == 2
    assert "does not record which validation carve (data_seed)" in capsys.readouterr().err


def test_probes_of_a_streamed_run_read_its_files_and_equal_the_in_memory_ones(tmp_path: Path) -> None:
    # A run that trained from the files (an ImageNet-sized folder would not fit in memory) is
    # probed from the files too; on PNGs the pixels at rest are the in-memory path's, bit for bit.
    write_image_folder(tmp_path / "data", "train", per_class=20)
    config = TrialConfig(model="resnet20", data=str(tmp_path / "data"), budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"epochs": 1, "batch_size": 16, "val_size": 12, "test_size": 6, "eval_batch_size": 12, "data_path": "stream"}, threads=1)
    streamed = tmp_path / "streamed"
    assert train(config, streamed, log=None)["data_path"] == "stream"
    in_memory = tmp_path / "in-memory"
    shutil.copytree(streamed, in_memory)
    summary = json.loads((in_memory / "summary.json").read_text())
    (in_memory / "summary.json").write_text(json.dumps({**summary, "data_path": "memory"}))
    compared = ["kind", "k", "units", "draw", "status", "accuracy"]
    pd.testing.assert_frame_equal(lesion_probe(streamed, draws=1, seed=0)[compared], lesion_probe(in_memory, draws=1, seed=0)[compared], check_exact=True)
    pd.testing.assert_frame_equal(response_probe(streamed, images=12)[["name", "std"]], response_probe(in_memory, images=12)[["name", "std"]], check_exact=True)


def test_a_run_is_probed_on_the_validation_carve_it_asked_for(tmp_path: Path) -> None:
    # 1,000 validation images, more than the tenth of the 4,000 synthetic ones a budget is held
    # to: the probe carves them by the run's recorded sizes, not by the budget's rule.
    config = TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"epochs": 1, "val_size": 1000}, threads=1)
    train(config, tmp_path / "run", log=None)
    probed, _ = run_dataset(json.loads((tmp_path / "run" / "summary.json").read_text()))
    trained = load_dataset("synthetic", data_seed=0, val_size=1000, test_size=256, exact_sizes={"val"})
    assert probed.sizes() == trained.sizes() == {"train": 2744, "val": 1000, "test": 256}
    assert torch.equal(probed.val.images, trained.val.images)
