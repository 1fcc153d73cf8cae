"""Tests for gfe.data: dataset loading, verification, and the index splits."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tv_datasets
from torchvision import transforms

from gfe import data
from gfe.data import DatasetError, authors_split, load_dataset, nested_subset

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION_SYSTEM_DIR.is_dir(),
    reason=f"{FASHION_SYSTEM_DIR} absent (apt-get install dataset-fashion-mnist)",
)
MNIST_STEMS = list(data.MNIST_FILES)


# ------------------------------------------------------------------ helpers


def idx_bytes(array: np.ndarray, magic: int, count: int | None = None) -> bytes:
    """An IDX file: big-endian magic, dims (first dim may be overridden), uint8 payload."""
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write_file(path: Path, payload: bytes, *, gz_level: int | None = None) -> Path:
    """Write ``payload`` to ``path`` (gzip-compressed to ``path``.gz if gz_level given)."""
    if gz_level is None:
        path.write_bytes(payload)
        return path
    gz_path = path.with_name(path.name + ".gz")
    gz_path.write_bytes(gzip.compress(payload, compresslevel=gz_level))
    return gz_path


def leftover_partials(root: Path) -> list[Path]:
    """Temp files/dirs our loader might have left behind under ``root`` (gfe.io.atomic_write's
    temporaries are named .<name>.<pid>.tmp<suffix>)."""
    return [path for path in root.rglob("*") if path.name.endswith((".part", ".tmp")) or ".tmp." in path.name]


def md5_of(path: Path) -> str:
    """Hex md5 of a file, as torchvision's check_integrity computes it."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------------ Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    """A root into which the system Fashion-MNIST copy has been loaded once."""
    if not FASHION_SYSTEM_DIR.is_dir():
        pytest.skip(f"{FASHION_SYSTEM_DIR} absent (apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("fashion_root")
    loaded = load_dataset("fashion_mnist", root)
    return root, loaded


@needs_fashion
def test_fashion_mnist_from_system_copy(fashion_root):
    root, loaded = fashion_root
    assert loaded.name == "fashion_mnist"
    assert loaded.train_images.shape == (60000, 1, 28, 28)
    assert loaded.test_images.shape == (10000, 1, 28, 28)
    assert loaded.image_shape == (1, 28, 28)
    for images in (loaded.train_images, loaded.test_images):
        assert images.dtype == torch.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
    for labels, count in ((loaded.train_labels, 60000), (loaded.test_labels, 10000)):
        assert labels.dtype == torch.int64 and labels.shape == (count,)
        assert set(labels.unique().tolist()) == set(range(10))
    assert leftover_partials(root) == []


@needs_fashion
def test_fashion_mnist_matches_torchvision_totensor(fashion_root):
    root, loaded = fashion_root
    reference_train = tv_datasets.FashionMNIST(str(root), train=True, transform=transforms.ToTensor())
    reference_test = tv_datasets.FashionMNIST(str(root), train=False, transform=transforms.ToTensor())
    for index in (0, 31337, 59999):
        image, label = reference_train[index]
        assert torch.equal(loaded.train_images[index], image)
        assert loaded.train_labels[index].item() == label
    image, label = reference_test[9999]
    assert torch.equal(loaded.test_images[9999], image)
    assert loaded.test_labels[9999].item() == label


@needs_fashion
def test_fashion_mnist_second_load_uses_prepared_files(fashion_root, monkeypatch):
    root, loaded = fashion_root
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion_mnist", [])
    again = load_dataset("fashion_mnist", root, search_system=False)
    assert torch.equal(again.train_images, loaded.train_images)
    assert torch.equal(again.test_labels, loaded.test_labels)


@needs_fashion
def test_truncated_gz_is_reported_and_leaves_nothing(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    for stem in MNIST_STEMS:
        (local / f"{stem}.gz").symlink_to(FASHION_SYSTEM_DIR / f"{stem}.gz")
    (local / "train-images-idx3-ubyte.gz").unlink()
    original = (FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").read_bytes()
    (local / "train-images-idx3-ubyte.gz").write_bytes(original[:5000])
    root = tmp_path / "root"
    with pytest.raises(DatasetError) as error:
        load_dataset("fashion_mnist", root, local_dir=local, search_system=False)
    message = str(error.value)
    assert str(local / "train-images-idx3-ubyte.gz") in message
    assert "damaged" in message
    assert not (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert leftover_partials(root) == []


@needs_fashion
def test_wrong_checksum_is_reported_and_leaves_nothing(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    for stem in MNIST_STEMS[1:]:
        (local / f"{stem}.gz").symlink_to(FASHION_SYSTEM_DIR / f"{stem}.gz")
    content = bytearray(gzip.decompress((FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").read_bytes()))
    content[1000] ^= 0xFF  # a pixel byte, after the 16-byte header
    (local / "train-images-idx3-ubyte").write_bytes(bytes(content))
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="SHA-256") as error:
        load_dataset("fashion_mnist", root, local_dir=local, search_system=False)
    assert str(local / "train-images-idx3-ubyte") in str(error.value)
    assert not (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert leftover_partials(root) == []


@needs_fashion
def test_damaged_prepared_file_is_reported(tmp_path):
    root = tmp_path / "root"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in MNIST_STEMS:
        (raw / stem).write_bytes(gzip.decompress((FASHION_SYSTEM_DIR / f"{stem}.gz").read_bytes()))
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="size") as error:
        load_dataset("fashion_mnist", root, search_system=False)
    assert str(labels) in str(error.value)


# -------------------------------------------------------------- not found


def not_found_message(name: str, root: Path, **kwargs) -> str:
    """The DatasetError message of a load that must fail."""
    with pytest.raises(DatasetError) as error:
        load_dataset(name, root, **kwargs)
    return str(error.value)


@pytest.mark.parametrize("name", data.DATASET_NAMES)
def test_nothing_anywhere_lists_places_looked_in(tmp_path, name):
    local = tmp_path / "empty"
    local.mkdir()
    root = tmp_path / "root"
    message = not_found_message(name, root, local_dir=local, search_system=False, download=False)
    assert str(root) in message
    assert f"{local} (local_dir)" in message
    assert "download=False" in message and "download=True" in message
    assert "local_dir=" in message
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in message
    assert not root.exists()


def test_system_dirs_are_listed_when_searched(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-system-copy"
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", [missing])
    message = not_found_message("mnist", tmp_path / "root")
    assert f"{missing} (system copy): no such folder" in message


def test_failed_download_is_listed_with_places_looked_in(tmp_path, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: offline")

    monkeypatch.setattr(tv_datasets.MNIST, "download", offline)
    root = tmp_path / "root"
    message = not_found_message("mnist", root, search_system=False, download=True)
    assert f"download into {root}: failed (RuntimeError: Error downloading" in message
    assert str(root / "MNIST" / "raw") in message
    assert "download=True" not in message


def test_unknown_name_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("svhn", tmp_path)


# ------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    """Random MNIST-format arrays written as a mix of .gz and uncompressed IDX files."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 60000, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10000, dtype=np.uint8),
    }
    local = tmp_path_factory.mktemp("mnist_local")
    write_file(
        local / "train-images-idx3-ubyte",
        idx_bytes(arrays["train-images-idx3-ubyte"], 2051),
        gz_level=0,
    )
    write_file(
        local / "t10k-images-idx3-ubyte",
        idx_bytes(arrays["t10k-images-idx3-ubyte"], 2051),
        gz_level=1,
    )
    write_file(
        local / "train-labels-idx1-ubyte",
        idx_bytes(arrays["train-labels-idx1-ubyte"], 2049),
    )
    write_file(
        local / "t10k-labels-idx1-ubyte",
        idx_bytes(arrays["t10k-labels-idx1-ubyte"], 2049),
        gz_level=1,
    )
    return local, arrays


def test_mnist_round_trip_from_local_dir(fake_mnist, tmp_path):
    local, arrays = fake_mnist
    root = tmp_path / "root"
    loaded = load_dataset("mnist", root, local_dir=local, search_system=False)
    assert loaded.train_images.shape == (60000, 1, 28, 28)
    assert loaded.test_images.shape == (10000, 1, 28, 28)
    expected_train = torch.from_numpy(arrays["train-images-idx3-ubyte"]).unsqueeze(1).float() / 255
    assert torch.equal(loaded.train_images, expected_train)
    assert torch.equal(
        loaded.test_images[:5, 0],
        torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:5]).float() / 255,
    )
    assert torch.equal(loaded.train_labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long())
    assert torch.equal(loaded.test_labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(MNIST_STEMS)
    assert leftover_partials(root) == []

    again = load_dataset("mnist", root, search_system=False)  # prepared files only
    assert torch.equal(again.test_labels, loaded.test_labels)

    processed = root / "MNIST" / "processed"
    processed.mkdir()
    for legacy in ("training.pt", "test.pt"):
        (processed / legacy).write_bytes(b"stale")
    with pytest.raises(DatasetError, match="legacy"):
        load_dataset("mnist", root, search_system=False)


@pytest.mark.parametrize(
    ("stem", "payload", "problem"),
    [
        (
            "train-images-idx3-ubyte",
            idx_bytes(np.zeros((59999, 28, 28), np.uint8), 2051),
            "header",
        ),
        (
            "train-images-idx3-ubyte",
            idx_bytes(np.zeros((60000, 28, 27), np.uint8), 2051),
            "header",
        ),
        (
            "train-images-idx3-ubyte",
            idx_bytes(np.zeros((2, 28, 28), np.uint8), 2051, count=60000),
            "size",
        ),
        (
            "train-labels-idx1-ubyte",
            idx_bytes(np.zeros(60000, np.uint8), 2051),
            "header",
        ),
    ],
    ids=["wrong-count", "wrong-shape", "truncated", "wrong-magic"],
)
def test_bad_idx_file_is_reported(fake_mnist, tmp_path, stem, payload, problem):
    good_local, _ = fake_mnist
    local = tmp_path / "local"
    local.mkdir()
    for path in good_local.iterdir():
        if not path.name.startswith(stem):
            (local / path.name).symlink_to(path)
    write_file(local / stem, payload)
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match=problem) as error:
        load_dataset("mnist", root, local_dir=local, search_system=False)
    assert str(local / stem) in str(error.value)
    assert not (root / "MNIST" / "raw" / stem).exists()
    assert leftover_partials(root) == []


# ---------------------------------------------------------------- CIFAR-10


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    """cifar-10-batches-py in the original pickle format, plus its tar.gz archive.

    Images are mostly zero (so the archive compresses fast) with random pixels in
    the first 20 images of each batch; labels are random.
    """
    rng = np.random.default_rng(1)
    local = tmp_path_factory.mktemp("cifar_local")
    folder = local / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = np.zeros((10000, 3072), dtype=np.uint8)
        images[:20] = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 10000).tolist()
        # torchvision unpickles with encoding="latin1": the original Python 2 pickles'
        # str keys arrive as str, so Python 3 copies must use str keys too.
        entry = {"batch_label": name, "data": images, "labels": labels, "filenames": []}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = (images, labels)
    label_names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    meta = {"label_names": label_names, "num_cases_per_batch": 10000, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    archive_dir = tmp_path_factory.mktemp("cifar_archive")
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return local, archive_dir, batches


@pytest.fixture
def cifar_md5s_of_fake(fake_cifar, monkeypatch):
    """Point torchvision's recorded CIFAR-10 md5s at the fake files."""
    folder = fake_cifar[0] / "cifar-10-batches-py"
    cls = tv_datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5_of(folder / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5_of(folder / n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5_of(folder / "batches.meta")})


def check_cifar_round_trip(loaded, batches):
    assert loaded.train_images.shape == (50000, 3, 32, 32)
    assert loaded.test_images.shape == (10000, 3, 32, 32)
    assert loaded.image_shape == (3, 32, 32)
    assert loaded.train_images.dtype == torch.float32
    assert loaded.train_labels.dtype == torch.int64
    images_2, labels_2 = batches["data_batch_2"]
    row = images_2[7]  # original layout: 1024 red, 1024 green, 1024 blue, row-major
    image = loaded.train_images[10000 + 7]
    for channel, y, x in ((0, 0, 0), (1, 5, 17), (2, 31, 30)):
        assert image[channel, y, x].item() == pytest.approx(row[channel * 1024 + y * 32 + x] / 255)
    assert torch.equal(image, torch.from_numpy(row.reshape(3, 32, 32)).float() / 255)
    assert loaded.train_labels[10000 + 7].item() == labels_2[7]
    test_images, test_labels = batches["test_batch"]
    assert torch.equal(
        loaded.test_images[:20],
        torch.from_numpy(test_images[:20].reshape(-1, 3, 32, 32)).float() / 255,
    )
    assert loaded.test_labels.tolist() == test_labels


def test_cifar_from_extracted_folder(fake_cifar, cifar_md5s_of_fake, tmp_path):
    local, _, batches = fake_cifar
    root = tmp_path / "root"
    loaded = load_dataset("cifar10", root, local_dir=local, search_system=False)
    check_cifar_round_trip(loaded, batches)
    assert leftover_partials(root) == []
    # torchvision keeps CIFAR-10 as HWC uint8 and applies ToTensor to a PIL image
    hwc = batches["data_batch_2"][0][7].reshape(3, 32, 32).transpose(1, 2, 0)
    assert torch.equal(transforms.ToTensor()(Image.fromarray(hwc)), loaded.train_images[10007])
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_cifar_from_tar_gz(fake_cifar, cifar_md5s_of_fake, tmp_path):
    _, archive_dir, batches = fake_cifar
    root = tmp_path / "root"
    loaded = load_dataset("cifar10", root, local_dir=archive_dir, search_system=False)
    check_cifar_round_trip(loaded, batches)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_cifar_wrong_md5_is_reported_and_leaves_nothing(fake_cifar, tmp_path):
    local, _, _ = fake_cifar  # torchvision's real md5s do not match the fake files
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="md5") as error:
        load_dataset("cifar10", root, local_dir=local, search_system=False)
    assert str(local / "cifar-10-batches-py") in str(error.value)
    assert list(root.iterdir()) == []


def test_cifar_damaged_prepared_folder_is_reported(tmp_path):
    root = tmp_path / "root"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DatasetError, match="damaged") as error:
        load_dataset("cifar10", root, search_system=False)
    assert str(root / "cifar-10-batches-py") in str(error.value)


@pytest.mark.parametrize("member_name", ["../evil", "/tmp/evil-absolute", "cifar-10-batches-py/../../evil"])
def test_cifar_tar_with_unsafe_member_is_rejected(tmp_path, member_name):
    local = tmp_path / "local"
    local.mkdir()
    with tarfile.open(local / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo(member_name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    root = tmp_path / "deep" / "root"
    with pytest.raises(DatasetError, match="unsafe") as error:
        load_dataset("cifar10", root, local_dir=local, search_system=False)
    assert str(local / "cifar-10-python.tar.gz") in str(error.value)
    assert not list((tmp_path / "deep").rglob("*evil*"))
    assert list(root.iterdir()) == []


def test_cifar_tar_with_symlink_is_rejected(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    with tarfile.open(local / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DatasetError, match="unsafe"):
        load_dataset("cifar10", tmp_path / "root", local_dir=local, search_system=False)


def test_cifar_truncated_tar_gz_is_reported(fake_cifar, tmp_path):
    _, archive_dir, _ = fake_cifar
    local = tmp_path / "local"
    local.mkdir()
    with open(archive_dir / "cifar-10-python.tar.gz", "rb") as source:
        (local / "cifar-10-python.tar.gz").write_bytes(source.read(20000))
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="damaged") as error:
        load_dataset("cifar10", root, local_dir=local, search_system=False)
    assert str(local / "cifar-10-python.tar.gz") in str(error.value)
    assert list(root.iterdir()) == []


# ------------------------------------------------------------------ splits


def test_authors_split_matches_authors_rule():
    train_idx, val_idx = authors_split()
    allidx = np.arange(50000)
    np.random.RandomState(seed=0).shuffle(allidx)
    assert train_idx.dtype == torch.int64 and val_idx.dtype == torch.int64
    assert train_idx.tolist() == allidx[:49992].tolist()
    assert val_idx.tolist() == allidx[49992:].tolist()
    assert len(train_idx) == 49992 and len(val_idx) == 8
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(50000))


def test_authors_split_other_sizes():
    train_idx, val_idx = authors_split(n_val=100, n_pool=1000)
    allidx = np.arange(1000)
    np.random.RandomState(seed=0).shuffle(allidx)
    assert val_idx.tolist() == allidx[900:].tolist()
    assert len(train_idx) == 900


@pytest.mark.parametrize(("n_val", "n_pool"), [(0, 100), (-1, 100), (100, 100), (101, 100)])
def test_authors_split_rejects_bad_n_val(n_val, n_pool):
    with pytest.raises(ValueError, match="n_val"):
        authors_split(n_val=n_val, n_pool=n_pool)


def test_nested_subset_is_deterministic_nested_and_seed_dependent():
    train_idx, _ = authors_split()
    small = nested_subset(train_idx, 100, seed=0)
    large = nested_subset(train_idx, 1000, seed=0)
    assert small.dtype == torch.int64 and len(small) == 100 and len(large) == 1000
    assert torch.equal(small, nested_subset(train_idx, 100, seed=0))
    assert torch.equal(large[:100], small)
    assert set(small.tolist()) <= set(large.tolist())
    assert set(large.tolist()) <= set(train_idx.tolist())
    assert len(set(large.tolist())) == 1000
    assert not torch.equal(small, nested_subset(train_idx, 100, seed=1))


def test_nested_subset_full_size_is_a_permutation():
    train_idx, _ = authors_split(n_val=10, n_pool=200)
    full = nested_subset(train_idx, len(train_idx), seed=3)
    assert sorted(full.tolist()) == sorted(train_idx.tolist())


@pytest.mark.parametrize("n", [0, -5, 191])
def test_nested_subset_rejects_bad_n(n):
    train_idx, _ = authors_split(n_val=10, n_pool=200)
    with pytest.raises(ValueError, match=r"n must satisfy 0 < n <= len\(train_idx\)=190"):
        nested_subset(train_idx, n, seed=0)
