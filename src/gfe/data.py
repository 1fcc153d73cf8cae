"""Image datasets (MNIST, Fashion-MNIST, CIFAR-10) and the authors' index splits.

The data is read through torchvision's dataset classes (never downloaded unless
asked) after the files have been found, copied into ``root`` in torchvision's
layout and verified.  Sources are tried in this order:

1. files already prepared under ``root`` (``<root>/MNIST/raw``,
   ``<root>/FashionMNIST/raw``, ``<root>/cifar-10-batches-py``);
2. ``local_dir``, if given;
3. the known system copies in :data:`SYSTEM_DIRS`, if ``search_system``;
4. a torchvision download into ``root``, if ``download``.

Everything is passed as plain arguments; this module reads no config files.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torchvision import datasets as tv_datasets
from torchvision.datasets.utils import check_integrity

from .io import atomic_write

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")

# Known system copies; /usr/share/datasets/fashion-mnist is Debian's dataset-fashion-mnist.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [Path("/usr/share/datasets/mnist")],
    "fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")],
    "cifar10": [],
}

# SHA-256 of the *uncompressed* Fashion-MNIST IDX files.  Computed from the Debian
# package dataset-fashion-mnist 0.0~git20200523.55506a9-1 by decompressing
# /usr/share/datasets/fashion-mnist/*.gz (the Debian .gz files are recompressed,
# so the .gz md5s that torchvision checks do not match them; the content does).
# They agree with independently published checksums of the upstream files.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# MNIST: torchvision only knows md5s of the original .gz files, which say nothing
# about the content of a recompressed or already uncompressed copy, and no
# content checksum was verified locally.  MNIST files are therefore checked by
# their IDX header (magic, count, 28x28) and file size only.
CONTENT_SHA256 = {"mnist": {}, "fashion_mnist": FASHION_MNIST_SHA256}

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
MNIST_SIDE = 28
TRAIN_COUNT = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
TEST_COUNT = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000}
# file name -> (is_image_file, is_train_file)
MNIST_FILES = {
    "train-images-idx3-ubyte": (True, True),
    "train-labels-idx1-ubyte": (False, True),
    "t10k-images-idx3-ubyte": (True, False),
    "t10k-labels-idx1-ubyte": (False, False),
}
TORCHVISION_CLASSES = {
    "mnist": tv_datasets.MNIST,
    "fashion_mnist": tv_datasets.FashionMNIST,
    "cifar10": tv_datasets.CIFAR10,
}
PRETTY_NAMES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)
# What torchvision's readers raise on unreadable files (its IDX reader uses assert).
LOAD_ERRORS = (
    RuntimeError,
    OSError,
    ValueError,
    TypeError,
    KeyError,
    EOFError,
    AssertionError,
    pickle.UnpicklingError,
)


class DatasetError(RuntimeError):
    """A dataset could not be found, or the files found are damaged.

    The message says what was looked for, where, and how to provide it.
    """


@dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset's images as float32 NCHW tensors in [0, 1] and int64 labels."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        channels, height, width = self.train_images.shape[1:]
        return (int(channels), int(height), int(width))


# ---------------------------------------------------------------- public API


def load_dataset(
    name: str,
    root,
    *,
    local_dir=None,
    search_system: bool = True,
    download: bool = False,
) -> ImageData:
    """Find, prepare, verify and load dataset ``name`` ("mnist", "fashion_mnist", "cifar10").

    ``root`` is where the files are kept in torchvision's layout; ``local_dir``
    is an extra folder holding the original files; ``search_system`` allows the
    system copies in :data:`SYSTEM_DIRS`; ``download`` allows torchvision to
    download into ``root``.  Raises :class:`DatasetError` if the data is missing
    everywhere or damaged.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset name {name!r}; expected one of {DATASET_NAMES}")
    root = Path(root)
    source_dirs = _candidate_source_dirs(name, local_dir, search_system)
    if name == "cifar10":
        _ensure_cifar_prepared(root, source_dirs, download)
        return _load_cifar(root)
    _ensure_mnist_like_prepared(name, root, source_dirs, download)
    return _load_mnist_like(name, root)


def authors_split(n_val: int = 8, n_pool: int = 50000) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the authors' (train_idx, val_idx) split of ``range(n_pool)`` as int64 tensors.

    Reproduces the authors' code exactly: shuffle ``np.arange(n_pool)`` with
    ``np.random.RandomState(seed=0)``; the last ``n_val`` indices are validation.
    """
    if n_pool < 2:
        raise ValueError(f"n_pool must be at least 2, got n_pool={n_pool}")
    if not 0 < n_val < n_pool:
        raise ValueError(f"n_val must satisfy 0 < n_val < n_pool={n_pool}, got n_val={n_val}")
    allidx = np.arange(n_pool)
    np.random.RandomState(seed=0).shuffle(allidx)
    train_idx = torch.as_tensor(allidx[: n_pool - n_val], dtype=torch.int64)
    val_idx = torch.as_tensor(allidx[n_pool - n_val :], dtype=torch.int64)
    return train_idx, val_idx


def nested_subset(train_idx: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Return ``n`` entries of ``train_idx`` chosen by a seeded permutation.

    The permutation depends only on ``seed`` and ``len(train_idx)``, so for one
    seed the subset of a smaller ``n`` is a prefix (hence a subset) of that of a
    larger ``n``; ``n == len(train_idx)`` returns the whole split, permuted.
    """
    size = len(train_idx)
    if not 0 < n <= size:
        raise ValueError(f"n must satisfy 0 < n <= len(train_idx)={size}, got n={n}")
    generator = torch.Generator().manual_seed(seed)
    positions = torch.randperm(size, generator=generator)[:n]
    return torch.as_tensor(train_idx)[positions]


# ------------------------------------------------------------ source search


def _candidate_source_dirs(name: str, local_dir, search_system: bool) -> list[tuple[Path, str]]:
    """Folders to search for original files, each with a label for messages."""
    dirs = []
    if local_dir is not None:
        dirs.append((Path(local_dir), "local_dir"))
    if search_system:
        dirs.extend((path, "system copy") for path in SYSTEM_DIRS.get(name, []))
    return dirs


def _how_to_provide(name: str, root: Path, *, offer_download: bool = True) -> list[str]:
    """Ways a user can make dataset ``name`` available."""
    ways = []
    if name == "fashion_mnist":
        ways.append("apt-get install dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist)")
    if name == "cifar10":
        ways.append(
            f"put {CIFAR_ARCHIVE} (or its extracted {CIFAR_FOLDER}/ folder) from "
            "https://www.cs.toronto.edu/~kriz/cifar.html in a folder and pass local_dir=<that folder>"
        )
    else:
        files = ", ".join(MNIST_FILES)
        ways.append(
            f"put the four original files ({files}; .gz or uncompressed) in a folder and pass local_dir=<that folder>"
        )
        for path in SYSTEM_DIRS.get(name, []):
            ways.append(f"put them in the system folder {path} (used when search_system=True)")
    if offer_download:
        ways.append(f"pass download=True to let torchvision download it into {root}")
    return ways


def _not_found_error(name: str, root: Path, looked: list[str], download: bool) -> DatasetError:
    """DatasetError listing every place looked in (and the download) and how to provide the data."""
    lines = [f"{PRETTY_NAMES[name]} not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    lines.append("Provide it in one of these ways:")
    lines += [f"  - {way}" for way in _how_to_provide(name, root, offer_download=not download)]
    return DatasetError("\n".join(lines))


def _download_or_note(name: str, root: Path, download: bool, looked: list[str]) -> bool:
    """Try torchvision's download if allowed; True on success, else note why in ``looked``."""
    if not download:
        looked.append("download: not allowed (download=False)")
        return False
    failure = _download_with_torchvision(name, root)
    if failure is None:
        return True
    looked.append(f"download into {root}: failed ({failure})")
    return False


def _damaged_error(name: str, path: Path, problem: str, root: Path) -> DatasetError:
    """DatasetError naming a damaged file and how to replace it."""
    ways = "\n".join(f"  - {way}" for way in _how_to_provide(name, root))
    return DatasetError(
        f"{PRETTY_NAMES[name]} file {path} is damaged: {problem}.\n"
        f"Replace it with an intact copy of the original file (delete it first if it is under {root}), e.g.:\n"
        f"{ways}"
    )


# ------------------------------------------------------- MNIST-like datasets


def _mnist_raw_dir(name: str, root: Path) -> Path:
    """torchvision's raw folder for an MNIST-like dataset, e.g. <root>/FashionMNIST/raw."""
    return root / TORCHVISION_CLASSES[name].__name__ / "raw"


def _missing_mnist_files(folder: Path, allow_gz: bool) -> list[str]:
    """Names of the four original files not present in ``folder``."""

    def present(stem: str) -> bool:
        return (folder / stem).is_file() or (allow_gz and (folder / f"{stem}.gz").is_file())

    return [stem for stem in MNIST_FILES if not present(stem)]


def _mnist_source_file(folder: Path, stem: str) -> Path:
    """The uncompressed file ``stem`` in ``folder`` if present, else ``stem.gz``."""
    plain = folder / stem
    return plain if plain.is_file() else folder / f"{stem}.gz"


def _ensure_mnist_like_prepared(name: str, root: Path, source_dirs, download: bool) -> None:
    """Make sure the four verified raw files are in torchvision's layout under ``root``."""
    raw_dir = _mnist_raw_dir(name, root)
    missing = _missing_mnist_files(raw_dir, allow_gz=False)
    if not missing:
        _verify_mnist_raw_dir(name, raw_dir, root)
        return
    looked = [f"{raw_dir} (prepared files under root): missing {', '.join(missing)}"]
    for folder, label in source_dirs:
        missing = _missing_mnist_files(folder, allow_gz=True)
        if not missing:
            _copy_mnist_files(name, folder, raw_dir, root)
            return
        looked.append(f"{folder} ({label}): {_describe_missing(folder, missing)}")
    if _download_or_note(name, root, download, looked):
        _verify_mnist_raw_dir(name, raw_dir, root)
        return
    raise _not_found_error(name, root, looked, download)


def _describe_missing(folder: Path, missing: list[str]) -> str:
    """Short description of what a source folder lacks."""
    if not folder.is_dir():
        return "no such folder"
    return "missing " + ", ".join(missing)


def _copy_mnist_files(name: str, source: Path, raw_dir: Path, root: Path) -> None:
    """Copy (decompressing .gz) the four files from ``source`` into ``raw_dir``, verified."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES:
        _copy_one_mnist_file(name, _mnist_source_file(source, stem), raw_dir / stem, root)


def _copy_one_mnist_file(name: str, source: Path, target: Path, root: Path) -> None:
    """Write ``source`` (maybe gzipped) to ``target`` atomically, verified before the rename."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as out:
            _copy_decompressed(name, source, out, root)
        _verify_idx_file(name, temp, target.name, shown_path=source, root=root)

    atomic_write(target, write)


def _copy_decompressed(name: str, source: Path, out, root: Path) -> None:
    """Copy ``source`` into the open binary file ``out``, gunzipping if it ends in .gz."""
    if source.suffix != ".gz":
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return
    try:
        with gzip.open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except GZIP_ERRORS as error:
        problem = f"truncated or corrupt gzip file ({type(error).__name__}: {error})"
        raise _damaged_error(name, source, problem, root) from error


def _verify_mnist_raw_dir(name: str, raw_dir: Path, root: Path) -> None:
    """Verify the four raw files torchvision will read from ``raw_dir``."""
    _reject_legacy_cache(name, raw_dir.parent, root)
    for stem in MNIST_FILES:
        _verify_idx_file(name, raw_dir / stem, stem, shown_path=raw_dir / stem, root=root)


def _reject_legacy_cache(name: str, dataset_dir: Path, root: Path) -> None:
    """Refuse torchvision's legacy processed/*.pt cache, which it would load instead of raw files."""
    processed = dataset_dir / "processed"
    if (processed / "training.pt").is_file() and (processed / "test.pt").is_file():
        raise DatasetError(
            f"{processed} holds a legacy torchvision cache (training.pt, test.pt) that torchvision "
            f"would load instead of the verified raw files; delete {processed} and load again "
            f"(the raw files under {root} are used then)."
        )


def _expected_idx_header(name: str, stem: str) -> tuple[int, ...]:
    """(magic, count[, rows, cols]) expected for the IDX file ``stem``."""
    is_images, is_train = MNIST_FILES[stem]
    count = TRAIN_COUNT[name] if is_train else TEST_COUNT[name]
    if is_images:
        return (IDX_IMAGES_MAGIC, count, MNIST_SIDE, MNIST_SIDE)
    return (IDX_LABELS_MAGIC, count)


def _read_idx_header(path: Path, n_fields: int) -> tuple[int, ...] | None:
    """The first ``n_fields`` big-endian uint32 fields of ``path``, or None if too short."""
    with open(path, "rb") as file:
        raw = file.read(4 * n_fields)
    if len(raw) < 4 * n_fields:
        return None
    return struct.unpack(f">{n_fields}I", raw)


def _verify_idx_file(name: str, path: Path, stem: str, *, shown_path: Path, root: Path) -> None:
    """Check header, size and (Fashion-MNIST) content checksum of IDX file ``path``."""
    expected = _expected_idx_header(name, stem)
    header = _read_idx_header(path, len(expected))
    if header != expected:
        problem = f"IDX header is {header}, expected (magic, count[, rows, cols]) = {expected}"
        raise _damaged_error(name, shown_path, problem, root)
    item_size = MNIST_SIDE * MNIST_SIDE if len(expected) == 4 else 1
    expected_size = 4 * len(expected) + expected[1] * item_size
    size = path.stat().st_size
    if size != expected_size:
        problem = f"size is {size} bytes, the header implies {expected_size}"
        raise _damaged_error(name, shown_path, problem, root)
    _verify_content_checksum(name, path, stem, shown_path, root)


def _verify_content_checksum(name: str, path: Path, stem: str, shown_path: Path, root: Path) -> None:
    """Compare the SHA-256 of ``path`` with the recorded one, where one is recorded."""
    expected = CONTENT_SHA256[name].get(stem)
    if expected is None:
        return
    actual = _sha256_of(path)
    if actual != expected:
        problem = f"SHA-256 of the uncompressed content is {actual}, expected {expected}"
        raise _damaged_error(name, shown_path, problem, root)


def _sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_mnist_like(name: str, root: Path) -> ImageData:
    """Load verified MNIST-like raw files through torchvision as float NCHW tensors."""
    train = _torchvision_dataset(name, root, train=True)
    test = _torchvision_dataset(name, root, train=False)
    data = ImageData(
        name=name,
        train_images=_uint8_to_float(train.data.unsqueeze(1)),
        train_labels=torch.as_tensor(train.targets, dtype=torch.int64),
        test_images=_uint8_to_float(test.data.unsqueeze(1)),
        test_labels=torch.as_tensor(test.targets, dtype=torch.int64),
    )
    _check_loaded_shapes(data, (1, MNIST_SIDE, MNIST_SIDE), root)
    return data


# ------------------------------------------------------------------ CIFAR-10


def _ensure_cifar_prepared(root: Path, source_dirs, download: bool) -> None:
    """Make sure ``<root>/cifar-10-batches-py`` exists, copied from a source if need be."""
    prepared = root / CIFAR_FOLDER
    if prepared.is_dir():
        return
    looked = [f"{prepared} (prepared files under root): no such folder"]
    for folder, label in source_dirs:
        if (folder / CIFAR_FOLDER).is_dir():
            _install_cifar(root, folder / CIFAR_FOLDER, _copy_cifar_folder)
            return
        if (folder / CIFAR_ARCHIVE).is_file():
            _install_cifar(root, folder / CIFAR_ARCHIVE, _safe_extract_tar)
            return
        looked.append(f"{folder} ({label}): {_describe_missing_cifar(folder)}")
    if _download_or_note("cifar10", root, download, looked):
        return
    raise _not_found_error("cifar10", root, looked, download)


def _describe_missing_cifar(folder: Path) -> str:
    """Short description of what a CIFAR-10 source folder lacks."""
    if not folder.is_dir():
        return "no such folder"
    return f"neither {CIFAR_FOLDER}/ nor {CIFAR_ARCHIVE}"


def _copy_cifar_folder(source: Path, temp: Path, root: Path) -> None:
    """Copy an extracted cifar-10-batches-py folder as the (temporary) folder ``temp``."""
    shutil.copytree(source, temp)


def _install_cifar(root: Path, source: Path, fill_folder) -> None:
    """Create ``<root>/cifar-10-batches-py`` atomically: ``fill_folder(source, temp, root)``
    creates it as a temporary folder, which is verified, then renamed into place."""

    def write(temp: Path) -> None:
        fill_folder(source, temp, root)
        _verify_cifar_folder(temp, source, root)

    atomic_write(root / CIFAR_FOLDER, write)


def _verify_cifar_folder(folder: Path, source: Path, root: Path) -> None:
    """Check every batch file's md5 with torchvision's recorded checksums."""
    cls = tv_datasets.CIFAR10
    expected = [
        *cls.train_list,
        *cls.test_list,
        [cls.meta["filename"], cls.meta["md5"]],
    ]
    for filename, md5 in expected:
        if not check_integrity(str(folder / filename), md5):
            problem = f"{filename} is missing or its md5 is not torchvision's {md5}"
            raise _damaged_error("cifar10", source, problem, root)


def _safe_extract_tar(archive: Path, temp: Path, root: Path) -> None:
    """Extract the cifar-10-batches-py folder of ``archive`` as the (temporary) folder
    ``temp`` (other members are skipped), rejecting absolute, '..' and non-regular members."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_tar_member(member, archive, root)
            inside = []
            for member in members:  # cifar-10-batches-py/<name> is extracted as temp/<name>
                parts = Path(member.name).parts
                if len(parts) > 1 and parts[0] == CIFAR_FOLDER:
                    member.name = Path(*parts[1:]).as_posix()
                    inside.append(member)
            temp.mkdir()
            if hasattr(tarfile, "data_filter"):
                tar.extractall(temp, members=inside, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(temp, members=inside)  # noqa: S202 - members filtered above
    except (tarfile.TarError, *GZIP_ERRORS) as error:
        problem = f"cannot be extracted ({type(error).__name__}: {error})"
        raise _damaged_error("cifar10", archive, problem, root) from error


def _check_tar_member(member: tarfile.TarInfo, archive: Path, root: Path) -> None:
    """Raise DatasetError for a tar member that could write outside the target folder."""
    path = Path(member.name)
    unsafe = path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir())
    if unsafe:
        problem = f"unsafe archive member {member.name!r} (absolute path, '..' or not a regular file)"
        raise _damaged_error("cifar10", archive, problem, root)


def _load_cifar(root: Path) -> ImageData:
    """Load CIFAR-10 through torchvision (which checks md5s) as float NCHW tensors."""
    train = _torchvision_dataset("cifar10", root, train=True)
    test = _torchvision_dataset("cifar10", root, train=False)
    data = ImageData(
        name="cifar10",
        train_images=_uint8_to_float(torch.from_numpy(train.data).permute(0, 3, 1, 2)),
        train_labels=torch.as_tensor(train.targets, dtype=torch.int64),
        test_images=_uint8_to_float(torch.from_numpy(test.data).permute(0, 3, 1, 2)),
        test_labels=torch.as_tensor(test.targets, dtype=torch.int64),
    )
    _check_loaded_shapes(data, (3, 32, 32), root)
    return data


# ------------------------------------------------------------------- shared


def _torchvision_dataset(name: str, root: Path, *, train: bool):
    """Instantiate torchvision's class for ``name`` without downloading."""
    cls = TORCHVISION_CLASSES[name]
    try:
        return cls(str(root), train=train, download=False)
    except LOAD_ERRORS as error:
        place = root / CIFAR_FOLDER if name == "cifar10" else _mnist_raw_dir(name, root)
        problem = f"torchvision could not read it ({type(error).__name__}: {error})"
        raise _damaged_error(name, place, problem, root) from error


def _download_with_torchvision(name: str, root: Path) -> str | None:
    """Let torchvision download and extract dataset ``name`` into ``root``.

    Returns None on success, else a one-line description of the failure.
    """
    cls = TORCHVISION_CLASSES[name]
    try:
        cls(str(root), train=True, download=True)
    except (RuntimeError, URLError, OSError) as error:
        return f"{type(error).__name__}: " + " ".join(str(error).split())
    return None


def _uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW (any strides) -> contiguous float32 in [0, 1], the values ToTensor gives.

    One allocation: the strided copy and the cast happen together, then an in-place divide.
    """
    floats = torch.empty(tuple(images.shape), dtype=torch.float32)
    floats.copy_(images)
    return floats.div_(255)


def _check_loaded_shapes(data: ImageData, image_shape: tuple[int, int, int], root: Path) -> None:
    """Raise DatasetError unless image and label tensors have the expected shapes."""
    expected = {
        "train_images": (TRAIN_COUNT[data.name], *image_shape),
        "train_labels": (TRAIN_COUNT[data.name],),
        "test_images": (TEST_COUNT[data.name], *image_shape),
        "test_labels": (TEST_COUNT[data.name],),
    }
    for field, shape in expected.items():
        actual = tuple(getattr(data, field).shape)
        if actual != shape:
            raise DatasetError(
                f"{PRETTY_NAMES[data.name]} loaded from {root} has {field} of shape {actual}, "
                f"expected {shape}; the files there are damaged or not the original ones. "
                "Delete them and load again from an intact copy."
            )
