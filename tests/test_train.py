import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import data_load as dl
import detect
import train
from conftest import DATA, needs_data
from models import WeightsError, load_checkpoint

pytestmark = needs_data
ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--model", "HeatmapNet", "--input-size", "32", "--subset", "16", "--batch-size", "8", "--workers", "0",
         "--data", str(DATA), "--photos-weight", "0"]


def run(tmp_path, *extra, name="w.pt"):
    args = train.parse_args(QUICK + ["--out", str(tmp_path / name), *extra])
    return train.train(args)


def test_photos_join_training_from_their_train_split_only(tmp_path):
    from test_data import photo_folder
    names = [f"{1000 + i}_1" for i in range(60)]
    photo_folder(tmp_path, names)
    split = {s: len(dl.read_photos(tmp_path, s)[0]) for s in ("train", "validation", "test")}
    assert min(split.values()) > 0
    model = train.MODELS["HeatmapNet"](input_size=32)
    train_set, vals = train.datasets(model, DATA, tmp_path, photos_weight=2, subset=100)
    n_course = len(train.datasets(model, DATA, None, subset=100)[0])
    assert len(train_set) == n_course + 2 * split["train"] and len(vals["300w"]) == split["validation"]
    assert train_set[len(train_set) - 1]["image"].shape == (1, 32, 32)
    # --photos naming no folder is an error, not a quiet fallback to the course frames.
    args = train.parse_args(QUICK[:-2] + ["--photos", str(tmp_path / "none"), "--out", str(tmp_path / "w.pt")])
    with pytest.raises(dl.DataError, match="none: no such folder"):
        train.train(args)


@contextlib.contextmanager
def killed_after_epoch_1(monkeypatch):
    def killed(*args):  # the run dies right after epoch 1's checkpoint
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(train, "plot_losses", killed)
        yield


def test_resume_repeats_an_uninterrupted_run(tmp_path, monkeypatch):
    run(tmp_path, "--epochs", "3", name="straight.pt")

    with killed_after_epoch_1(monkeypatch):
        run(tmp_path, "--epochs", "3", name="resumed.pt")
    run(tmp_path, "--epochs", "3", "--resume", name="resumed.pt")
    a = load_checkpoint(tmp_path / "straight.pt")
    b = load_checkpoint(tmp_path / "resumed.pt")
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert (tmp_path / "straight_loss.png").stat().st_size > 0


def test_a_finished_run_adds_the_int8_model_that_detect_runs(tmp_path):
    run(tmp_path, "--epochs", "1")
    assert detect.FaceKeypointDetector(tmp_path / "w.pt").runtime == "int8"
    # the per-epoch checkpoint has none: asked for, it is a clear error
    with pytest.raises(WeightsError, match="w.ckpt: holds no int8 model"):
        detect.FaceKeypointDetector(tmp_path / "w.ckpt", runtime="int8")
    assert detect.FaceKeypointDetector(tmp_path / "w.ckpt").runtime == "onnx"


def test_existing_weights_are_not_overwritten(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"mine")
    with pytest.raises(train.TrainError, match="w.pt: exists; use --resume"):
        run(tmp_path, "--epochs", "1")
    assert (tmp_path / "w.pt").read_bytes() == b"mine"


def test_nan_loss_stops_before_writing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(train.torch.nn, "SmoothL1Loss", lambda beta: (lambda out, y: (out * float("nan")).mean()))
    with pytest.raises(train.TrainError, match="loss is nan; stopped before writing NaN weights"):
        run(tmp_path, "--epochs", "1")
    assert not (tmp_path / "w.pt").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    with killed_after_epoch_1(monkeypatch):
        run(tmp_path, "--epochs", "2")
    before = (tmp_path / "w.ckpt").read_bytes()

    def full(obj, path):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train.torch, "save", full)
    with pytest.raises(train.TrainError, match="w.pt: cannot write \\(No space left on device\\); the previous file"):
        run(tmp_path, "--resume")
    assert (tmp_path / "w.ckpt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.ckpt", "w.pt"]


def test_an_input_size_heatmapnet_cannot_halve_four_times_is_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--input-size", "100"])
    assert "--input-size must be a positive multiple of 16" in capsys.readouterr().err


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    r = subprocess.run([sys.executable, "train.py", *QUICK, "--epochs", "1", "--out", str(tmp_path / "afile" / "w.pt")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'afile'}")
    assert "Traceback" not in r.stderr


def interrupt(out, epochs, delay, sig):
    """Start train.py, send sig delay seconds after its first checkpoint: (exit status, stderr)."""
    cmd = [sys.executable, "train.py", *QUICK, "--epochs", str(epochs), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while not out.with_suffix(".ckpt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
    time.sleep(delay)
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    return p.returncode, err


def test_a_signal_at_any_moment_keeps_the_last_checkpoint_whole(tmp_path):
    # An epoch here takes a fraction of a second (steps, validation, two saves, the loss plot): the delays land the
    # signal in all of its parts, Ctrl-C and SIGTERM alike.
    delays = [0.0, 0.01, 0.02, 0.04, 0.06, 0.09, 0.13, 0.17, 0.23, 0.3, 0.4, 0.55]
    for i, delay in enumerate(delays):
        out = tmp_path / f"w{i}.pt"
        code, err = interrupt(out, 200, delay, signal.SIGTERM if i % 2 else signal.SIGINT)
        assert code == 1 and "Traceback" not in err, (delay, err[-1500:])
        assert err.strip().splitlines()[-1] == f"interrupted: {out.with_suffix('.ckpt')} holds the last complete " \
                                               "epoch; continue with --resume", (delay, err[-500:])
        state = load_checkpoint(out.with_suffix(".ckpt"))
        assert 1 <= state["epoch"] < 200 and [h["epoch"] for h in state["history"]] == list(range(1, state["epoch"] + 1))
        assert load_checkpoint(out)["history"] == state["history"]
        assert not list(tmp_path.glob(".*.tmp*"))


def test_resume_goes_on_with_the_runs_own_settings(tmp_path):
    code, err = interrupt(tmp_path / "w.pt", 6, 0.0, signal.SIGTERM)
    assert code == 1, err
    done = load_checkpoint(tmp_path / "w.ckpt")["epoch"]
    # Settings that contradict the run's are refused; the run's own are taken without being repeated.
    with pytest.raises(train.TrainError, match="started with epochs 6, not 7; --resume goes on with the run's own"):
        train.train(train.parse_args(QUICK + ["--out", str(tmp_path / "w.pt"), "--resume", "--epochs", "7"]))
    args = train.parse_args(["--data", str(DATA), "--workers", "0", "--out", str(tmp_path / "w.pt"), "--resume"])
    _, history = train.train(args)
    assert (args.epochs, args.input_size, args.subset) == (6, 32, 16)
    assert [h["epoch"] for h in history] == list(range(1, 7)) and done < 6
    with pytest.raises(train.TrainError, match="the run is finished \\(6 of 6 epochs\\); nothing to resume"):
        train.train(train.parse_args(["--out", str(tmp_path / "w.pt"), "--resume", "--workers", "0"]))


def test_zero_epochs_is_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--epochs", "0"])
    assert "--epochs 0: nothing to train; give at least 1" in capsys.readouterr().err


WRAPPER = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {root!r})
import data_load as dl
import detect
import train
net, _ = train.train(train.parse_args(sys.argv[1:]))
torch.save(net.state_dict(), {out!r} + f"/rank{{__import__('os').environ['RANK']}}.pt")
"""


def test_torchrun_two_processes_end_with_equal_weights(tmp_path):
    script = tmp_path / "run_rank.py"
    script.write_text(WRAPPER.format(root=str(ROOT), out=str(tmp_path)))
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(script), *QUICK,
                        "--epochs", "1", "--max-steps", "2", "--out", str(tmp_path / "w.pt")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    init = train.MODELS["HeatmapNet"](input_size=32).state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a)  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k
