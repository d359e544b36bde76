"""Images from a folder on disk, decoded per batch (never all held in memory).

Layouts (`--data PATH` where PATH is a directory):
- `PATH/train/<class>/…` and `PATH/test/<class>/…`: the two splits, labelled by folder name;
  `PATH/train/…` and `PATH/test/…` holding images directly: the two splits, unlabelled;
- `PATH/<class>/…`: labelled, with a seeded stratified held-out test split (`--test-fraction`);
- `PATH/…` holding images directly: unlabelled, with a seeded held-out test split.
Images are found recursively below each split or class folder; PNG, JPEG and WebP are read
(by extension, case-insensitive), other files are skipped. Classes are the sorted folder names.

Order and `index`: the files are sorted by their path relative to PATH (POSIX separators,
Python string order). With train/ and test/ folders, `index` is the row number of a file in the
sorted list of its split; with one folder (held-out split), it is the row number in the sorted
list of all files, as for a `.npz` without `x_test`. `Split.paths` gives each sample's relative path.

Pixels: colour (RGB, RGBA, palette) images make the dataset RGB, otherwise it is grey; alpha is
dropped and grey images of an RGB dataset are repeated to three channels. All images must have
one size, unless `image_size` (`--image-size N` or `HxW`) resizes every image to it (bilinear,
antialiased; the aspect ratio is not kept). Only image headers are read at load time (PIL:
size and mode); `FolderImages` decodes the pixels with torchvision.io when rows are asked for,
as float32 in [0, 1], so memory grows with the batch, not with the number of images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import Dataset, Split
from .lazy_images import LazyImages, fit_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


class FolderImages(LazyImages):
    """The images of an image folder, decoded from their files per batch (see LazyImages)."""

    def __init__(self, root: Path, paths: np.ndarray, channels: int, size: tuple[int, int], resize: bool):
        self.root = Path(root)
        self.paths = np.asarray(paths, dtype=str)  # relative to root, sorted within the source
        self.channels = int(channels)
        self.size = (int(size[0]), int(size[1]))
        self.resize = bool(resize)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, rows) -> "FolderImages":
        return FolderImages(self.root, self.paths[np.asarray(rows, dtype=np.int64)], self.channels, self.size, self.resize)

    def digest(self) -> str:
        """sha256 of the shape, the resize flag and every file's relative path and bytes, in row
        order: reading the files is far cheaper than decoding them, and any edit changes it."""
        import hashlib

        h = hashlib.sha256(str(("folder", self.shape, self.resize)).encode())
        for rel in self.paths:
            h.update(rel.encode() + b"\0" + hashlib.sha256((self.root / rel).read_bytes()).digest())
        return h.hexdigest()

    def uint8(self, rows) -> np.ndarray:
        """The images at positions `rows` as an N×C×H×W uint8 array, decoded from their files."""
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        with warnings.catch_warnings():  # torchvision 0.29 warns on every decode that its decoders move to TorchCodec
            warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated", category=DeprecationWarning)
            for i, r in enumerate(rows):
                out[i] = self.decode(self.paths[int(r)])
        return out

    def decode(self, rel: str) -> np.ndarray:
        from torchvision.io import ImageReadMode, decode_image

        path = self.root / rel
        mode = ImageReadMode.RGB if self.channels == 3 else ImageReadMode.GRAY
        try:
            img = decode_image(str(path), mode=mode)
        except Exception as e:  # torchvision raises RuntimeError for damaged data
            raise UserError(f"cannot decode the image {path} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no detail'}): repair or remove it") from None
        return fit_image(img, self.size, self.resize, str(path))


def is_image_file(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def images_below(folder: Path, root: Path) -> list[str]:
    """Relative (to root) POSIX paths of the image files below `folder`, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def scan(folder: Path, root: Path) -> tuple[list[str], list[str] | None]:
    """(relative paths, class name per path or None): class folders, or images directly in `folder`."""
    direct = [p for p in folder.iterdir() if p.is_file() and is_image_file(p)]
    subdirs = [d for d in visible_dirs(folder) if images_below(d, root)]
    if direct and subdirs:
        raise UserError(f"{folder} holds images directly and in the subfolders {', '.join(d.name for d in subdirs[:5])}: put every image in a class folder (labelled) or none (unlabelled)")
    if subdirs:
        paths, classes = [], []
        for d in subdirs:
            found = images_below(d, root)
            paths += found
            classes += [d.name] * len(found)
        order = np.argsort(np.asarray(paths, dtype=str), kind="stable")
        return [paths[i] for i in order], [classes[i] for i in order]
    return images_below(folder, root), None


def parse_image_size(value) -> tuple[int, int] | None:
    """`--image-size`: N (square) or HxW; None keeps the images' own size."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        h, w = value
    else:
        text = str(value).lower().replace("×", "x")
        parts = text.split("x")
        try:
            h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
        except ValueError:
            raise UserError(f"--image-size {value!r}: give N (square) or HxW in pixels, e.g. 64 or 96x128") from None
        if len(parts) > 2:
            raise UserError(f"--image-size {value!r}: give N (square) or HxW in pixels, e.g. 64 or 96x128")
    h, w = int(h), int(w)
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise UserError(f"--image-size {value!r}: height and width must lie between 1 and 4096 pixels")
    return h, w


def read_headers(root: Path, paths: list[str]) -> tuple[int, set[tuple[int, int]]]:
    """(channels, distinct H×W sizes) from the files' headers; an unreadable file is a UserError."""
    from PIL import Image, UnidentifiedImageError

    colour, sizes = False, set()
    for rel in paths:
        try:
            with Image.open(root / rel) as im:
                w, h = im.size
                mode = im.mode
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise UserError(f"cannot read the image {root / rel} ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}): repair or remove it") from None
        sizes.add((h, w))
        colour = colour or mode not in GREY_MODES
    return (3 if colour else 1), sizes


def load_image_folder(path: Path, *, image_size=None, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A Dataset over the image files below `path` (layouts and order: see the module docstring)."""
    from . import holdout_split

    root = Path(path).resolve()
    if not root.is_dir():
        raise UserError(f"{path} is not a folder of images")
    size = parse_image_size(image_size)
    resize = size is not None
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        (tr_paths, tr_cls), (te_paths, te_cls) = scan(train_dir, root), scan(test_dir, root)
        for name, p in (("train", tr_paths), ("test", te_paths)):
            if not p:
                raise UserError(f"{root / name} holds no images ({', '.join(EXTENSIONS)}): add some, or remove the train/ and test/ folders to hold out a test split")
        if (tr_cls is None) != (te_cls is None):
            raise UserError(f"{root}: one of train/ and test/ has class folders and the other not: use class folders in both, or in neither")
        paths, classes_per = tr_paths + te_paths, (None if tr_cls is None else tr_cls + te_cls)
        split_of = np.array([0] * len(tr_paths) + [1] * len(te_paths))
        layout = "train/test folders"
    else:
        if train_dir.is_dir() or test_dir.is_dir():
            raise UserError(f"{root} has a {'train' if train_dir.is_dir() else 'test'}/ folder but no {'test' if train_dir.is_dir() else 'train'}/ folder: give both, or neither")
        paths, classes_per = scan(root, root)
        if not paths:
            raise UserError(f"{root} holds no images ({', '.join(EXTENSIONS)}, found recursively): check the path")
        split_of = None
        layout = "one folder, held-out test split"
    channels, sizes = read_headers(root, paths)
    if size is None:
        if len(sizes) > 1:
            few = ", ".join(f"{w}×{h}" for h, w in sorted(sizes)[:4])
            raise UserError(f"the images of {root} have {len(sizes)} different sizes ({few}, …): give --image-size N (or HxW) to resize them all")
        size = next(iter(sizes))
    classes = sorted(set(classes_per)) if classes_per is not None else None
    labels = None if classes is None else np.searchsorted(np.asarray(classes, dtype=str), np.asarray(classes_per, dtype=str)).astype(np.int64)
    if classes is not None and len(classes) < 2:
        raise UserError(f"{root} has a single class folder ({classes[0]!r}): give at least two classes, or put the images directly in the folder (unlabelled)")

    def split(rows: np.ndarray, index: np.ndarray) -> Split:
        x = FolderImages(root, np.asarray(paths, dtype=str)[rows], channels, size, resize=resize)
        return Split(x, None if labels is None else labels[rows], index.astype(np.int64))

    if split_of is not None:
        tr, te = np.nonzero(split_of == 0)[0], np.nonzero(split_of == 1)[0]
        train, test = split(tr, np.arange(len(tr))), split(te, np.arange(len(te)))
    else:
        tr, te = holdout_split(len(paths), labels, test_fraction, seed, "image-folder")
        train, test = split(tr, tr), split(te, te)
    source = {"path": str(root), "layout": layout, "n_files": len(paths), "image_size": list(size), "channels": channels, "resized": len(sizes) > 1 or next(iter(sizes)) != size}
    if split_of is None:
        source.update({"test_fraction": float(test_fraction), "seed": int(seed)})
    return Dataset(root.name, "image", train, test, classes=classes, source=source)
