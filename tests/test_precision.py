"""`--precision auto`: native bf16 detected from the CPU, the choice logged with its reason, and recorded by a run
so that its resume trains in the same precision on any machine."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from helpers import run_command

from cosplace_xs import checkpoints as ckpt
from cosplace_xs import device
from cosplace_xs.training import loop, run_files

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
NO_BF16 = ("fp32", "this CPU has no native bf16 (AVX512-BF16/AMX); --precision bf16 would be emulated and slower")


def _cpu(monkeypatch: pytest.MonkeyPatch, amx: bool = False, avx512_bf16: bool = False,
         flags: tuple[str, ...] = ()) -> None:
    """Pretend torch's CPU probes and /proc/cpuinfo's flags say so."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(device, "cpu_flags", lambda: set(flags))


def test_cpu_flags_are_read_from_the_first_cpu(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert device.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert device.cpu_flags(tmp_path / "absent") == set()


@pytest.mark.parametrize(("probes", "flags", "expected"), [
    ({"amx": True, "avx512_bf16": True}, (), "AMX-BF16"),
    ({"avx512_bf16": True}, (), "AVX512-BF16"),
    ({}, ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"), "AMX-BF16"),  # torch's probe says nothing
    ({}, ("avx2", "avx512f", "avx512_bf16"), "AVX512-BF16"),
    ({}, ("avx2", "avx512f"), None),  # AVX-512 without its bf16 extension: emulated
    ({}, (), None),
])
def test_native_bf16_is_found_by_torch_or_in_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, probes: dict[str, bool],
                                                           flags: tuple[str, ...], expected: str | None) -> None:
    _cpu(monkeypatch, flags=flags, **probes)
    assert device.native_bf16() == expected


@pytest.mark.parametrize(("precision", "where", "native", "expected"), [
    ("auto", CPU, True, ("bf16", "this CPU has AMX-BF16")),
    ("auto", CPU, False, NO_BF16),
    ("auto", CUDA, True, ("fp16", "fp16 mixed precision on CUDA")),
    ("fp32", CPU, True, ("fp32", "--precision fp32 given")),
    ("bf16", CPU, False, ("bf16", "--precision bf16 given")),
])
def test_auto_chooses_bf16_only_where_the_cpu_runs_it_natively(
        monkeypatch: pytest.MonkeyPatch, precision: str, where: torch.device, native: bool,
        expected: tuple[str, str]) -> None:
    _cpu(monkeypatch, amx=native)
    assert device.choose_precision(precision, where) == expected


def test_the_choice_of_auto_is_logged_with_its_reason(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _cpu(monkeypatch)
    with caplog.at_level(logging.INFO, logger="cosplace_xs.device"):
        assert device.resolve_precision("auto", CPU) == "fp32"
        assert device.resolve_precision("bf16", CPU) == "bf16"  # what the user gave needs no reason
    assert caplog.messages == [f"precision {NO_BF16[0]}: {NO_BF16[1]}"]


@contextlib.contextmanager
def _precisions_trained(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The precision of every training step of the runs inside."""
    used: list[str] = []
    real = loop.autocast

    def recording(where: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
        used.append(precision)
        return real(where, precision)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "autocast", recording)
        yield used


def _record_precision(run_dir: Path, precision: str) -> None:
    """Write `precision` into the run's config.yaml and last.pt, as a version that did not resolve `auto` did."""
    config = yaml.safe_load((run_dir / run_files.CONFIG).read_text())
    config["train"]["precision"] = precision
    (run_dir / run_files.CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    state["config"]["train"]["precision"] = precision
    ckpt.write_checkpoint(state, run_dir / ckpt.LAST)


def test_a_run_records_the_precision_auto_chose_and_resumes_in_it(
        tiny_train_args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cosplace_xs.cli import train

    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    flags = ["--iterations-per-epoch", "1", "--checkpoint-every", "0", "--no-validate"]
    _cpu(monkeypatch, amx=True)
    with _precisions_trained(monkeypatch) as used:
        assert run_command(train, [*tiny_train_args, *flags, "--epochs", "1", "--run-dir", str(run_dir)]) == 0
    assert used == ["bf16"]
    assert "precision bf16: this CPU has AMX-BF16" in (run_dir / run_files.LOG).read_text()
    assert yaml.safe_load((run_dir / run_files.CONFIG).read_text())["train"]["precision"] == "bf16"
    assert ckpt.read_checkpoint(run_dir / ckpt.LAST)["config"]["train"]["precision"] == "bf16"

    _cpu(monkeypatch)  # another machine, without native bf16: the run goes on as it started
    with _precisions_trained(monkeypatch) as used:
        assert run_command(train, ["train", "--resume", str(run_dir), "--epochs", "2", "--no-progress"]) == 0
    assert used == ["bf16"]
    (entry,) = yaml.safe_load((run_dir / run_files.HISTORY).read_text())
    assert list(entry["changed"]) == ["train.epochs"]  # the precision is not a change

    _record_precision(run_dir, "auto")  # a run of a version that recorded `auto`, which meant fp32 on the CPU
    _cpu(monkeypatch, amx=True)
    with _precisions_trained(monkeypatch) as used:
        assert run_command(train, ["train", "--resume", str(run_dir), "--epochs", "3", "--no-progress"]) == 0
    assert used == ["fp32"]
    assert yaml.safe_load((run_dir / run_files.CONFIG).read_text())["train"]["precision"] == "fp32"
