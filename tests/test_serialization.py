"""minigan.save / minigan.load: round-trips, interoperability, atomic writes, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import minigan
from minigan import nn, optim
from minigan import serialization as ser
from minigan.serialization import load, read_metadata, save

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_]


def sample(dtype, shape=(3, 4), seed=0) -> np.ndarray:
    values = np.asarray(np.random.default_rng(seed).standard_normal(shape) * 10)
    return np.asarray(values > 0) if dtype is np.bool_ else values.astype(dtype)


def assert_equal_structure(a, b) -> None:
    """Deep equality: same container types, same keys in the same order, equal arrays
    (with equal dtypes and shapes), equal scalars."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert type(key) is type(next(k for k in b if k == key))
            assert_equal_structure(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_equal_structure(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_round_trip_and_plain_safetensors_names(dtype, tmp_path):
    path = tmp_path / "weights.safetensors"
    tensors = {
        "b.weight": sample(dtype),
        "a.scalar": sample(dtype, ()),
        "empty": sample(dtype, (0, 2)),
    }
    save(tensors, path)
    assert_equal_structure(load(path), tensors)
    plain = safetensors.numpy.load_file(str(path))  # an ordinary safetensors file
    assert set(plain) == set(tensors)
    for key, value in tensors.items():
        np.testing.assert_array_equal(plain[key], value)
        assert plain[key].dtype == value.dtype


def test_state_dict_round_trip_into_torch(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Conv2d(1, 2, 3))
    path = tmp_path / "model.safetensors"
    save(model.state_dict(), path, metadata={"model": "demo"})

    loaded = load(path)
    assert list(loaded) == list(model.state_dict())  # order kept, not sorted
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Conv2d(1, 2, 3))
    fresh.load_state_dict(loaded)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy())

    theirs = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Conv2d(1, 2, 3)
    )
    theirs.load_state_dict(safetensors.torch.load_file(str(path)))
    np.testing.assert_array_equal(theirs[2].weight.detach().numpy(), model[2].weight.numpy())
    assert read_metadata(path) == {"model": "demo"}


def test_nested_checkpoint_round_trip(tmp_path):
    generator = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    generator(minigan.tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    opt.step()
    checkpoint = {
        "generator": {k: v.numpy() for k, v in generator.state_dict().items()},
        "optimizer": opt.state_dict(),
        "step": 1200,
        "config": {"lr": 2e-4, "name": "dcgan", "flags": [True, False, None], "nan": float("nan")},
        "shape": (3, 64, 64),
        "history": [{"loss": 0.5}, {"loss": np.float32(0.25)}],
        "empty": {"list": [], "dict": {}, "tuple": ()},
        7: "an int key",
    }
    path = tmp_path / "ckpt.safetensors"
    save(checkpoint, path)
    loaded = load(path)
    expected = dict(checkpoint)
    expected["optimizer"] = {
        "state": {i: {k: v for k, v in s.items()} for i, s in opt.state_dict()["state"].items()},
        "param_groups": opt.state_dict()["param_groups"],
    }
    assert_equal_structure(loaded, expected)
    assert list(loaded["optimizer"]["state"]) == [0, 1, 2, 3]  # int keys come back as ints
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.5, 0.999)
    assert type(loaded["history"][1]["loss"]) is np.float32

    names = set(safetensors.numpy.load_file(str(path)))
    assert {
        "generator.0.weight",
        "optimizer.state.0.exp_avg",
        "optimizer.state.3.exp_avg_sq",
    } <= names


def test_minigan_tensors_are_saved_as_arrays(tmp_path):
    x = minigan.tensor([[1.0, 2.0]], requires_grad=True)
    save({"x": x, "nested": [x]}, tmp_path / "t.safetensors")
    loaded = load(tmp_path / "t.safetensors")
    assert isinstance(loaded["x"], np.ndarray) and loaded["x"].dtype == np.float32
    np.testing.assert_array_equal(loaded["nested"][0], [[1.0, 2.0]])


def test_non_contiguous_arrays_are_saved_correctly(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # a transposed view
    save({"a": a, "b": a[::2]}, tmp_path / "v.safetensors")
    loaded = load(tmp_path / "v.safetensors")
    np.testing.assert_array_equal(loaded["a"], a)
    np.testing.assert_array_equal(loaded["b"], a[::2])


def test_colliding_flattened_names_stay_distinct(tmp_path):
    obj = {"a.b": np.zeros(1), "a": {"b": np.ones(1)}}
    save(obj, tmp_path / "c.safetensors")
    assert_equal_structure(load(tmp_path / "c.safetensors"), obj)


def test_foreign_safetensors_file_loads_flat(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file(
        {"w": torch.ones(2, 2), "b": torch.zeros(2)}, str(path), metadata={"format": "pt"}
    )
    loaded = load(path)
    assert set(loaded) == {"w", "b"} and loaded["w"].dtype == np.float32
    assert read_metadata(path) == {"format": "pt"}


def test_metadata_is_stored_and_structure_is_in_the_header(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.zeros(2)}, path, metadata={"model": "dcgan", "config": json.dumps({"z": 100})})
    assert read_metadata(path) == {"model": "dcgan", "config": '{"z": 100}'}
    with safetensors.safe_open(str(path), framework="np") as f:
        header = f.metadata()
    assert header[ser.FORMAT_KEY] == ser.FORMAT_VERSION
    assert json.loads(header[ser.STRUCTURE_KEY]) == {"dict": [["w", {"tensor": "w"}]]}


# --------------------------------------------------------------------------- atomicity


def _leftovers(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_failure_during_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    save({"w": np.zeros(1000, dtype=np.float32)}, path)
    before = path.read_bytes()

    def crash(fd: int) -> None:  # the bytes are written to the temp file; the disk "fails"
        assert os.fstat(fd).st_size > 4000
        raise OSError("simulated disk failure")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated disk failure"):
        save({"w": np.ones(1000, dtype=np.float32)}, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)["w"], np.zeros(1000))


def test_interrupted_write_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    path = tmp_path / "new.safetensors"
    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the data, then dies (e.g. KeyboardInterrupt mid-write)."""

        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", HalfWriter)
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.ones(100)}, path)
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_failure_while_flattening_does_not_touch_the_file(tmp_path):
    path = tmp_path / "keep.safetensors"
    save({"w": np.zeros(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save({"w": np.ones(2), "bad": object()}, path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- errors


def test_unsupported_leaf_names_its_key_path(tmp_path):
    with pytest.raises(
        TypeError, match=r"cannot save a builtins\.object at obj\['opt'\]\['state'\]\[0\]"
    ):
        save({"opt": {"state": [object()]}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match=r"dict keys must be str or int.*at obj\['a'\]"):
        save({"a": {1.5: np.zeros(1)}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match=r"unsupported array dtype complex64 at obj\['z'\]"):
        save({"z": np.zeros(2, dtype=np.complex64)}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save({}, tmp_path / "x.safetensors", metadata={"step": 3})
    with pytest.raises(ValueError, match="reserved"):
        save({}, tmp_path / "x.safetensors", metadata={ser.STRUCTURE_KEY: "{}"})
    assert not (tmp_path / "x.safetensors").exists()


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load(missing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match=r"junk\.safetensors' is not a valid safetensors file"):
        load(junk)
    with pytest.raises(ValueError, match="junk.safetensors"):
        read_metadata(junk)

    truncated = tmp_path / "truncated.safetensors"
    save({"w": np.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        load(truncated)
