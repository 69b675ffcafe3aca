"""The CNNs. Every model takes a face crop (N x C x S x S, pixels in [0, 1]) and returns N x 136: 68 (x, y) pairs
in the normalized coordinates of data_load.normalize_keypoints; data_load.keypoints_to_pixels maps them back.

- Net: the course network, exactly as the course specifies it (1 x 224 x 224 grayscale, 26.8M parameters).
- HeatmapNet: the shipped model: a small residual CNN at 160 px whose head predicts one heatmap per keypoint and
  reads each point off as the heatmap's centre of mass (soft-argmax), which keeps the spatial layout that a
  fully connected regression throws away.

Both load from checkpoints checked before use (load_model); on a CPU detect.py runs a HeatmapNet as ONNX, the int8
form that quantize() makes and train.py stores in the weights.
"""
import io
import platform
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from data_load import N_POINTS, keypoints_to_pixels, normalize_keypoints


class Net(nn.Module):
    """The course network: four 5x5 convs, each followed by ReLU, 2x2 max-pool and batch norm; two dense layers."""

    input_size, in_channels = 224, 1

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)     # (32, 220, 220) -> pool (32, 110, 110)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 5)    # (64, 106, 106) -> pool (64, 53, 53)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 5)   # (128, 49, 49)  -> pool (128, 24, 24)
        self.bn3 = nn.BatchNorm2d(128)
        self.conv4 = nn.Conv2d(128, 256, 5)  # (256, 20, 20)  -> pool (256, 10, 10)
        self.bn4 = nn.BatchNorm2d(256)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(256 * 10 * 10, 1000)
        self.drop = nn.Dropout(p=0.2)
        self.fc2 = nn.Linear(1000, 2 * N_POINTS)

    def forward(self, x):
        x = self.bn1(self.pool(F.relu(self.conv1(x))))
        x = self.bn2(self.pool(F.relu(self.conv2(x))))
        x = self.bn3(self.pool(F.relu(self.conv3(x))))
        x = self.bn4(self.pool(F.relu(self.conv4(x))))
        x = x.flatten(1)                     # (256 * 10 * 10)
        x = self.drop(F.relu(self.fc1(x)))   # (1000)
        return self.fc2(x)                   # (136)


def conv_bn(c_in, c_out, stride=1, kernel=3):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.body(x))


class HeatmapNet(nn.Module):
    """Encoder down to 1/16, decoder back up to 1/4 with skip connections, 68 heatmaps, soft-argmax."""

    def __init__(self, input_size=128, in_channels=1, width=16, blocks=(1, 1, 1), margin=0.3):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"HeatmapNet input_size must be a multiple of 16, not {input_size}")
        self.input_size, self.in_channels, self.width, self.blocks = input_size, in_channels, width, tuple(blocks)
        self.margin = margin  # the crop it sees: its face box padded by margin x the box's width on every side
        w = width

        def stage(c_in, c, n):  # halve the size, then n residual blocks
            return nn.Sequential(conv_bn(c_in, c, 2), *(ResBlock(c) for _ in range(n)))

        self.stem = conv_bn(in_channels, w, stride=2)      # 1/2
        self.down1 = stage(w, 2 * w, self.blocks[0])       # 1/4
        self.down2 = stage(2 * w, 4 * w, self.blocks[1])   # 1/8
        self.down3 = stage(4 * w, 8 * w, self.blocks[2])   # 1/16
        self.lat2 = nn.Conv2d(8 * w, 4 * w, 1)
        self.up2 = conv_bn(4 * w, 4 * w)
        self.lat1 = nn.Conv2d(4 * w, 2 * w, 1)
        self.up1 = conv_bn(2 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, N_POINTS, 1)
        hm = input_size // 4
        # Pixel centre of each heatmap cell along an axis, in input pixels; and (x, y) of every cell, row by row.
        self.register_buffer("grid", (torch.arange(hm, dtype=torch.float32) + 0.5) * 4 - 0.5, persistent=False)
        ys, xs = torch.meshgrid(self.grid, self.grid, indexing="ij")
        self.register_buffer("cells", torch.stack([xs.flatten(), ys.flatten()], -1), persistent=False)

    def heatmaps(self, x):
        f1 = self.down1(self.stem(x))
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        # Fixed factors and shapes rather than ones read off the tensors: the exported ONNX graph then computes no
        # shapes at run time (half as many nodes, about 5% faster).
        u2 = self.up2(f2 + F.interpolate(self.lat2(f3), scale_factor=2.0, mode="nearest"))
        u1 = self.up1(f1 + F.interpolate(self.lat1(u2), scale_factor=2.0, mode="nearest"))
        return self.head(u1)

    def forward(self, x, with_heatmaps=False):
        hm = self.input_size // 4
        h = self.heatmaps(x).reshape(-1, N_POINTS, hm * hm)
        # In float32 even under bfloat16 autocast (training, --bf16): its 8-bit mantissa would round the centre of mass
        # to half an input pixel.
        with torch.autocast(x.device.type, enabled=False):
            p = F.softmax(h.float(), dim=-1)
            out = normalize_keypoints(p @ self.cells, self.input_size).flatten(1)   # each heatmap's centre of mass
        return (out, p.reshape(-1, N_POINTS, hm, hm)) if with_heatmaps else out

    def heatmap_loss(self, p, target, sigma=1.0):
        """Jensen-Shannon divergence between each heatmap and a Gaussian of sigma cells at the true point (DSNT,
        Nibali et al. 2018): keeps every heatmap a single peak, so its centre of mass is a sharp estimate."""
        pix = keypoints_to_pixels(target, self.input_size)                    # N x K x 2, input pixels
        d = (self.grid[None, None, :, None] - pix[..., None, :]) / (4 * sigma)  # N x K x cells x 2
        g1 = torch.exp(-0.5 * d ** 2)
        g = g1[..., 1][..., :, None] * g1[..., 0][..., None, :]                 # N x K x H x W
        g = g / g.sum((-2, -1), keepdim=True).clamp_min(1e-12)
        m = (p + g) / 2
        eps = 1e-12
        js = 0.5 * (p * ((p + eps) / (m + eps)).log() + g * ((g + eps) / (m + eps)).log()).sum((-2, -1))
        return js.mean()


class ZoomNet(nn.Module):
    """The closer look: for each of its points (of the 68) a first model found in its crop, a patch of the same crop at
    `scale` times the pixels (patch x patch, around the point), read by one small CNN shared by all points; a linear
    head per point moves it. Large, sharp faces lose most of their detail in the first model's crop; this reads it
    back. It starts as the identity (a zero head), so it learns only to move points."""

    def __init__(self, input_size=160, scale=2, patch=24, width=8, points=tuple(range(N_POINTS))):
        super().__init__()
        if patch % 4:
            raise ValueError(f"ZoomNet patch must be a multiple of 4, not {patch}")
        self.input_size, self.scale, self.patch, self.width = input_size, scale, patch, width
        # The points it looks at again (its time grows with their number); the others pass through as they are.
        self.points = tuple(int(i) for i in points)
        self.register_buffer("which", torch.tensor(self.points), persistent=False)
        self.register_buffer("spread", torch.eye(N_POINTS)[:, self.points], persistent=False)  # 68 x k
        w = width
        self.body = nn.Sequential(conv_bn(1, w, 2), conv_bn(w, 2 * w), conv_bn(2 * w, 2 * w, 2), conv_bn(2 * w, 4 * w))
        self.head_w = nn.Parameter(torch.zeros(N_POINTS, 4 * w * (patch // 4) ** 2, 2))
        self.head_b = nn.Parameter(torch.zeros(N_POINTS, 2))
        # How much of the point's place within its patch's centre pixel to keep: the pixels cannot tell it.
        self.keep = nn.Parameter(torch.ones(N_POINTS, 1))
        r = torch.arange(patch)
        self.register_buffer("rows", r[:, None], persistent=False)
        self.register_buffer("cols", r[None, :], persistent=False)

    def patches(self, fine, points):
        """(N*k x 1 x P x P patches, N x k x 2 their centres, N x k x 2 the points) for its k points, in fine pixels:
        whole-pixel patches (a gather, no resampling: several times faster than grid_sample in ONNX Runtime) of the
        crop padded by half a patch, so that a point at or past the edge still gets one."""
        n, size, p = fine.shape[0], self.input_size * self.scale, self.patch
        px = keypoints_to_pixels(points, self.input_size)[:, self.which]     # N x k x 2, first crop's pixels
        centre = (px + 0.5) * self.scale - 0.5                                # the same points, fine pixels
        first = torch.floor(centre + 0.5).clamp(0, size)                    # each patch's first pixel, padded
        at = first.long()
        index = (at[..., 1, None, None] + self.rows) * (size + p) + at[..., 0, None, None] + self.cols
        padded = F.pad(fine, [p // 2] * 4).reshape(n, -1)
        cut = torch.gather(padded, 1, index.reshape(n, -1)).reshape(-1, 1, p, p)
        return cut, first - p // 2 + (p - 1) / 2, centre

    def forward(self, fine, points):
        """fine: N x 1 x (S*scale) x (S*scale), the crop at scale times the pixels; points: N x 136, the first
        model's normalized points -> N x 136, moved."""
        n, k = fine.shape[0], len(self.points)
        cut, middle, centre = self.patches(fine, points)
        f = self.body(cut).reshape(n, k, -1).transpose(0, 1)                  # k x N x C
        move = (f @ self.head_w[self.which]).transpose(0, 1) + self.head_b[self.which]   # N x k x 2, fine pixels
        out = middle + self.keep[self.which] * (centre - middle) + move - centre
        # Each moved point back to its place among the 68 (a product with a fixed 0/1 matrix: no scatter in ONNX).
        shift = torch.einsum("jk,nkd->njd", self.spread, out / self.scale)
        return points + shift.flatten(1) / (50 * self.input_size / 224)


class WithConfidence(nn.Module):
    """x -> (N x 136 keypoints, N confidences). A HeatmapNet's confidence is the mean peak height of its 68 heatmaps:
    a crop that holds no face gives flat heatmaps. Models without heatmaps report 1."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        if isinstance(self.model, HeatmapNet):
            out, p = self.model(x, with_heatmaps=True)
            return out, p.flatten(2).amax(-1).mean(-1)
        out = self.model(x)
        return out, torch.ones_like(out[:, 0])


MODELS = {"Net": Net, "HeatmapNet": HeatmapNet}


class WeightsError(ValueError):
    """A weights file that is missing, not a checkpoint, or for another model."""


def checkpoint(model, **extra):
    """What a weights file holds: the model's name and settings, its weights, and anything extra (optimizer, epoch)."""
    config = {k: getattr(model, k) for k in ("input_size", "in_channels", "width", "blocks", "margin")} \
        if isinstance(model, HeatmapNet) else {}
    return {"model": type(model).__name__, "config": config, "state_dict": model.state_dict(), **extra}


def load_checkpoint(path, map_location="cpu"):
    """Read a weights file without executing pickled code; WeightsError names the file and what is wrong."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except Exception as e:  # torch raises a zoo of types for files that are not checkpoints
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({type(e).__name__})") from None
    if isinstance(ckpt, dict) and "state_dict" not in ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        # a bare state_dict, as the course saves it: a Net trained on the course's labels
        ckpt = {"model": "Net", "config": {}, "state_dict": ckpt, "labellings": {"course": torch.zeros(N_POINTS, 2)}}
    if not isinstance(ckpt, dict) or ckpt.get("model") not in MODELS:
        raise WeightsError(f"{path}: not a checkpoint of this project (no known model name in it)")
    return ckpt


def check_device(name):
    """torch.device(name), or a ValueError in one line where the name is wrong or this machine has no such device."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not a device name (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: PyTorch sees no CUDA GPU on this machine (try cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: PyTorch sees no Apple GPU on this machine (try cpu)")
    return device


def load_model(path, device="cpu", expected=None):
    """Weights file -> model in eval mode. expected: the model name the caller needs, if any."""
    ckpt = load_checkpoint(path)
    name = ckpt["model"]
    if expected and name != expected:
        raise WeightsError(f"{path}: holds a {name}, expected a {expected}")
    try:
        model = MODELS[name](**ckpt.get("config", {}))
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise WeightsError(f"{path}: weights do not fit a {name} ({first})") from None
    # Below this confidence a crop is taken for no face; train.py measures it on the validation faces.
    model.min_confidence = float(ckpt.get("min_confidence", 0.0))
    model.margin = getattr(model, "margin", 0.3)  # Net: the course pipeline's padded crop
    # Per labelling (300-W's, the course's), where its annotators put each point relative to the model's, along and
    # across the face's eye line in eye distances (train.labellings): detect.py moves the points by one of them.
    model.labellings = {k: v.float().numpy() for k, v in ckpt.get("labellings", {}).items()}
    # The same model quantized to int8 ONNX (quantize, below), when train.py has added one: bytes, or None.
    model.int8_onnx = ckpt["int8_onnx"].numpy().tobytes() if "int8_onnx" in ckpt else None
    # The closer look behind it (zoom.py), when the weights hold one: a ZoomNet, or None.
    model.zoom, model.zoom_from = None, float(ckpt.get("zoom", {}).get("from", 1.0))
    if "zoom" in ckpt:
        try:
            model.zoom = ZoomNet(**ckpt["zoom"]["config"])
            model.zoom.load_state_dict(ckpt["zoom"]["state_dict"])
        except (TypeError, KeyError, RuntimeError) as e:
            raise WeightsError(f"{path}: its ZoomNet does not load ({type(e).__name__})") from None
        model.zoom = model.zoom.to(device).eval()
    return model.to(device).eval()


# ---------------------------------------------------------------- ONNX: what detect.py runs on a CPU

def onnx_bytes(model):
    """The model, with its confidence output, as an ONNX file in memory (any batch size)."""
    buf = io.BytesIO()
    x = torch.zeros(1, model.in_channels, model.input_size, model.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, and needs no onnxscript
        faces = {0: "faces"}
        torch.onnx.export(WithConfidence(model).eval(), x, buf, dynamo=False, input_names=["x"],
                          output_names=["y", "c"], dynamic_axes={"x": faces, "y": faces, "c": faces})
    return buf.getvalue()


def zoom_onnx_bytes(zoom):
    """A ZoomNet as an ONNX file in memory: (fine crops, first points) -> points, any batch size."""
    buf = io.BytesIO()
    size = zoom.input_size * zoom.scale
    x, p = torch.zeros(1, 1, size, size), torch.zeros(1, 2 * N_POINTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(zoom.eval(), (x, p), buf, dynamo=False, input_names=["fine", "points"], output_names=["y"],
                          dynamic_axes={"fine": {0: "faces"}, "points": {0: "faces"}, "y": {0: "faces"}})
    return buf.getvalue()


def quantize(model, crops):
    """The model as int8 ONNX, its activation ranges measured on crops (N x C x S x S float32 face crops, as the
    model sees them), all but the first layer. On this project's 2-core CPU it takes a face in less time than the
    float model (2.59 against 3.58 ms on the unseen people), with the same NME (saved_models/README.md)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.it = iter(crops)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x[None]}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_bytes(model))
        # Shapes and graph optimizations first: without them the int8 model runs slower than the float one.
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        # The layer that reads the image stays float: quantized, it cost 0.15 points of NME on the 300-W validation
        # photos, for 0.2 ms a face.
        first = [n.name for n in onnx.load(pre).graph.node if "x" in n.input]
        quantize_static(pre, dst, Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv", "Add", "Relu"], nodes_to_exclude=first,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def onnx_runner(onnx_model):
    """A session of ONNX Runtime: on a CPU, one small face at a time, several times faster than eager PyTorch,
    whose per-layer overhead dominates at that size. batch -> (keypoints, conf)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *inputs: session.run(None, dict(zip(names, inputs)))


def cpu():
    """The CPU in a few words, for a timing to be read with: its name and its widest vector instructions. ONNX
    Runtime's int8 convolutions need VNNI (AVX-512 or AVX) to be fast: on a CPU with AVX2 only, the shipped model
    takes a face in about as much time as dlib's predictor, on one with AVX-512 VNNI in less (docs/benchmarks.md)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines()[::-1] if ":" in line)  # the first CPU's
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    isa = next((f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2") if f in flags), None)  # x86 only
    return ", ".join(filter(None, [fields.get("model name") or platform.machine(), isa]))
