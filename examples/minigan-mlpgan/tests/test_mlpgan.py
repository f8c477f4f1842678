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


# ------------------------------------------------- wgan-gp, the checkers dataset, posterize
from click.testing import CliRunner  # noqa: E402
from minigan_mlpgan.process import Posterize  # noqa: E402
from minigan_mlpgan.wgan import WGANGP  # noqa: E402

from minigan.cli import main  # noqa: E402  (the `minigan` click group, for CliRunner)


def test_wgan_gp_follows_the_contract():
    """check_model hands it a list of 5 batches (batches_per_step) and checks that the
    metrics it declares in progress_metrics / plot_groups are returned."""
    check_model(WGANGP, image_shape=(1, 8, 8), config={"hidden": 16})


def test_checkers_dataset_opens_by_name_and_is_conformed():
    from minigan.data import open_dataset

    with registered_plugin(minigan_mlpgan, "mlpgan-under-test"):
        data = open_dataset("checkers", resolution=12, channels=1, limit=20)
    assert len(data) == 20 and data.shape == (1, 12, 12) and data.name == "checkers"
    images, labels = data[np.arange(20)]
    assert images.min() >= -1 and images.max() <= 1 and labels.max() <= 6


def test_posterize_processor_through_the_cli(tmp_path):
    import imageio.v3 as iio

    gray = np.linspace(0, 255, 64, dtype=np.uint8).reshape(8, 8)  # a grayscale file
    iio.imwrite(tmp_path / "in.png", gray)
    with registered_plugin(minigan_mlpgan, "mlpgan-under-test"):
        result = CliRunner().invoke(
            main,
            [
                "process",
                "posterize",
                str(tmp_path / "in.png"),
                "-o",
                str(tmp_path / "out.png"),
                "--levels",
                "2",
            ],
        )
    assert result.exit_code == 0, result.output
    out = iio.imread(tmp_path / "out.png")
    assert out.shape == (8, 8, 3)  # grayscale arrives as RGB
    np.testing.assert_array_equal(out[..., 0], np.where(gray / 255 >= 0.5, 255, 0))
    assert Posterize(Posterize.Config(levels=2)).metadata() == {"levels": 2}
