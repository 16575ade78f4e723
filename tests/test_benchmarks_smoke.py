"""The benchmark scripts still run: each script's main at tiny sizes prints well-formed JSON lines, and their
helpers give hand-computed values (no timing assertions, only values that do not depend on the machine's speed)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
CPU = torch.device("cpu")


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a benchmark script by name, as the scripts import each other (their folder on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


@pytest.fixture
def run_main(load: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> Callable[..., list[dict[str, Any]]]:
    """Run a script's main with arguments (at this process's thread count) and return its JSON records, after
    checking that every line that looks like JSON is a JSON object naming its benchmark."""

    def run(script: str, *arguments: str) -> list[dict[str, Any]]:
        module = load(script)
        monkeypatch.setattr(sys, "argv", [script, *arguments, "--threads", str(torch.get_num_threads()),
                                          "--device", "cpu"])
        module.main()
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]
        assert records and all(isinstance(r, dict) and isinstance(r.get("benchmark"), str) for r in records)
        assert records[0]["benchmark"] == "environment" and records[0]["device"] == "cpu"
        for record in records:
            numbers = [v for v in record.values() if isinstance(v, float)]
            assert all(math.isfinite(v) for v in numbers), record
        return records

    return run


def _named(records: list[dict[str, Any]], benchmark: str) -> list[dict[str, Any]]:
    return [r for r in records if r["benchmark"] == benchmark]


def test_common_timing_records_and_peak_memory(load: Callable[[str], ModuleType]) -> None:
    common = load("common")
    timing = common.Timing([0.2, 0.1, 0.4], warmup_seconds=1.0)
    assert timing.median == 0.2
    assert timing.spread == pytest.approx(1.5)  # (0.4 - 0.1) / 0.2
    calls = []
    timing = common.time_calls(lambda: calls.append(1), CPU, repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.seconds) == 3
    bare = iter([10.0, 30.0])
    figures = common.bracketed(lambda: next(bare), lambda: {"images_per_s": 18.0})
    assert figures == {"images_per_s": 18.0, "bare_images_per_s": 20.0, "bare_drift": 1.0, "ratio_to_bare": 0.9,
                       "ratios": [0.9]}
    # three runs between four bare figures: ratios 15/15, 20/25, 40/35; the median ratio (run 0) is reported
    bare, runs = iter([10.0, 20.0, 30.0, 40.0]), iter([15.0, 20.0, 40.0])
    figures = common.bracketed(lambda: next(bare), lambda: {"images_per_s": next(runs)}, rounds=3)
    assert figures == {"images_per_s": 15.0, "bare_images_per_s": 15.0, "bare_drift": 1.2, "ratio_to_bare": 1.0,
                       "ratios": [1.0, 0.8, 1.143]}
    assert common.parse_records('text\n{"benchmark": "x", "a": 1}\nmore') == [{"benchmark": "x", "a": 1}]
    with common.rss_peak() as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
    assert memory["rss_peak_mib"] - memory["rss_before_mib"] >= 60


def test_synthetic_city_generated_once_into_the_cache(load: Callable[[str], ModuleType], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cosplace_xs.synthetic import city as synthetic

    common = load("common")
    calls = []

    def fake_generate(root: Path, config: object, progress: bool, overwrite: bool) -> None:
        calls.append((root.name, config.preset, progress))
        (root / "train").mkdir(parents=True)

    monkeypatch.setattr(common, "CITY_CACHE", tmp_path)
    monkeypatch.setattr(synthetic, "generate_city", fake_generate)
    assert common.synthetic_city(None, "tiny") == tmp_path / "synthetic_city_tiny"
    assert common.synthetic_city(None, "tiny") == tmp_path / "synthetic_city_tiny"  # cached: not generated again
    assert calls == [("synthetic_city_tiny.partial", "tiny", False)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_city_tiny"]
    assert common.synthetic_city(tmp_path / "mine") == tmp_path / "mine"  # --dataset wins, nothing generated
    assert len(calls) == 1


def test_matmul_ceiling(load: Callable[[str], ModuleType]) -> None:
    ceiling = load("matmul_ceiling")
    assert "fp32" in ceiling.native_precisions(CPU)
    for kernel in ceiling.KERNELS:
        best, median = ceiling.matmul_flops(64, "fp32", CPU, seconds=0.01, kernel=kernel)
        assert best >= median > 0
    # the benchmark's 1 x 1 convolution computes the n x n matmul it is counted as (2 n^3 FLOPs)
    n = 16
    generator = torch.Generator().manual_seed(0)  # the draws gemm_call makes, in its order
    image = torch.randn(1, n, n, 1, generator=generator)
    filters = torch.randn(n, n, 1, 1, generator=generator)
    product = ceiling.gemm_call("conv1x1", n, "fp32", CPU)()
    assert product.shape == (1, n, n, 1)
    torch.testing.assert_close(product[0, :, :, 0], filters[:, :, 0, 0] @ image[0, :, :, 0])


def test_model_throughput_variants_flops_and_step(load: Callable[[str], ModuleType]) -> None:
    mt = load("model_throughput")
    for name in ("fp32", "channels_last", "channels_last_bf16", "channels_last_bf16_compile", "bf16",
                 "channels_last_bf16_unfused"):
        assert mt.Variant.parse(name).name == name
    assert mt.Variant.parse("channels_last_bf16") == mt.Variant(channels_last=True, precision="bf16")
    with pytest.raises(ValueError, match="unknown variant"):
        mt.Variant.parse("channels_first")
    assert mt.scaled_batch(32, 1.0, 1.0) == 32
    assert mt.scaled_batch(32, 1.0, 4.0) == 8
    assert mt.scaled_batch(32, 1.0, 100.0) == mt.MIN_BATCH
    assert mt.scaled_batch(2, 1.0, 0.01) == 2  # a batch below MIN_BATCH is kept, never raised
    # torchvision's ResNet-18 is 1.814 G multiply-adds at 224 px; the head adds 0.26 M (Linear 512 -> 512)
    assert mt.flops_per_image("resnet18", 224, "infer") == pytest.approx(2 * 1.8142e9, rel=0.01)
    assert mt.flops_per_image("resnet18", 64, "train") > mt.flops_per_image("resnet18", 64, "infer")
    adam = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.5, weight_decay=0.1, fused=True)
    unfused = mt.unfused(adam)
    assert unfused.param_groups[0]["fused"] is None and unfused.param_groups[0]["lr"] == 0.5
    unfused.param_groups[0]["params"][0].grad = torch.ones(2)
    unfused.step()


def test_a_grouped_convolutions_backward_counts_each_gradient_as_its_forward(load: Callable[[str], ModuleType]
                                                                             ) -> None:
    """A depthwise 3 x 3 convolution of 8 channels on 2 images of 5 x 5: the forward is 2 FLOPs x N x C_out x H x W
    x (C_in / groups) x k x k = 7,200; the input and weight gradients cost as much each (torch's own formula
    counts the weight gradient 8 times over, once per group)."""
    from torch.utils.flop_counter import FlopCounterMode

    model_throughput = load("model_throughput")
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    images = torch.randn(2, 8, 5, 5, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten.convolution_backward: model_throughput.conv_backward_flops})
    with counter:
        conv(images).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * 2 * 8 * 5 * 5 * 1 * 3 * 3


def test_model_throughput_script(run_main: Callable[..., list[dict[str, Any]]],
                                 load: Callable[[str], ModuleType]) -> None:
    records = run_main("model_throughput", "--backbones", "resnet18", "--sizes", "32", "--modes", "train,infer",
                       "--variants", "fp32,channels_last_bf16_unfused", "--batch", "2", "--steps", "1",
                       "--ceiling-sizes", "64")
    rows = _named(records, "model_throughput")
    # the unfused variant is a training variant only: inference has no optimizer
    assert [(r["mode"], r["variant"]) for r in rows] == [("train", "fp32"), ("train", "channels_last_bf16_unfused"),
                                                         ("infer", "fp32")]
    flops = load("model_throughput").flops_per_image
    for row in rows:
        assert row["batch"] == 2 and row["size"] == 32 and row["images_per_s"] > 0
        assert row["gflop_per_image"] == round(flops("resnet18", 32, row["mode"]) / 1e9, 3)
    assert _named(records, "model_throughput_memory")[0]["peak_rss_mib"] > 0


def test_data_pipeline_decoders_and_loader(load: Callable[[str], ModuleType], tmp_path: Path) -> None:
    from PIL import Image

    from cosplace_xs.augment import BatchAugmentation
    from cosplace_xs.config import AugmentConfig
    from cosplace_xs.data import train_set
    from cosplace_xs.data.images import read_image

    dp = load("data_pipeline")
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    pixels = np.stack([np.broadcast_to(ramp, (64, 64)), np.broadcast_to(ramp[:, None], (64, 64)),
                       np.full((64, 64), 128, np.uint8)], axis=-1)
    paths = []
    for index in range(4):
        paths.append(tmp_path / f"{index}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=95)
    reference = read_image(paths[0], 32).float()
    drafted = dp.read_image_pil_draft(paths[0], 32)
    assert drafted.dtype == torch.uint8 and drafted.shape == (3, 32, 32)
    assert (drafted.float() - reference).abs().mean() < 4  # a smooth ramp decodes to nearly the same pixels
    for decoder in dp.DECODERS.values():
        assert dp.decode_rate(paths, decoder, 32) > 0
    with dp.training_decoder(dp.read_image_pil_draft):
        assert train_set.read_image is dp.read_image_pil_draft
    assert train_set.read_image is read_image
    batches = [(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.arange(2))] * 3
    loader = dp.training_loader(batches, num_batches=3, workers=0, device=CPU)
    figures = dp.pipeline_rate(loader, CPU, BatchAugmentation(AugmentConfig(), 16))
    assert figures["images_per_s"] > 0


def test_data_pipeline_script(run_main: Callable[..., list[dict[str, Any]]], load: Callable[[str], ModuleType],
                              tiny_city: Path) -> None:
    dp = load("data_pipeline")
    records = _named(run_main("data_pipeline", "--dataset", str(tiny_city), "--size", "32", "--batch", "4",
                              "--batches", "2", "--workers", "0"), "data_pipeline")
    assert [(r["stage"], r["decoder"], r["workers"]) for r in records] == [
        ("decode", "torchvision", 0), ("decode", "pil_draft", 0), ("loader", "torchvision", 0),
        ("pipeline", "torchvision", 0), ("loader", "pil_draft", 0), ("pipeline", "pil_draft", 0),
        *[("crop", "torchvision", 0)] * len(dp.CROPS)]
    assert [r["crop"] for r in records if r["stage"] == "crop"] == list(dp.CROPS)
    assert all(r["native_size"] == [64, 64] and r["size"] == 32 and r["images_per_s"] > 0 for r in records)
    # the crops read what the training loop reads for each
    assert dp.group_batches(tiny_city, 4, 32)[0][0].shape[-2:] == (32, 32)
    assert dp.group_batches(tiny_city, 4, None)[0][0].shape[-2:] == (64, 64)


def test_train_end_to_end_instruments_the_loop(load: Callable[[str], ModuleType]) -> None:
    e2e = load("train_end_to_end")
    times = e2e.LoopTimes()
    batches = [(torch.zeros(1), torch.arange(3))] * 4
    assert list(e2e.TimedBatches(batches, times)) == batches
    assert len(times.waits) == len(times.steps) == 4 and times.batch_sizes == [3] * 4
    times = e2e.LoopTimes(waits=[5.0, 1.0, 1.0], steps=[9.0, 3.0, 3.0], augments=[0.0, 0.5, 0.5],
                          batch_sizes=[4, 4, 4])
    summary = times.summary()
    assert summary["images_per_s"] == 1.0 and summary["wait_share"] == 0.25 and summary["augment_share"] == 0.125
    assert summary["first_wait_s"] == 5.0


def test_train_end_to_end_script(run_main: Callable[..., list[dict[str, Any]]], tiny_city: Path) -> None:
    records = run_main("train_end_to_end", "--dataset", str(tiny_city), "--iterations", "3", "--precisions", "fp32",
                       "--workers", "0,1", "--batch", "4", "--size", "32", "--bare-steps", "1")
    runs = _named(records, "train_end_to_end")
    assert [(r["workers"], r["iterations"], r["batch"], r["size"], r["precision"]) for r in runs] == [
        (0, 3, 4, 32, "fp32"), (1, 3, 4, 32, "fp32")]
    for run in runs:
        assert run["images_per_s"] > 0 and 0 <= run["wait_share"] < 1 and 0 < run["augment_share"] < 1
        assert run["ratio_to_bare"] == pytest.approx(run["images_per_s"] / run["bare_images_per_s"], rel=0.01)
    assert _named(records, "train_memory")[0]["peak_rss_mib"] > 0


def test_evaluation_search(load: Callable[[str], ModuleType]) -> None:
    ev = load("evaluation")
    descriptors = ev.random_descriptors(5, np.random.default_rng(0), dim=8)
    assert np.allclose(np.linalg.norm(descriptors, axis=1), 1)
    assert ev.extrapolate(2.0, 1000, 5000) == 10.0
    database = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=np.float32)
    queries = np.array([[0.9, 0.1], [0.1, 1.6]], dtype=np.float32)
    for search in ev.SEARCHES.values():
        distances, indices = search(database, queries, 2)
        assert np.asarray(indices).tolist() == [[1, 0], [2, 0]]  # squared L2: 0.02 < 0.82; 0.17 < 2.57
        assert np.allclose(distances, [[0.02, 0.82], [0.17, 2.57]], atol=1e-5)
        figures = ev.search_figures(search, 200, 10, 5, np.random.default_rng(0))
        assert set(figures) == {"search_s", "extra_database_copies"} and figures["search_s"] >= 0


def test_evaluation_script(run_main: Callable[..., list[dict[str, Any]]], tiny_city: Path) -> None:
    records = run_main("evaluation", "--dataset", str(tiny_city), "--precisions", "fp32", "--images", "8",
                       "--size", "32", "--batch", "4", "--workers", "0", "--bare-steps", "1", "--rounds", "2",
                       "--recall", "--database", "1000", "--queries", "10", "--sfxl-fraction", "0.001")
    (extraction,) = _named(records, "extraction")
    assert extraction["images"] == 8 and extraction["images_per_s"] > 0 and len(extraction["ratios"]) == 2
    (recall,) = _named(records, "recall")
    assert recall["checkpoint"] == "untrained" and 0 <= recall["R@1"] <= recall["R@5"] <= recall["R@20"] <= 100
    searches = _named(records, "search")
    assert [(r["search"], r["database"], r["queries"]) for r in searches] == [
        (name, size, 10) for name in ("library_knn", "index_flat_l2", "faiss_knn") for size in (1000, 2800)]
    assert all(r["sfxl_database"] == 2_800_000 for r in searches[1::2])
    assert _named(records, "evaluation_memory")[0]["peak_rss_mib"] > 0


def test_small_scripts(run_main: Callable[..., list[dict[str, Any]]]) -> None:
    ceilings = _named(run_main("matmul_ceiling", "--sizes", "32,64", "--seconds", "0.01"), "matmul_ceiling")
    assert ceilings[0]["precision"] == "fp32" and all(r["gflops"] >= r["gflops_median"] >= 0 for r in ceilings)
    assert all(r["kernel"] in ("mm", "conv1x1") for r in ceilings)
    (step,) = _named(run_main("optimizer_step", "--backbones", "resnet18", "--optimizers", "adamw", "--repeats", "1"),
                     "optimizer_step")
    assert step["parameters_m"] == pytest.approx(10.76, abs=0.01) and step["fused_ms"] > 0 and step["default_ms"] > 0
    (augment,) = _named(run_main("augment_throughput", "--batch", "2", "--repeats", "1", "--input-sizes", "48",
                                 "--output-size", "32"), "augment_throughput")
    assert (augment["batch"], augment["input_size"], augment["output_size"]) == (2, 48, 32)
    assert augment["batched_images_per_s"] > 0 and augment["per_image_cpu_images_per_s"] > 0


def test_run_all_targets(load: Callable[[str], ModuleType]) -> None:
    model = {"benchmark": "model_throughput", "backbone": "resnet18", "size": 224}
    records = [
        {"benchmark": "train_end_to_end", "precision": "bf16", "images_per_s": 90.0, "bare_images_per_s": 100.0,
         "ratio_to_bare": 0.9, "wait_share": 0.2, "workers": 2, "backbone": "resnet18", "size": 224},
        {"benchmark": "data_pipeline", "stage": "pipeline", "decoder": "torchvision", "workers": 2,
         "images_per_s": 170.0},
        {"benchmark": "train_end_to_end", "precision": "fp32", "images_per_s": 40.0, "bare_images_per_s": 43.0,
         "ratio_to_bare": 0.93, "wait_share": 0.01, "workers": 2, "backbone": "resnet18", "size": 224,
         "compiled": True},
        {"benchmark": "extraction", "precision": "fp32", "images_per_s": 60.0, "bare_images_per_s": 63.2,
         "ratio_to_bare": 0.95, "workers": 0, "backbone": "resnet18", "size": 224},
        {**model, "mode": "train", "variant": "channels_last_bf16", "images_per_s": 95.0},
        {**model, "mode": "train", "variant": "channels_last_bf16_compile", "images_per_s": 120.0},
        {**model, "mode": "train", "variant": "channels_last_compile", "images_per_s": 50.0},
        {**model, "mode": "infer", "variant": "channels_last", "images_per_s": 64.0},
        {**model, "mode": "infer", "variant": "channels_last_bf16", "images_per_s": 200.0},
        {**model, "size": 512, "mode": "infer", "variant": "channels_last", "images_per_s": 6.0},
    ]
    rows = {target: (measured, ok) for target, measured, ok in load("run_all").targets(records)}
    assert {target: ok for target, (_, ok) in rows.items()} == {
        "data pipeline >= 2x training consumption": False,  # 170 < 2 x 90
        "training waits for data <= 10% (bf16)": False,
        "end-to-end training >= 90% of the bare step (bf16)": True,
        "training waits for data <= 10% (fp32, compiled)": True,
        "end-to-end training >= 90% of the bare step (fp32, compiled)": True,
        "descriptor extraction >= 90% of bare inference (fp32, 0 workers)": True,
        "end-to-end training (bf16) >= 90% of the fastest bare bf16 variant": False,  # 90 / 120
        "end-to-end training (fp32) >= 90% of the fastest bare fp32 variant": False,  # 40 / 50
        # 60 / 64: the 512 px record and the bf16 variant (another precision) are not compared
        "end-to-end inference (fp32) >= 90% of the fastest bare fp32 variant": True,
    }
    assert rows["end-to-end training (bf16) >= 90% of the fastest bare bf16 variant"][0] == (
        "90.0 img/s (2 workers) vs 120.0 (channels_last_bf16_compile): 75.0%")
    assert rows["end-to-end training (fp32) >= 90% of the fastest bare fp32 variant"][0] == (
        "40.0 img/s (2 workers, compiled) vs 50.0 (channels_last_compile): 80.0%")


def test_zoo_throughput_small(run_main: Callable[..., list[dict[str, Any]]]) -> None:
    rows = _named(run_main("zoo_throughput", "--small"), "model_throughput")
    assert [(r["backbone"], r["mode"]) for r in rows] == [("dinov2_vits14", "train"), ("dinov2_vits14", "infer")]
    assert all(r["size"] == 32 and r["batch"] == 2 and r["images_per_s"] > 0 for r in rows)


def test_time_to_recall_stops_at_the_first_validation_reaching_the_r1(load: Callable[[str], ModuleType]) -> None:
    ttr = load("time_to_recall")
    validations = ttr.Validations(start=0.0, r1=50.0, times=[10.0, 20.0, 30.0], recalls=[12.5, 50.0, 61.0])
    assert validations.reached == 1  # 50.0 reaches 50
    assert ttr.Validations(start=0.0, r1=50.0, times=[10.0], recalls=[49.9]).reached is None
    assert ttr.Validations(start=0.0, r1=0.0).reached is None  # no validation yet


def test_time_to_recall_script(run_main: Callable[..., list[dict[str, Any]]], tiny_city: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from cosplace_xs.device import choose_precision

    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    records = _named(run_main("time_to_recall", "--small", "--dataset", str(tiny_city), "--settings", "workers0",
                              "--epochs", "2", "--iterations", "2", "--size", "32", "--r1", "0", "--bare-steps", "1"),
                     "time_to_recall")
    (record,) = records
    assert (record["setting"], record["workers"], record["size"], record["iterations"], record["compiled"]) == (
        "workers0", 0, 32, 2, False)
    assert record["precision"] == choose_precision("auto", CPU)[0]  # what `auto` picks on this CPU
    # R@1 >= 0 is reached by the first validation, and the run stops there
    assert (record["reached"], record["epochs_to_r1"], len(record["val_r1"])) == (True, 1, 1)
    assert 0 < record["train_s"] < record["time_to_r1_s"] <= record["wall_s"]
    assert record["ratio_to_bare"] == pytest.approx(record["images_per_s"] / record["bare_images_per_s"], rel=0.01)


def test_startup_phases_and_import_times(load: Callable[[str], ModuleType], tiny_city: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    startup = load("startup")
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "run").mkdir()
    train = startup.child_train(tiny_city, tmp_path / "run", size=32, batch=4, workers=0)
    assert list(train["phases"]) == ["import", "dataset listing", "split", "model", "val set and positives",
                                     "checking every image", "set-up (the rest)", "workers and first batch"]
    assert all(seconds >= 0 for seconds in train["phases"].values())
    assert not (tmp_path / "run" / "last.pt").exists()  # stopped at the first batch, before any step
    extract = startup.child_extract(tiny_city, size=32, batch=4, workers=0)
    assert list(extract["phases"]) == ["import", "test set and positives", "model", "workers and first batch"]
    sample = ("import time: self [us] | cumulative | imported package\n"
              "import time:       100 |    2500000 | torch\n"
              "import time:        50 |      30000 |   torch.nn\n"
              "import time:        10 |    1200000 |     sklearn\n"
              "import time:        10 |         90 | sklearn\n")
    assert startup.parse_import_times(sample) == {"torch": 2.5, "sklearn": 1.2}
    # training draws its curves only at the end of a run: matplotlib is not among what it imports to start
    seconds = startup.import_times("cosplace_xs.training.loop")
    assert "torch" in seconds and "matplotlib" not in seconds


def test_retrieval_scale_sweeps_every_index_on_views_of_known_places(load: Callable[[str], ModuleType],
                                                                     run_main: Callable[..., list[dict[str, Any]]],
                                                                     tmp_path: Path) -> None:
    scale = load("retrieval_scale")
    # views=2: rows 0, 1 show place 0, rows 2, 3 place 1...; query 0 (place 0) is right at rank 2, query 1 at 3
    predictions = np.array([[3, 0, -1], [-1, 5, 2]])
    assert scale.place_recalls(predictions, np.array([0, 1]), 2, (1, 2, 3)) == {"R@1": 0.0, "R@2": 50.0,
                                                                               "R@3": 100.0}
    database, queries, places = scale.synthetic_database(3, 4, 8, 5, noise=0.5)
    assert database.shape == (12, 8) and queries.shape == (5, 8) and places.shape == (5,)
    np.testing.assert_allclose(np.linalg.norm(database, axis=1), 1.0, rtol=1e-5)

    records = run_main("retrieval_scale", "--small", "--plot", str(tmp_path / "curve.png"))
    rows = _named(records, "retrieval_scale")
    assert [(row["method"], row["value"]) for row in rows] == [
        ("exact", 0), ("ivf", 1), ("ivf", 4), ("ivf", 64), ("ivfpq", 1), ("ivfpq", 4), ("ivfpq", 64),
        ("hnsw", 16), ("hnsw", 64)]
    assert all((row["database"], row["dim"], row["queries"]) == (2000, 32, 100) for row in rows)
    exact, every_cell = rows[0], rows[3]  # nprobe 64 visits all 32 cells: the exact search
    assert (every_cell["R@1"], every_cell["R@10"]) == (exact["R@1"], exact["R@10"])
    assert (tmp_path / "curve.png").stat().st_size > 0 and _named(records, "retrieval_scale_total")


def test_aggregator_throughput_small(run_main: Callable[..., list[dict[str, Any]]]) -> None:
    rows = _named(run_main("aggregator_throughput", "--small"), "aggregator_throughput")
    assert [(r["backbone"], r["aggregation"], r["size"], r["mode"]) for r in rows] == [
        (backbone, aggregation, 126 if aggregation == "salad" else 32, mode)
        for backbone, aggregation in (("resnet18", "gem"), ("resnet18", "mixvpr"), ("resnet18", "netvlad"),
                                      ("dinov2_vits14", "salad"))
        for mode in ("train", "infer")]
    assert all(r["batch"] == 2 and r["images_per_s"] > 0 for r in rows)
