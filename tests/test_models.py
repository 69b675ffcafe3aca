import pytest
import torch

import models


def test_net_is_the_course_network():
    net = models.Net()
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 26_814_576
    assert net.eval()(torch.zeros(3, 1, 224, 224)).shape == (3, 136)


def test_heatmapnet_maps_crops_to_136_numbers():
    m = models.HeatmapNet().eval()
    assert m(torch.zeros(2, m.in_channels, m.input_size, m.input_size)).shape == (2, 136)


def test_weights_round_trip(tmp_path):
    m = models.HeatmapNet(input_size=64, blocks=(1, 2, 3), margin=0.2)
    torch.save(models.checkpoint(m), tmp_path / "w.pt")
    loaded = models.load_model(tmp_path / "w.pt")
    assert loaded.input_size == 64 and loaded.blocks == (1, 2, 3) and loaded.margin == 0.2 and not loaded.training
    assert len(loaded.down3) == 1 + 3  # the halving conv, then three residual blocks
    x = torch.rand(1, 1, 64, 64)
    assert torch.equal(loaded(x), m.eval()(x))


def test_weights_from_before_the_margin_setting_crop_as_they_were_trained(tmp_path):
    ckpt = models.checkpoint(models.HeatmapNet())
    del ckpt["config"]["margin"]
    torch.save(ckpt, tmp_path / "old.pt")
    torch.save(models.Net().state_dict(), tmp_path / "course.pt")
    assert models.load_model(tmp_path / "old.pt").margin == models.load_model(tmp_path / "course.pt").margin == 0.3


def test_bad_weights_files(tmp_path):
    with pytest.raises(models.WeightsError, match="w.pt: weights file not found"):
        models.load_model(tmp_path / "w.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(models.WeightsError, match="text.pt: not a PyTorch checkpoint"):
        models.load_model(tmp_path / "text.pt")
    torch.save(models.checkpoint(models.HeatmapNet()), tmp_path / "hm.pt")
    with pytest.raises(models.WeightsError, match="hm.pt: holds a HeatmapNet, expected a Net"):
        models.load_model(tmp_path / "hm.pt", expected="Net")
    ckpt = models.checkpoint(models.HeatmapNet())
    ckpt["model"] = "Net"  # a Net name over HeatmapNet weights
    torch.save(ckpt, tmp_path / "mixed.pt")
    with pytest.raises(models.WeightsError, match="mixed.pt: weights do not fit a Net"):
        models.load_model(tmp_path / "mixed.pt")


class Boom:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_loading_never_runs_pickled_code(tmp_path, capsys):
    torch.save({"model": "Net", "state_dict": {}, "payload": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(models.WeightsError, match="evil.pt: not a PyTorch checkpoint"):
        models.load_model(tmp_path / "evil.pt")
    assert "pickled code ran" not in capsys.readouterr().out


def test_cpu_names_the_instructions_that_int8_speed_depends_on(monkeypatch):
    info = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2\n"
    monkeypatch.setattr(models.Path, "read_text", lambda self: info)
    assert models.cpu() == "AMD EPYC, avx2"
    monkeypatch.setattr(models.Path, "read_text", lambda self: info.replace("avx2", "avx2 avx512f avx512_vnni"))
    assert models.cpu() == "AMD EPYC, avx512_vnni"


def test_zoomnet_cuts_a_whole_pixel_patch_around_each_point_and_starts_as_the_identity():
    from data_load import normalize_keypoints
    z = models.ZoomNet(input_size=32, scale=2, patch=8, width=4).eval()
    fine = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64)
    px = torch.full((1, 68, 2), 10.0)
    px[0, 1] = torch.tensor([0.0, 31.0])  # the crop's edge: the patch reaches into the black padding
    patches, middle, centre = z.patches(fine, normalize_keypoints(px, 32).flatten(1))
    # first-crop pixel 10 is fine pixel 20.5: the patch of fine pixels 17..24 (8 wide), centred at 20.5
    assert torch.equal(patches[0, 0], fine[0, 0, 17:25, 17:25]) and torch.allclose(middle[0, 0], centre[0, 0])
    # pixel (0, 31): fine (0.5, 62.5), rounded to (1, 63): columns -3..4, rows 59..66, zero beyond the crop
    assert torch.equal(patches[1, 0, :5, 3:], fine[0, 0, 59:64, 0:5]) and patches[1, 0, 5:].eq(0).all()
    assert patches[1, 0, :, :3].eq(0).all()
    p = torch.randn(2, 136)
    assert torch.allclose(z(torch.rand(2, 1, 64, 64), p), p, atol=1e-5)  # a zero head moves nothing


def test_zoomnet_onnx_gives_what_pytorch_gives(tmp_path):
    import onnxruntime  # noqa: F401 (the runner below imports it)
    z = models.ZoomNet(input_size=32, scale=2, patch=8, width=4).eval()
    torch.nn.init.normal_(z.head_w, std=0.1)
    fine, p = torch.rand(3, 1, 64, 64), torch.randn(3, 136)
    run = models.onnx_runner(models.zoom_onnx_bytes(z))
    assert torch.allclose(torch.from_numpy(run(fine.numpy(), p.numpy())[0]), z(fine, p), atol=1e-4)
    # a weights file carries it: load_model gives it back behind the HeatmapNet
    torch.save({**models.checkpoint(models.HeatmapNet(input_size=32)),
                "zoom": {"config": {"input_size": 32, "scale": 2, "patch": 8, "width": 4},
                         "state_dict": z.state_dict(), "from": 1.5}}, tmp_path / "w.pt")
    loaded = models.load_model(tmp_path / "w.pt")
    assert loaded.zoom_from == 1.5 and torch.equal(loaded.zoom(fine, p), z(fine, p))
    assert models.load_model(tmp_path / "w.pt").zoom is not None
    torch.save(models.checkpoint(models.HeatmapNet(input_size=32)), tmp_path / "plain.pt")
    assert models.load_model(tmp_path / "plain.pt").zoom is None
