"""Tests of the example plugin, written with minigan.testing as a plugin author would."""

import minigan_mlpgan
import numpy as np
from minigan_mlpgan.model import MLPGAN

import minigan
import minigan.train
from minigan.testing import check_model, fake_cuda, fresh_registry, registered_plugin


def test_model_follows_the_contract():
    check_model(MLPGAN, image_shape=(1, 28, 28), config={"hidden": 32})


def test_model_follows_the_contract_on_the_gpu_path():
    """No GPU needed: fake_cuda runs the "cuda" device path on a CPU stand-in for CuPy."""
    with fake_cuda():
        check_model(MLPGAN, image_shape=(1, 28, 28), config={"hidden": 32}, device="cuda")


def test_plugin_registers_the_model():
    registry = fresh_registry()
    assert registry.add_plugin(minigan_mlpgan, "mlpgan")
    assert registry.get("model", "mlpgan") is MLPGAN


def test_registered_model_trains_through_the_public_api(tmp_path):
    from minigan.data import open_dataset
    from minigan.train import train

    with registered_plugin(minigan_mlpgan, "mlpgan-under-test"):
        data = open_dataset("shapes", resolution=16, channels=1, limit=256)
        result = train(
            "mlpgan",
            data,
            epochs=1,
            batch_size=32,
            out=tmp_path / "run",
            config={"hidden": 32},
            progress=False,
        )
    assert result.steps == 256 // 32
    assert np.isfinite(result.last_metrics["loss_d"])
    assert list((tmp_path / "run" / "checkpoints").glob("step-*.safetensors"))
    model, _ = minigan.train.load_model(tmp_path / "run")
    assert model.generate([0, 1]).shape == (2, 1, 16, 16)
