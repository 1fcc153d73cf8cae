"""A Ctrl-C while `gfe.io` writes a file says what happened and leaves the previous file."""

import pytest
import torch

from gfe import io


class InterruptedHandle:
    """A file handle whose third write is interrupted, as a Ctrl-C inside torch.save would be."""

    def __init__(self, handle):
        self.handle, self.writes = handle, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


def interrupted_torch_save(obj):
    def write(tmp):
        with open(tmp, "wb") as handle:
            torch.save(obj, InterruptedHandle(handle))

    return write


def test_an_interrupted_checkpoint_write_names_the_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    io.atomic_torch_save({"step": 200, "w": torch.ones(3)}, path)
    before = path.read_bytes()
    # torch's zip writer turns the interrupt into "RuntimeError: ... unexpected pos"
    with pytest.raises(
        KeyboardInterrupt, match=f"interrupted while writing {path}; the previous checkpoint.pt is intact"
    ):
        io.atomic_write(path, interrupted_torch_save({"step": 400, "w": torch.randn(100_000)}))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left


def test_an_interrupted_first_write_says_nothing_was_written(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt, match="no model.pt was written"):
        io.atomic_write(path, interrupted_torch_save({"w": torch.randn(100_000)}))
    assert not any(tmp_path.iterdir())


def test_a_plain_interrupt_of_a_text_write_is_named_too(tmp_path):
    path = tmp_path / "table.csv"
    io.write_text("a\n1\n", path)

    def write(tmp):
        tmp.write_text("a\n")
        raise KeyboardInterrupt

    with pytest.raises(
        KeyboardInterrupt, match="interrupted while writing .*table.csv; the previous table.csv is intact"
    ):
        io.atomic_write(path, write)
    assert path.read_text() == "a\n1\n"
