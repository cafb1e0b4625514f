"""Run directories: checkpoints carry digests, a damaged newest checkpoint falls back to the previous one, one
writer at a time."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.config import PretrainConfig, save_config
from sugar.errors import ConfigError, SugarError
from sugar.runs import LOCK_OWNER, RunDir
from sugar.training.loop import check_resume


def _save(run: RunDir, counter: int) -> None:
    run.save_checkpoint(counter, {"w": torch.full((3,), float(counter))}, {"step": counter})


def test_checkpoint_round_trip_keeps_the_previous_pair(tmp_path: Path) -> None:
    run = RunDir(tmp_path).create()
    for counter in (1, 2, 3):
        _save(run, counter)
    names = sorted(p.name for p in run.checkpoints.glob("ckpt-*"))
    assert names == ["ckpt-0000002.safetensors", "ckpt-0000002.state.pt", "ckpt-0000003.safetensors",
                     "ckpt-0000003.state.pt"]
    pointer = json.loads((run.checkpoints / "last.json").read_text())
    assert pointer["previous"]["stem"] == "ckpt-0000002" and set(pointer["sha256"]) == {"weights", "state"}
    counter, weights, state = run.load_checkpoint()
    assert counter == 3 and weights["w"].tolist() == [3.0] * 3 and state["step"] == 3


@pytest.mark.parametrize("damage", ["truncate", "empty", "delete"])
def test_damaged_checkpoint_falls_back_with_one_line(tmp_path: Path, damage: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    run = RunDir(tmp_path).create()
    _save(run, 1)
    _save(run, 2)
    newest = run.checkpoints / "ckpt-0000002.safetensors"
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[:20])
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        newest.unlink()
    with caplog.at_level(logging.WARNING):
        counter, weights, _ = run.load_checkpoint()
    assert counter == 1 and weights["w"].tolist() == [1.0] * 3
    assert len(caplog.records) == 1 and "ckpt-0000001" in caplog.records[0].getMessage()


def test_no_usable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path).create()
    _save(run, 1)
    (run.checkpoints / "ckpt-0000001.state.pt").write_bytes(b"")
    with pytest.raises(SugarError, match="no earlier one"):
        run.load_checkpoint()


def test_damaged_best_weights_are_refused(tmp_path: Path) -> None:
    run = RunDir(tmp_path).create()
    run.save_best({"w": torch.ones(2)}, {"epoch": 1, "val_top1": 0.5})
    weights, info = run.load_best()
    assert info == {"epoch": 1, "val_top1": 0.5} and weights["w"].tolist() == [1.0, 1.0]
    path = run.checkpoints / "best.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(SugarError, match="damaged"):
        run.load_best()


def test_resume_rule_is_one_for_both_stages(tmp_path: Path) -> None:
    """A changed setting is refused once the run has a checkpoint; a longer `epochs` is allowed; a failed start
    (config.yaml written, no checkpoint) never blocks the corrected retry."""
    run = RunDir(tmp_path).create()
    cfg = PretrainConfig()
    save_config(cfg, run.config_path)
    check_resume(run, PretrainConfig(lr=1.0))  # no checkpoint yet: a failed start
    _save(run, 1)
    check_resume(run, PretrainConfig(epochs=500))
    with pytest.raises(ConfigError, match=r"different settings \(lr\)"):
        check_resume(run, PretrainConfig(lr=1.0))


def test_a_run_written_before_digests_and_step_names_still_resumes(tmp_path: Path) -> None:
    """The layout of earlier releases: epoch-NNNN pairs and a pointer without digests."""
    from safetensors.torch import save_file

    run = RunDir(tmp_path).create()
    save_file({"w": torch.ones(3)}, str(run.checkpoints / "epoch-0002.safetensors"))
    torch.save({"step": 8, "epoch": 2}, run.checkpoints / "epoch-0002.state.pt")
    (run.checkpoints / "last.json").write_text(json.dumps({"epoch": 2, "stem": "epoch-0002"}))
    epoch, weights, state = run.load_checkpoint()
    assert epoch == 2 and weights["w"].tolist() == [1.0] * 3 and state["step"] == 8
    run.save_checkpoint(12, {"w": torch.zeros(3)}, {"step": 12}, epoch=3)
    run.save_checkpoint(16, {"w": torch.zeros(3)}, {"step": 16}, epoch=4)
    assert not list(run.checkpoints.glob("epoch-*"))  # the old pair is cleaned up like any other
    assert run.load_checkpoint()[0] == 4


def test_a_run_directory_takes_one_writer_at_a_time(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with run.exclusive():
        assert (run.path / LOCK_OWNER).read_text().strip() == str(os.getpid())
        busy = f"another process \\(pid {os.getpid()}\\) is writing this run"
        with pytest.raises(SugarError, match=busy), RunDir(run.path).exclusive():
            pass
    assert not (run.path / LOCK_OWNER).exists()
    with run.exclusive():  # released: the next job takes it
        pass
    with pytest.raises(SugarError, match="no such run directory"), RunDir(tmp_path / "typo").exclusive(create=False):
        pass
    assert not (tmp_path / "typo").exists()


def test_training_refuses_a_run_another_process_writes_and_resumes_once_it_is_killed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    hold = ("import sys, time; from sugar.runs import RunDir; held = RunDir(sys.argv[1]).exclusive(); "
            "held.__enter__(); print('held', flush=True); time.sleep(120)")  # a reference: not collected, not let go
    src = Path(__file__).resolve().parents[1] / "src"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(src)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        args = ["pretrain", "--config", "configs/pretrain/synthetic.yaml", "--run-dir", str(run), "--no-progress",
                "--set", "epochs=1", "--set", "max_train_samples=16", "--set", "data.frames=16", "--set", "loss=ce"]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code != 0
        assert f"{run}: another process (pid {holder.pid}) is writing this run" in str(refused.exception)
        assert not (run / "checkpoints").exists()  # nothing of the other job's folder was touched
    finally:
        holder.kill()  # as kill -9 would: the lock goes with the process, its pid file stays behind
        holder.wait()
    assert (run / LOCK_OWNER).is_file()
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert (run / "report.json").is_file() and not (run / LOCK_OWNER).exists()
