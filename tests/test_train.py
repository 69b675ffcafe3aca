import contextlib
import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import crops
import data_load as dl
import detect
import train
from conftest import DATA, needs_data, needs_photos
from models import WeightsError, load_checkpoint

pytestmark = needs_data
ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--model", "HeatmapNet", "--input-size", "32", "--subset", "16", "--batch-size", "8", "--workers", "0",
         "--data", str(DATA), "--turned-weight", "0", "--photos-weight", "0"]


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
    train_set, vals, sources = train.datasets(model, DATA, tmp_path, photos_weight=2, subset=100)
    n_course = len(train.datasets(model, DATA, None, subset=100)[0])
    assert len(train_set) == n_course + 2 * split["train"] and len(vals["300w"]) == split["validation"]
    assert train_set[len(train_set) - 1]["image"].shape == (1, 32, 32)
    # the photos' labelling is the one the network learns (source 0); the course's is learned beside it
    assert (train_set[0]["source"], train_set[len(train_set) - 1]["source"]) == (1, 0)
    assert (vals["course"][0]["source"], vals["300w"][0]["source"]) == (1, 0)
    # --photos naming no folder is an error, not a quiet fallback to the course frames.
    args = train.parse_args(QUICK[:-2] + ["--photos", str(tmp_path / "none"), "--out", str(tmp_path / "w.pt")])
    with pytest.raises(dl.DataError, match="none: no such folder"):
        train.train(args)


def turned_folder(tmp_path, n=60):
    """A folder of faces at every pose: the photo folder with a yaw.json, every other face turned past 45 degrees."""
    import json
    from test_data import photo_folder
    names = [f"image{i:05d}" for i in range(n)]
    photo_folder(tmp_path, names)
    (tmp_path / "yaw.json").write_text(json.dumps({name: 70.0 * (i % 2) - 10 for i, name in enumerate(names)}))
    return tmp_path


def test_turned_faces_train_as_a_source_of_their_own_with_the_jaw_left_out_past_45_degrees(tmp_path):
    folder = turned_folder(tmp_path)
    model = train.MODELS["HeatmapNet"](input_size=32)
    base, _, sources = train.datasets(model, DATA, None, subset=100)
    train_set, vals, with_turned = train.datasets(model, DATA, None, subset=100, turned=folder, turned_weight=2)
    n = len(dl.read_photos(folder, "train")[0])
    assert (sources, with_turned, len(train_set), list(vals)) == (1, 2, len(base) + 2 * n, ["course"])
    yaws = dl.read_yaws(folder, dl.read_photos(folder, "train")[0])
    for i, yaw in enumerate(yaws[:6]):  # the turned faces' jaw (points 0-16) is out, mirrored or not
        w = train_set[len(base) + i]["weights"]
        assert train_set[len(base) + i]["source"] == 1
        assert w[:17].eq(0 if abs(yaw) > 45 else 1).all() and w[17:].eq(1).all()
    (folder / "yaw.json").unlink()
    with pytest.raises(dl.DataError, match="no yaw.json"):
        train.datasets(model, DATA, None, subset=100, turned=folder, turned_weight=1)


def test_a_point_weighted_out_does_not_move_the_wing_loss():
    loss = train.WingLoss(128)
    pred, target = torch.zeros(2, 136), torch.full((2, 136), 0.1)
    weights = torch.ones(2, 68)
    weights[:, :17] = 0
    far = pred.clone()
    far[:, :34] = 5.0  # the jaw's x and y, far off
    assert loss(far, target, weights) == loss(pred, target, weights)
    assert torch.isclose(loss(pred, target, weights), loss(pred, target))  # the same errors everywhere


def test_a_run_with_turned_faces_keeps_their_labelling_beside_the_course(tmp_path):
    (tmp_path / "turned").mkdir()
    folder = turned_folder(tmp_path / "turned")
    run(tmp_path, "--epochs", "1", "--max-steps", "2", "--turned", str(folder), "--turned-weight", "1")
    state = load_checkpoint(tmp_path / "w.ckpt")
    assert state["settings"]["turned_weight"] == 1 and set(state["labellings"]) == {"course", "turned"}


def test_without_the_turned_faces_folder_the_recipe_says_so_and_trains_without_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FKP_AFLW_DIR", str(tmp_path / "none"))
    i = QUICK.index("--turned-weight")
    recipe = QUICK[:i] + QUICK[i + 2:]  # the recipe's --turned-weight, 1
    train.train(train.parse_args(recipe + ["--epochs", "1", "--max-steps", "2", "--out", str(tmp_path / "w.pt")]))
    assert "note: no faces at every pose at" in capsys.readouterr().out
    assert set(load_checkpoint(tmp_path / "w.ckpt")["labellings"]) == {"course"}
    with pytest.raises(dl.DataError, match="none: no such folder"):  # named, it must be there
        train.train(train.parse_args(recipe + ["--turned", str(tmp_path / "none"), "--out", str(tmp_path / "x.pt")]))


def test_a_sources_labelling_offsets_mirror_with_the_face():
    conventions = train.Conventions(2)
    conventions.offsets.data.normal_(0, 0.05)
    torch.manual_seed(0)
    t = torch.rand(3, 68, 2) * 90
    mirrored = torch.from_numpy(crops.mirror_keypoints(t.numpy(), 100))

    def offsets(points, source, flag):
        return conventions(torch.tensor([source] * 3), torch.tensor([flag] * 3), points.flatten(1)).view(-1, 68, 2)

    d = offsets(t, 1, False)
    # labels moved by the offsets, then mirrored = the mirrored labels moved by the offsets of a mirrored sample
    mirror_of_moved = torch.from_numpy(crops.mirror_keypoints((t + d).detach().numpy(), 100))
    assert torch.allclose(mirror_of_moved, mirrored + offsets(mirrored, 1, True), atol=1e-4)
    assert d.abs().max() > 0.5 and offsets(t, 0, False).abs().max() == 0  # source 0: the network's own labelling
    # what detect.py applies per labelling: the measured offset along the eye line for the network's, these for the course
    first = torch.tensor([[0.01, 0.0]] * 68)
    both = train.labellings(0.01, conventions, ["300w", "course"])
    assert torch.equal(both["300w"], first) and torch.equal(both["course"], conventions.offsets[0])
    assert torch.equal(train.labellings(0.01, None, ["course"])["course"], first)  # course frames alone: theirs


@contextlib.contextmanager
def killed_after_epoch_1(monkeypatch):
    def killed(*args):  # the run dies right after epoch 1's checkpoint
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(train, "plot_losses", killed)
        yield


@pytest.mark.parametrize("photos", [[], pytest.param(["--photos-weight", "1"], marks=needs_photos)],
                         ids=["course", "with-photos"])
def test_resume_repeats_an_uninterrupted_run(tmp_path, monkeypatch, photos):
    run(tmp_path, "--epochs", "3", *photos, name="straight.pt")

    with killed_after_epoch_1(monkeypatch):
        run(tmp_path, "--epochs", "3", *photos, name="resumed.pt")
    run(tmp_path, "--epochs", "3", "--resume", name="resumed.pt")
    a = load_checkpoint(tmp_path / "straight.pt")
    b = load_checkpoint(tmp_path / "resumed.pt")
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert list(a["labellings"]) == (["300w", "course"] if photos else ["course"])
    for k, v in a["labellings"].items():  # the course's, learnt beside the network, resumed too
        assert torch.equal(v, b["labellings"][k]), k
    assert (tmp_path / "straight_loss.png").stat().st_size > 0
    # beside the last epoch, the best one on validation
    nme = [h["val_nme"] for h in a["history"]]
    assert len(load_checkpoint(tmp_path / "straight_best.pt")["history"]) == nme.index(min(nme)) + 1


def test_a_finished_run_adds_the_int8_model_that_detect_runs(tmp_path):
    run(tmp_path, "--epochs", "1", "--margin", "0.2")
    fkd = detect.FaceKeypointDetector(tmp_path / "w.pt")
    assert fkd.runtime == "int8" and fkd.model.margin == 0.2  # detect.py crops as the model was trained
    # the per-epoch checkpoint has none: asked for, it is a clear error
    with pytest.raises(WeightsError, match="w.ckpt: holds no int8 model"):
        detect.FaceKeypointDetector(tmp_path / "w.ckpt", runtime="int8")
    assert detect.FaceKeypointDetector(tmp_path / "w.ckpt").runtime == "onnx"


def test_bf16_autocast_trains_and_is_on_by_default_only_where_native(tmp_path):
    _, history = run(tmp_path, "--epochs", "1", "--bf16", "on")
    assert history[0]["val_loss"] < 1e3
    assert train.use_bf16("auto", torch.device("cuda")) and not train.use_bf16("off", torch.device("cuda"))
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert train.use_bf16("auto", torch.device("cpu")) == native


def test_existing_weights_are_not_overwritten(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"mine")
    with pytest.raises(train.TrainError, match="w.pt: exists; use --resume"):
        run(tmp_path, "--epochs", "1")
    assert (tmp_path / "w.pt").read_bytes() == b"mine"


def test_nan_loss_stops_before_writing_weights(tmp_path, monkeypatch):
    def nan_loss(out, y, weights=None):
        return (out * float("nan")).mean()

    monkeypatch.setattr(train.torch.nn, "SmoothL1Loss", lambda beta: nan_loss)
    monkeypatch.setattr(train, "WingLoss", lambda input_size: nan_loss)
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.ckpt", "w.pt", "w_best.pt"]


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


def test_wing_loss_is_log_shaped_below_w_and_l1_beyond():
    loss = train.WingLoss(input_size=224)  # 50 input pixels a normalized unit: w = 10 px = 0.2, eps = 2 px = 0.04
    zero = torch.zeros(1)
    assert loss(zero, zero).item() == 0
    assert loss(torch.tensor([-0.04]), zero).item() == pytest.approx(0.2 * math.log(2))
    # one curve: the two pieces meet at w, and beyond it each unit of error costs one unit, as in L1
    assert loss(torch.tensor([0.2 + 1e-6]), zero).item() == pytest.approx(
        loss(torch.tensor([0.2 - 1e-6]), zero).item(), abs=1e-5)
    assert (loss(torch.tensor([1.5]), zero) - loss(torch.tensor([0.5]), zero)).item() == pytest.approx(1.0)


def test_a_run_started_before_the_loss_setting_resumes_with_smoothl1():
    args = train.parse_args(["--model", "HeatmapNet", "--occlude", "0.3"])
    assert args.loss == "wing"
    with pytest.raises(train.TrainError, match="started with occlude 0.0, not 0.3"):
        train.take_settings(args, {"settings": {"model": "HeatmapNet", "epochs": 50}}, "old.ckpt")
    args = train.parse_args(["--model", "HeatmapNet"])
    train.take_settings(args, {"settings": {"model": "HeatmapNet", "epochs": 50}}, "old.ckpt")
    assert (args.loss, args.blocks, args.occlude) == ("smoothl1", (1, 1, 1), 0.0)  # as runs then trained
    args = train.parse_args(["--model", "HeatmapNet", "--blocks", "1", "2", "2"])
    train.take_settings(args, {"settings": {"model": "HeatmapNet", "blocks": (1, 2, 2)}}, "new.ckpt")
    assert args.blocks == (1, 2, 2)


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


def test_a_teachers_target_is_its_points_averaged_with_those_on_the_mirrored_crop(tmp_path, capsys):
    teacher, _ = run(tmp_path, "--epochs", "1", name="teacher.pt")
    teacher.eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        got = dl.keypoints_to_pixels(train.mirrored_mean(teacher, x).numpy(), 32)
        p, q = (dl.keypoints_to_pixels(teacher(c).numpy(), 32) for c in (x, x.flip(-1)))
    assert abs(got - (p + crops.mirror_keypoints(q, 32)) / 2).max() < 1e-4  # as detect.py's --flip
    run(tmp_path, "--epochs", "1", "--seed", "1", "--width", "24", "--blocks", "2", "2", "3", name="other.pt")
    teachers = [str(tmp_path / "teacher.pt"), str(tmp_path / "other.pt")]  # a wider one too; their targets averaged
    run(tmp_path, "--epochs", "1", "--teacher", *teachers, name="student.pt")
    settings = load_checkpoint(tmp_path / "student.pt")["settings"]
    assert settings["teacher"] == teachers and settings["distill"] == 1.0
    with pytest.raises(train.TrainError, match="a 32 px teacher with margin 0.2; the model trained takes 48 px"):
        run(tmp_path, "--epochs", "1", "--input-size", "48", "--teacher", str(tmp_path / "teacher.pt"), name="o.pt")
    with pytest.raises(SystemExit):
        train.parse_args(["--distill", "0.5"])
    assert "--distill weighs --teacher's target" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "Net", "--teacher", teachers[0]])
    assert "--teacher is an option of HeatmapNet; Net keeps" in capsys.readouterr().err


def test_zoom_trains_behind_a_heatmapnet_resumes_and_runs_in_the_pipeline(tmp_path):
    import numpy as np
    import zoom
    run(tmp_path, "--epochs", "1", name="first.pt")
    out = tmp_path / "z.pt"
    args = ["--first", str(tmp_path / "first.pt"), "--out", str(out), "--data", str(DATA), "--subset", "8",
            "--batch-size", "4", "--workers", "0", "--patch", "8", "--width", "4", "--epochs", "2"]
    zoom.train(zoom.parse_args(args + ["--max-steps", "1"]))  # stops after epoch 1
    assert load_checkpoint(out.with_suffix(".ckpt"))["epoch"] == 1
    with pytest.raises(train.TrainError, match="z.pt: exists; use --resume"):
        zoom.train(zoom.parse_args(args))
    _, history = zoom.train(zoom.parse_args(args + ["--resume"]))
    assert [h["epoch"] for h in history] == [1, 2] and "first_nme_course" in history[0]
    with pytest.raises(train.TrainError, match=r"finished \(2 of 2 epochs\)"):
        zoom.train(zoom.parse_args(args + ["--resume"]))
    # OUT is the HeatmapNet's weights with the ZoomNet in it; the pipeline runs it on crops wide enough
    rgb = np.random.default_rng(0).integers(0, 255, (120, 120, 3), np.uint8)
    rects = [(0, 0, 100, 100)]
    plain = detect.FaceKeypointDetector(out, zoom=False, runtime="torch").keypoints_in_rects(rgb, rects)[0]
    skipped = detect.FaceKeypointDetector(out, zoom_from=4.0, runtime="torch")  # the crop: 100 < 4 x 32 pixels
    assert np.array_equal(skipped.keypoints_in_rects(rgb, rects)[0], plain)
    zoomed = detect.FaceKeypointDetector(out, zoom_from=1.0, runtime="torch")
    zoomed.zoom.head_b.data += 2.0  # 2 pixels of the zoom's 64 px crop: 100 / 32 of the image's pixels
    moved = zoomed.keypoints_in_rects(rgb, rects)[0] - plain
    # --points inner, the default: the jaw's 17 pass through (its crop is the fine crop shrunk: within a pixel)
    assert np.allclose(moved[0, 17:], 100 / 32, atol=0.3) and np.allclose(moved[0, :17], 0, atol=0.3)
