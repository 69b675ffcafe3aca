"""The data: where it lives, how to fetch it, the dataset, and the transforms that move keypoints with the image.

    python data_load.py download [--data DIR]     # fetch the course archive into DIR (default: see data_dir)
"""
import argparse
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

N_POINTS = 68
# Left/right mirror of the 68-point iBUG scheme: point i becomes FLIP_PERM[i] when the image is flipped.
FLIP_PERM = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
           "eyes": range(36, 48), "mouth": range(48, 68)}


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


# ---------------------------------------------------------------- where the data lives

def data_dir(arg=None):
    """--data if given, else $FKP_DATA_DIR, else ./data."""
    return Path(arg or os.environ.get("FKP_DATA_DIR") or "data")


def photos_dir(arg=None):
    """Photos in the 300-W layout (NAME.jpg + NAME.pts): --photos if given, else $FKP_300W_DIR, else ./data/300w."""
    return Path(arg or os.environ.get("FKP_300W_DIR") or "data/300w")


def turned_dir(arg=None):
    """Faces at every head pose, in the 300-W layout with a yaw.json beside them (AFLW2000-3D): --turned if given,
    else $FKP_AFLW_DIR, else ./data/aflw2000."""
    return Path(arg or os.environ.get("FKP_AFLW_DIR") or "data/aflw2000")


def read_yaws(folder, paths):
    """Each face's yaw in degrees (-90..90) from the folder's yaw.json ({name: degrees}), or None without one."""
    f = Path(folder) / "yaw.json"
    if not f.is_file():
        return None
    try:
        yaws = json.loads(f.read_text())
        return np.float32([yaws[Path(p).stem] for p in paths])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{f}: not JSON ({e})") from None
    except KeyError as e:
        raise DataError(f"{f}: no yaw for {e}") from None


def split_paths(root, split):
    """(csv, image folder) of the course 'training' or 'test' split."""
    root = Path(root)
    return root / f"{split}_frames_keypoints.csv", root / split


# ---------------------------------------------------------------- people, not frames

def person(filename):
    """'Luis_Fonsi_21.jpg' -> 'Luis_Fonsi': one name per video clip."""
    return re.sub(r"_\d+$", "", Path(filename).stem)


def _person_byte(name, salt=""):
    return hashlib.sha1((salt + person(name)).encode("utf-8")).digest()[0]


def is_unseen(filename):
    """The 70 held-out people of ../shared/data/README.md: first byte of SHA-1(name) below 0x33."""
    return _person_byte(filename) < 0x33


def split_people(names):
    """Split file names into (unseen, seen) people."""
    unseen = [n for n in names if is_unseen(n)]
    return unseen, [n for n in names if not is_unseen(n)]


def is_validation(filename, fraction=0.1):
    """A fixed ~10% of the seen people, by a salted hash, held out to choose epochs and settings."""
    return not is_unseen(filename) and _person_byte(filename, "val:") < round(256 * fraction)


# 300-W photos are split by photo id (the name less its last _<number>): AFW repeats one photo once per annotated
# face, and two faces of one photo must never land on both sides of a split.
photo_id = person


def is_test_photo(filename):
    """The held-out test photos of ../shared/300w/README.md: first byte of SHA-1(photo id) below 0x26."""
    return _person_byte(filename) < 0x26


def is_validation_photo(filename, fraction=0.1):
    """A fixed ~10% of the other photos, by a salted hash of the photo id, to choose epochs and settings on."""
    return not is_test_photo(filename) and _person_byte(filename, "val:") < round(256 * fraction)


PHOTO_SPLITS = {"test": is_test_photo, "validation": is_validation_photo,
                "train": lambda n: not is_test_photo(n) and not is_validation_photo(n), "all": lambda n: True}


# ---------------------------------------------------------------- images and labels

def read_image(path):
    """Any image file -> RGB uint8 HxWx3 (alpha dropped, gray expanded, 16-bit scaled, turned upright as its EXIF
    Orientation tag says). Raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as e:  # no permission, a device, a disk error
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    return decode_image(data, path)


def decode_image(data, name="image"):
    """The bytes of an image file (as read from disk or uploaded) -> RGB uint8 HxWx3, as read_image. name: what the
    error messages call it."""
    if len(data) == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    # OpenCV decodes a cut-off JPEG without complaint, filling the rest with grey: check its end-of-image marker.
    if data[:2] == b"\xff\xd8" and not data[-64:].rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
        raise DataError(f"{name}: truncated JPEG (no end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            limit = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 2 ** 30)
            raise DataError(f"{name}: too large to decode (over {limit} pixels; the environment variable "
                            "OPENCV_IO_MAX_IMAGE_PIXELS raises OpenCV's limit)") from None
        raise DataError(f"{name}: OpenCV cannot decode it ({e.err})") from None
    if image is None:
        raise DataError(f"{name}: not an image OpenCV can read (corrupt, truncated or another format)")
    return exif_upright(to_rgb8(image, name), io.BytesIO(data))


# EXIF Orientation tag -> how to turn the stored pixels upright (a phone photo held sideways is stored sideways).
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}


def exif_upright(rgb, file):
    """rgb as stored in file (a path or a file object) -> as its EXIF Orientation tag says to show it.
    IMREAD_UNCHANGED (which keeps alpha and 16 bits) ignores the tag, so it is read here from the header alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # OpenCV has decoded it already
            with Image.open(file) as im:
                turn = _ORIENT.get(im.getexif().get(0x0112))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return rgb  # a format Pillow does not know carries no tag it could read
    return rgb if turn is None else np.ascontiguousarray(turn(rgb))


def to_rgb8(image, name="image", bgr=True):
    """Any numpy image (gray, 3- or 4-channel, uint8/uint16/float) -> RGB uint8 HxWx3."""
    image = np.asarray(image)
    if image.size == 0:
        raise DataError(f"{name}: empty image (shape {image.shape})")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{name}: unsupported pixel type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"{name}: expected a gray, RGB or RGBA image, got shape {image.shape}")
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image.copy()


def read_keypoints_csv(csv_file, root_dir=None):
    """The course CSV -> (names, keypoints N x 68 x 2 float32), checked row by row before any training starts."""
    csv_file = Path(csv_file)
    if not csv_file.is_file():
        raise DataError(f"{csv_file}: no such file")
    try:
        frame = pd.read_csv(csv_file)
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_file}: empty CSV") from None
    if len(frame) == 0:
        raise DataError(f"{csv_file}: empty CSV (a header and no rows)")
    if frame.shape[1] != 1 + 2 * N_POINTS:
        raise DataError(f"{csv_file}: expected an image name and {2 * N_POINTS} numbers per row "
                        f"({N_POINTS} x, y pairs), found {frame.shape[1] - 1} numbers")
    values = frame.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    for i in np.flatnonzero(~np.isfinite(values).all(axis=1)):
        raise DataError(f"{csv_file}: row {i + 2} ({frame.iloc[i, 0]}): keypoints missing, NaN or not numbers")
    names = frame.iloc[:, 0].astype(str).tolist()
    if root_dir is not None:
        for i, name in enumerate(names):
            if not (Path(root_dir) / name).is_file():
                raise DataError(f"{csv_file}: row {i + 2} names {name}, which is not in {root_dir}")
    return names, values.reshape(-1, N_POINTS, 2)


class FacialKeypointsDataset(Dataset):
    """Face images and their 68 keypoints: sample = {'image': HxWx3 RGB uint8, 'keypoints': 68x2 float32}."""

    def __init__(self, csv_file, root_dir, transform=None, names=None):
        """names: keep only these images (for a person split); default all rows of the CSV."""
        self.root_dir = Path(root_dir)
        all_names, all_keypoints = read_keypoints_csv(csv_file, root_dir)
        wanted = None if names is None else set(names)
        keep = [i for i, n in enumerate(all_names) if wanted is None or n in wanted]
        self.names = [all_names[i] for i in keep]
        self.keypoints = all_keypoints[keep]
        self.transform = transform

    def __len__(self):
        return len(self.names)

    def __getitem__(self, idx):
        sample = {"image": read_image(self.root_dir / self.names[idx]), "keypoints": self.keypoints[idx].copy()}
        return self.transform(sample) if self.transform else sample


PHOTO_EXTS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


def read_pts(path):
    """A 300-W .pts file (version line, n_points: 68, the points between braces) -> 68 x 2 float32."""
    path = Path(path)
    text = path.read_text(errors="replace")
    m = re.search(r"n_points:\s*(\d+)\s*\{(.*)\}", text, re.S)
    if not m:
        raise DataError(f"{path}: not a .pts file (no n_points line or no braces around the points)")
    if int(m.group(1)) != N_POINTS:
        raise DataError(f"{path}: {m.group(1)} points, expected {N_POINTS}")
    try:
        pts = np.float32(m.group(2).split()).reshape(-1, 2)
    except ValueError:
        raise DataError(f"{path}: keypoints missing, NaN or not numbers") from None
    if len(pts) != N_POINTS or not np.isfinite(pts).all():
        raise DataError(f"{path}: keypoints missing, NaN or not numbers (expected {N_POINTS} x, y pairs)")
    return pts


def read_photos(root, split="all"):
    """Every NAME.pts under root (any depth) whose photo is in split (PHOTO_SPLITS) -> (image paths, N x 68 x 2),
    each checked before any use; a .pts without its image is an error."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (300-W layout: NAME.jpg and NAME.pts)")
    paths, kps = [], []
    for pts in sorted(root.rglob("*.pts")):
        if not PHOTO_SPLITS[split](pts.name):
            continue
        image = next((i for e in PHOTO_EXTS if (i := pts.with_suffix(e)).is_file()), None)
        if image is None:
            raise DataError(f"{pts}: no image beside it (expected {pts.stem}.jpg or .png)")
        paths.append(image)
        kps.append(read_pts(pts))
    if not paths:
        raise DataError(f"{root}: no .pts files in the {split} split")
    return paths, np.stack(kps)


def source(path):
    """The collection a 300-W photo comes from: its folder's name (afw, helen_train, ...)."""
    return Path(path).parent.name


class FaceSamples(Dataset):
    """Faces held in memory, each cut out around its keypoints (face_region) so that a training epoch reads no
    files: sample = {'image', 'keypoints'} as FacialKeypointsDataset gives them, through transform, and 'source':
    which collection's annotators labelled them (a number, train.Conventions). region: face_region's context and
    largest extent (a model that reads the face at more pixels needs them kept)."""

    def __init__(self, images, keypoints, transform=None, source=0, weights=None, region=(4.0, 128)):
        cut = [face_region(im, kp, *region) for im, kp in zip(images, keypoints)]
        self.images, self.keypoints = [c[0] for c in cut], [c[1] for c in cut]
        self.transform, self.source = transform, source
        self.weights = np.ones((len(cut), N_POINTS), np.float32) if weights is None else np.float32(weights)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        """The sample, its source, and 'weights': how much each point counts in the loss (0: a label in another
        convention), mirrored with the sample."""
        sample = {"image": self.images[idx], "keypoints": self.keypoints[idx].copy()}
        out = self.transform(sample) if self.transform else sample
        w = self.weights[idx][FLIP_PERM] if out.get("mirrored") else self.weights[idx]
        return {**out, "source": self.source, "weights": torch.from_numpy(w.copy())}


def face_region(image, kp, context=4.0, max_extent=128):
    """(image, keypoints) -> the square of context x the keypoints' extent around them (black beyond the image),
    scaled down so that the extent is at most max_extent pixels: room for every augmentation of a crop, at about
    the resolution the crop is made from."""
    lo, hi = kp.min(0), kp.max(0)
    scale = min(1.0, max_extent / float(max(hi - lo)))
    if scale < 1:  # area averaging, as the pipeline does for large crops
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        s = np.float32([image.shape[1] / w, image.shape[0] / h])
        kp, lo, hi = (kp + 0.5) * s - 0.5, (lo + 0.5) * s - 0.5, (hi + 0.5) * s - 0.5
    side = int(round(context * float(max(hi - lo))))
    t = np.round(side / 2 - (lo + hi) / 2)  # a whole-pixel shift: pixels copied, not resampled
    region = cv2.warpAffine(image, np.float32([[1, 0, t[0]], [0, 1, t[1]]]), (side, side), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT)
    return region, (kp + t).astype(np.float32)


# ---------------------------------------------------------------- the course transforms

# The course maps keypoints of a 224-pixel input to about [-2, 2]: (k - 100) / 50. A model of input size S uses
# the same numbers scaled by S / 224, so every model speaks the same normalized coordinates.
def normalize_keypoints(keypoints, size=224):
    s = size / 224
    return (keypoints - 100 * s) / (50 * s)


def keypoints_to_pixels(keypoints, size=224):
    """Normalized model output (N x 136 or ... x 68 x 2) -> pixels of the S x S model input, shape ... x 68 x 2."""
    s = size / 224
    pts = keypoints.reshape(*keypoints.shape[:-1], -1, 2) if keypoints.shape[-1] == 2 * N_POINTS else keypoints
    return pts * (50 * s) + 100 * s


class Rescale:
    """Resize to output_size: an int is the smaller side (aspect kept), a tuple (h, w) is exact."""

    def __init__(self, output_size):
        self.output_size = output_size

    def __call__(self, sample):
        image, kp = sample["image"], sample["keypoints"]
        h, w = image.shape[:2]
        if isinstance(self.output_size, int):
            s = self.output_size
            new_h, new_w = (s * h / w, s) if h > w else (s, s * w / h)
        else:
            new_h, new_w = self.output_size
        new_h, new_w = int(round(new_h)), int(round(new_w))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        return {"image": image, "keypoints": kp * np.float32([new_w / w, new_h / h])}


class RandomCrop:
    """Crop a random size x size window (CenterCrop: the middle one)."""

    def __init__(self, size):
        self.size = size

    def corner(self, h, w):
        return np.random.randint(0, h - self.size + 1), np.random.randint(0, w - self.size + 1)

    def __call__(self, sample):
        image, kp = sample["image"], sample["keypoints"]
        top, left = self.corner(*image.shape[:2])
        return {"image": image[top:top + self.size, left:left + self.size],
                "keypoints": kp - np.float32([left, top])}


class CenterCrop(RandomCrop):
    def corner(self, h, w):
        return (h - self.size) // 2, (w - self.size) // 2


class Normalize:
    """RGB -> grayscale in [0, 1]; keypoints -> the normalized coordinates of a size x size input."""

    def __init__(self, size=224):
        self.size = size

    def __call__(self, sample):
        gray = cv2.cvtColor(sample["image"], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        return {"image": gray, "keypoints": normalize_keypoints(sample["keypoints"], self.size)}


class ToTensor:
    """HxW or HxWxC numpy -> CxHxW float tensor; keypoints -> 68x2 float tensor."""

    def __call__(self, sample):
        image = sample["image"]
        image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                "keypoints": torch.from_numpy(np.asarray(sample["keypoints"], dtype=np.float32))}


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample


# The course recipe for Net, and its deterministic twin for measuring.
data_transform = Compose([Rescale(250), RandomCrop(224), Normalize(), ToTensor()])
eval_transform = Compose([Rescale(250), CenterCrop(224), Normalize(), ToTensor()])


def show_keypoints(image, keypoints=None, truth=None, ax=None, title=None):
    """Plot an image with predicted keypoints (magenta) and ground truth (green), as the course notebooks do."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    image = np.asarray(image)
    ax.imshow(image.squeeze(), cmap="gray" if image.squeeze().ndim == 2 else None)
    if truth is not None:
        ax.scatter(truth[:, 0], truth[:, 1], s=12, marker=".", c="g")
    if keypoints is not None:
        ax.scatter(keypoints[:, 0], keypoints[:, 1], s=12, marker=".", c="m")
    ax.set(xlim=(-0.5, image.shape[1] - 0.5), ylim=(image.shape[0] - 0.5, -0.5), title=title or "")
    ax.axis("off")
    return ax


# ---------------------------------------------------------------- download

COURSE_URL = ("https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/"
              "5aea1b91_train-test-data/train-test-data.zip")
# What we can pin without fetching it here: the archive's size as the course's server reports it, and the SHA-256
# of the two label files it carries (the same files as ../shared/data). Both are checked before anything is extracted.
COURSE_SIZE = 338613624
COURSE_MEMBERS_SHA256 = {
    "training_frames_keypoints.csv": "9f3d1213429893d4955e2789076f6ce11e297253fed86337cffb6ca85bd61ec8",
    "test_frames_keypoints.csv": "348e5e1a5906001f64d3da627e4f61dc3de90771d6d92f5d93628029b3c85e65",
}


def _member_path(dest, name):
    """Where archive member name lands under dest; refuses absolute paths and '..' (zip slip)."""
    target = (dest / name).resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or not target.is_relative_to(dest.resolve()):
        raise DataError(f"archive member {name!r} would be written outside {dest}: refused")
    return target


def verify_archive(zip_path, size=COURSE_SIZE, members_sha256=COURSE_MEMBERS_SHA256):
    if size is not None and zip_path.stat().st_size != size:
        raise DataError(f"{zip_path}: {zip_path.stat().st_size} bytes, expected {size}: "
                        "incomplete or not the course archive")
    try:
        with zipfile.ZipFile(zip_path) as z:
            bad = z.testzip()
            if bad:
                raise DataError(f"{zip_path}: member {bad} fails its CRC check")
            by_base = {Path(n).name: n for n in z.namelist()}
            for base, digest in members_sha256.items():
                if base not in by_base:
                    raise DataError(f"{zip_path}: has no {base}")
                if hashlib.sha256(z.read(by_base[base])).hexdigest() != digest:
                    raise DataError(f"{zip_path}: {base} checksum mismatch: not the course archive")
    except zipfile.BadZipFile:
        raise DataError(f"{zip_path}: not a zip archive") from None


def download(dest, url=COURSE_URL, size=COURSE_SIZE, members_sha256=COURSE_MEMBERS_SHA256):
    """Fetch the course archive into dest with a progress bar, verify it, then extract it; never overwrites a
    different file already there."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    zip_path = dest / Path(url).name
    if not zip_path.exists():
        # Download under a temporary name: an interrupted transfer never looks like a complete archive.
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=dest)
        try:
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=zip_path.name) as bar:
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                            bar.update(len(chunk))
                if total and bar.n != total:
                    raise DataError(f"{url}: download failed (transfer interrupted after {bar.n} of {total} bytes); "
                                    "nothing was kept")
            except (OSError, http.client.HTTPException) as e:
                raise DataError(f"{url}: download failed ({type(e).__name__}: {e}); nothing was kept") from None
            verify_archive(Path(tmp), size, members_sha256)
            os.replace(tmp, zip_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        verify_archive(zip_path, size, members_sha256)
    with zipfile.ZipFile(zip_path) as z:
        members = [(m, _member_path(dest, m.filename)) for m in z.infolist() if not m.is_dir()]
        for m, target in members:
            if target.exists() and target.read_bytes() != z.read(m):
                raise DataError(f"{target}: exists and differs from the archive's copy: move it away first")
        for m, target in members:
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    print(f"{zip_path}: verified and extracted into {dest}")
    return dest


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The scripts' --help: their docstring as written, and each option's default beside its help (an option whose
    default depends on others says so in its help)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("command", choices=["download"], help="download: fetch, check and unpack the course data")
    parser.add_argument("--data", help="data folder (default: $FKP_DATA_DIR or ./data)")
    parser.add_argument("--url", default=COURSE_URL, help="where the course archive is")
    args = parser.parse_args(argv)
    try:
        download(data_dir(args.data), args.url)
    except (DataError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
