"""The training machinery (minigan.train, minigan.images) on a tiny GAN that trains in
milliseconds: the model contract and check_model, the run directory, checkpoints, exact
resume, Ctrl-C, NaN handling, sampling."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import minigan
from minigan import images as imaging
from minigan import nn, optim
from minigan import train as train_module
from minigan.data import Dataset
from minigan.train import (
    GAN,
    RunExistsError,
    TrainingDiverged,
    check_model,
    checkpoints,
    copy_module,
    discriminator_loss,
    ema_update,
    generator_loss,
    latest_checkpoint,
    load_model,
    mean_sigmoid,
    train,
)

SHAPE = (1, 8, 8)


@dataclasses.dataclass
class ToyConfig:
    latent_dim: int = dataclasses.field(default=8, metadata={"help": "size of z"})
    hidden: int = dataclasses.field(default=16, metadata={"help": "hidden units"})
    lr: float = dataclasses.field(default=1e-2, metadata={"help": "Adam learning rate"})
    ema: float = dataclasses.field(default=0.9, metadata={"help": "EMA decay (0 = off)"})


class ToyGAN(GAN):
    """A tiny MLP GAN for 1x8x8 images (BatchNorm, Dropout and an EMA generator, so that
    buffers, the global random state and the EMA all matter for exact resume)."""

    Config = ToyConfig
    train_defaults = {"epochs": 2, "batch_size": 8}

    def __init__(self, config=None, image_shape=SHAPE, device="cpu"):
        super().__init__(config, image_shape, device)
        c = self.config
        n = int(np.prod(self.image_shape))
        self.generator = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden),
            nn.BatchNorm1d(c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, n),
            nn.Tanh(),
            nn.Unflatten(1, self.image_shape),
        )
        self.discriminator = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n, c.hidden),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.2),
            nn.Linear(c.hidden, 1),
            nn.Flatten(0),
        )
        self.generator_ema = copy_module(self.generator) if c.ema else None
        self.opt_g = optim.Adam(self.generator.parameters(), lr=c.lr, betas=(0.5, 0.999))
        self.opt_d = optim.Adam(self.discriminator.parameters(), lr=c.lr, betas=(0.5, 0.999))

    def networks(self):
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.generator_ema is not None:
            nets["generator_ema"] = self.generator_ema
        return nets

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def train_step(self, real):
        z = minigan.randn(real.shape[0], *self.latent_shape)
        fake = self.generator(z)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        loss_g = generator_loss(self.discriminator(fake))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        if self.generator_ema is not None:
            ema_update(self.generator_ema, self.generator, self.config.ema)
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": mean_sigmoid(real_logits),
            "d_fake": mean_sigmoid(fake_logits),
        }


def toy_data(n: int = 40) -> Dataset:
    """Bright squares at random places on a dark background."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, *SHAPE), np.uint8)
    for img in images:
        r, c = rng.integers(0, 5, 2)
        img[0, r : r + 3, c : c + 3] = 255
    return Dataset(images, name="toy")


def run_toy(tmp: Path, name: str = "run", model: type = None, **kw):
    options = dict(data=toy_data(), epochs=3, batch_size=8, progress=False, log=lambda m: None)
    options.update(kw)
    return train(model or ToyGAN, out=tmp / name, **options)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> list[tuple]:
    return [
        (r["step"], r["loss_d"], r["loss_g"], r["d_real"], r["d_fake"]) for r in read_metrics(run)
    ]


# --------------------------------------------------------------------------- helpers
def test_losses_match_torch_bce_with_smoothing():
    real = np.array([2.0, -1.0, 0.5], np.float32)
    fake = np.array([-3.0, 0.2, 1.0], np.float32)
    ours_d = discriminator_loss(minigan.tensor(real), minigan.tensor(fake), 0.1).item()
    ours_g = generator_loss(minigan.tensor(fake)).item()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    tr, tf = torch.tensor(real), torch.tensor(fake)
    want_d = bce(tr, torch.full_like(tr, 0.9)) + bce(tf, torch.zeros_like(tf))
    assert ours_d == pytest.approx(want_d.item(), rel=1e-6)
    assert ours_g == pytest.approx(bce(tf, torch.ones_like(tf)).item(), rel=1e-6)
    mean_d = torch.sigmoid(tf).mean().item()
    assert float(mean_sigmoid(minigan.tensor(fake))) == pytest.approx(mean_d)


def test_ema_update_moves_parameters_and_copies_buffers():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = copy_module(model)
    assert all(not p.requires_grad for p in ema.parameters())
    before = ema[0].weight.numpy().copy()
    model[0].weight.data += 1.0
    model[1].running_mean.data[...] = 5.0
    ema_update(ema, model, decay=0.9)
    np.testing.assert_allclose(ema[0].weight.numpy(), before + 0.1, rtol=1e-5)
    assert np.all(ema[1].running_mean.numpy() == 5.0)


# --------------------------------------------------------------------------- check_model
def test_check_model_accepts_a_correct_model():
    check_model(ToyGAN, image_shape=SHAPE)
    check_model(ToyGAN, image_shape=SHAPE, config={"ema": 0.0})


class NoMetrics(ToyGAN):
    """Declares a metric for the progress bar that its step does not return."""

    progress_metrics = ("loss_d", "loss_g", "d_real", "d_fake")

    def train_step(self, real):
        metrics = super().train_step(real)
        del metrics["d_fake"]
        return metrics


class OutOfRange(ToyGAN):
    def sample(self, z):
        return super().sample(z) * 2


class ForgetsOptimizers(ToyGAN):
    def state_dict(self):
        state = super().state_dict()
        state["optimizers"] = {}
        return state

    def load_state_dict(self, state):
        for name, net in self.networks().items():
            net.load_state_dict(state["networks"][name])


class GlobalRandomLatents(ToyGAN):
    def latents(self, seeds):
        return minigan.randn(len(list(seeds)), *self.latent_shape)


class NoHelp(ToyGAN):
    @dataclasses.dataclass
    class Config(ToyConfig):
        extra: int = 3


@pytest.mark.parametrize(
    "cls, words",
    [
        (NoMetrics, ["NoMetrics", "d_fake"]),
        (OutOfRange, ["OutOfRange", "sample", "[-1, 1]"]),
        (ForgetsOptimizers, ["ForgetsOptimizers", "optimizer"]),
        (GlobalRandomLatents, ["GlobalRandomLatents", "determinism"]),
        (NoHelp, ["NoHelp", "extra", "help"]),
    ],
)
def test_check_model_names_the_broken_property(cls, words):
    with pytest.raises(AssertionError) as info:
        check_model(cls, image_shape=SHAPE)
    for word in words:
        assert word in str(info.value)


def test_latents_depend_only_on_the_seed():
    model = ToyGAN()
    a = model.latents([3, 4]).numpy()
    minigan.manual_seed(999)
    b = model.latents([4, 3]).numpy()
    assert np.array_equal(a, b[::-1])
    assert not np.array_equal(a[0], a[1])


def test_config_from_dict_rejects_unknown_keys():
    assert ToyGAN({"hidden": 4}).config.hidden == 4
    with pytest.raises(TypeError, match="unknown config option.*hiden"):
        ToyGAN({"hiden": 4})


# --------------------------------------------------------------------------- run directory
def test_run_directory_has_everything(tmp_path):
    result = run_toy(tmp_path, num_samples=16)
    run = result.run_dir
    assert result.steps == 3 * 5 and result.epochs_done == 3 and not result.interrupted
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "test_train:ToyGAN" and "model_class" not in config  # a label
    assert config["config"] == {"latent_dim": 8, "hidden": 16, "lr": 0.01, "ema": 0.9}
    assert config["training"]["epochs"] == 3 and config["training"]["batch_size"] == 8
    assert config["data"]["name"] == "toy" and config["data"]["size"] == 40
    assert config["minigan_version"] == minigan.__version__
    # checkpoints: one per epoch, the last 3 kept, the latest has the highest step
    assert [p.name for p in checkpoints(run)] == [
        "step-000005.safetensors",
        "step-000010.safetensors",
        "step-000015.safetensors",
    ]
    assert (
        latest_checkpoint(run) == result.checkpoint == run / "checkpoints/step-000015.safetensors"
    )
    meta = minigan.serialization.read_metadata(result.checkpoint)
    assert meta["step"] == "15" and json.loads(meta["config"])["hidden"] == 16
    # samples per epoch (and before training), GIF of them, real samples
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        f"epoch-{e:03d}.png" for e in range(4)
    ]
    grid = imaging.read_image(run / "samples/epoch-003.png")
    assert grid.shape == (4 * 10 + 2, 4 * 10 + 2, 3)  # 16 tiles of 8x8, 2 px apart
    png_meta = imaging.read_metadata(run / "samples/epoch-003.png")
    assert png_meta["epoch"] == "3" and png_meta["step"] == "15" and png_meta["seeds"] == "0-15"
    gif = np.asarray(__import__("imageio.v3").v3.imread(run / "progress.gif", index=None))
    assert gif.shape[0] == 4 and gif.shape[1:3] == grid.shape[:2]
    assert imaging.read_image(run / "real_samples.png").shape == grid.shape
    # metrics: one line per step with the losses, D outputs and speed
    records = read_metrics(run)
    assert [r["step"] for r in records] == list(range(1, 16))
    assert records[7]["epoch"] == 2 and records[7]["batch"] == 3
    for r in records:
        assert {"loss_d", "loss_g", "d_real", "d_fake", "seconds", "images_per_s"} <= set(r)
        assert 0 <= r["d_real"] <= 1 and r["images_per_s"] > 0
    chart = imaging.read_image(run / "losses.png")  # drawn by matplotlib: 2 subplots
    assert chart.ndim == 3 and chart.shape[:2] == (round(100 * (1.2 + 2.4 * 2)), 800)


def test_metrics_read_back_every_n_steps_still_log_every_step(tmp_path):
    seen = []
    result = run_toy(tmp_path, log_every=4, callbacks=[lambda r, m: seen.append(r["step"])])
    records = read_metrics(result.run_dir)
    assert [r["step"] for r in records] == seen == list(range(1, 16))
    assert records[6]["epoch"] == 2 and records[6]["batch"] == 2
    assert all(r["seconds"] > 0 and 0 <= r["d_fake"] <= 1 for r in records)
    assert records[-1] == {**result.last_metrics}
    with pytest.raises(ValueError, match="log_every"):
        run_toy(tmp_path, "bad", log_every=0)


class LogsAWeight(ToyGAN):
    """Reports a view of a weight that the next step changes in place."""

    def train_step(self, real):
        metrics = super().train_step(real)
        metrics["bias0"] = self.discriminator[1].bias.detach()[:1].reshape(())  # a view
        return metrics


def test_deferred_metrics_are_the_values_of_their_step(tmp_path):
    logged = {}
    for every in (1, 4):
        result = run_toy(tmp_path, f"run{every}", LogsAWeight, epochs=2, log_every=every)
        logged[every] = [r["bias0"] for r in read_metrics(result.run_dir)]
    assert logged[4] == logged[1] and len(set(logged[1])) == len(logged[1])


def test_a_callback_stop_during_a_deferred_read_logs_every_step_and_saves(tmp_path):
    seen = []

    def stop_at_two(record, model):
        seen.append(record["step"])
        if record["step"] == 2:
            raise KeyboardInterrupt

    result = run_toy(tmp_path, log_every=4, callbacks=[stop_at_two])
    assert result.interrupted and result.steps == 4 and seen == [1, 2, 3, 4]
    assert [r["step"] for r in read_metrics(result.run_dir)] == [1, 2, 3, 4]
    assert latest_checkpoint(result.run_dir).name == "step-000004.safetensors"


def test_read_metrics_reads_tensors_and_floats():
    steps = [{"a": minigan.tensor(1.5), "b": 2}, {"a": minigan.tensor([0.25]), "b": 3.0}]
    assert train_module.read_metrics(steps) == [{"a": 1.5, "b": 2.0}, {"a": 0.25, "b": 3.0}]
    assert train_module.read_metrics([]) == []


def test_keep_last_n_checkpoints(tmp_path):
    result = run_toy(tmp_path, epochs=2, checkpoint_every=3, keep=2)
    assert [p.name for p in checkpoints(result.run_dir)] == [
        "step-000009.safetensors",
        "step-000010.safetensors",
    ]


def test_existing_run_is_not_overwritten(tmp_path):
    run_toy(tmp_path, epochs=1)
    with pytest.raises(RunExistsError, match="resume.*force"):
        run_toy(tmp_path, epochs=1)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run_toy(tmp_path, epochs=1, seed=5, force=True)
    assert result.steps == 5 and (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "run/config.json").read_text())["training"]["seed"] == 5


# --------------------------------------------------------------------------- resume
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    straight = run_toy(tmp_path, "straight")

    def stop_at_7(record, model):
        if record["step"] == 7:
            raise KeyboardInterrupt

    messages = []
    part = run_toy(tmp_path, "resumed", callbacks=[stop_at_7], log=messages.append)
    assert part.interrupted and part.steps == 7
    assert part.checkpoint.name == "step-000007.safetensors"
    assert "--resume" in messages[-1] and "step 7" in messages[-1]
    ckpt = minigan.load(part.checkpoint)
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 2)  # mid-epoch: epoch 2, after 2 batches

    resumed = run_toy(tmp_path, "resumed", resume=True)
    assert resumed.steps == straight.steps == 15
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")  # bit for bit
    a, _ = load_model(tmp_path / "straight", cls=ToyGAN)
    b, _ = load_model(tmp_path / "resumed", cls=ToyGAN)
    for (name, x), (_, y) in zip(
        a.state_dict()["networks"].items(), b.state_dict()["networks"].items()
    ):
        for key in x:
            assert np.array_equal(x[key].numpy(), y[key].numpy()), f"{name}.{key}"
    assert straight.steps == resumed.steps


def test_resume_after_max_steps_and_with_more_epochs(tmp_path):
    straight = run_toy(tmp_path, "straight", epochs=4)
    first = run_toy(tmp_path, "more", epochs=2, max_steps=4)
    assert first.steps == 4 and not first.interrupted
    second = run_toy(tmp_path, "more", epochs=2, resume=True)  # to the end of epoch 2
    assert second.steps == 10
    third = run_toy(tmp_path, "more", epochs=4, resume=True)  # then two more epochs
    assert third.steps == straight.steps == 20
    assert losses(tmp_path / "more") == losses(tmp_path / "straight")
    config = json.loads((tmp_path / "more/config.json").read_text())
    assert config["training"]["epochs"] == 4


def test_resume_keeps_the_runs_settings(tmp_path):
    run_toy(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="batch_size=4"):
        run_toy(tmp_path, epochs=1, batch_size=4, resume=True)
    with pytest.raises(ValueError, match="hidden=32"):
        run_toy(tmp_path, epochs=1, config={"hidden": 32}, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run_toy(tmp_path, "empty", resume=True)


def test_real_ctrl_c_finishes_the_step_and_saves(tmp_path):
    if os.name != "posix":
        pytest.skip("needs POSIX signals")

    def press_ctrl_c(record, model):
        if record["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # handled: the loop stops after this step

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where a shell started us in the
    # background, Python's default_int_handler otherwise
    result = run_toy(tmp_path, callbacks=[press_ctrl_c])
    assert result.interrupted and result.steps == 3
    assert latest_checkpoint(result.run_dir).name == "step-000003.safetensors"
    assert signal.getsignal(signal.SIGINT) is before  # restored


# --------------------------------------------------------------------------- NaN
class Explodes(ToyGAN):
    def train_step(self, real):
        if self.steps == 6:  # the 7th step: poison D, as a diverging run would
            self.discriminator[1].weight.data[...] = np.nan
        return super().train_step(real)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("log_every, checkpoint_every", [(None, 2), (5, 2), (5, None)])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, log_every, checkpoint_every
):
    """Also when the metrics are read back only every 5 steps: the NaN of step 7 is found
    at step 8's checkpoint, which is then not written (or at the end of epoch 2, step 10,
    with step 6 still logged)."""
    with pytest.raises(TrainingDiverged) as info:
        train(
            Explodes,
            toy_data(),
            out=tmp_path / "run",
            epochs=3,
            batch_size=8,
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            progress=False,
            log=lambda m: None,
        )
    message = str(info.value)
    good = f"step-{6 if checkpoint_every else 5:06d}"  # without checkpoint_every: epoch 1's end
    assert "step 7" in message and "nan" in message and good in message
    assert info.value.step == 7
    assert latest_checkpoint(tmp_path / "run").name == f"{good}.safetensors"
    model, ckpt = load_model(tmp_path / "run", cls=Explodes)
    for state in model.state_dict()["networks"].values():
        assert all(np.all(np.isfinite(v.numpy())) for v in state.values())
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == list(range(1, 7))
    assert (tmp_path / "run/losses.png").exists()


# --------------------------------------------------------------------------- sampling
def test_load_model_samples_like_the_trained_model(tmp_path):
    result = run_toy(tmp_path, epochs=1)
    model, ckpt = load_model(result.run_dir, cls=ToyGAN)
    same, _ = load_model(result.checkpoint, cls=ToyGAN)
    assert ckpt["step"] == 5 and isinstance(model, ToyGAN)
    x = model.generate([0, 5, 9])
    assert x.shape == (3, *SHAPE) and x.dtype == np.float32
    assert np.array_equal(x, same.generate([0, 5, 9]))
    assert np.allclose(x[1], model.generate([5])[0], atol=1e-6)
    # the run's last sample grid shows exactly these fixed-seed samples
    grid = imaging.read_image(result.run_dir / "samples/epoch-001.png")
    tile = imaging.to_uint8(model.generate([0]))[0]
    assert np.array_equal(grid[2:10, 2:10], np.repeat(tile, 3, axis=-1))


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        load_model(tmp_path / "empty")
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_model(bad)
    plain = tmp_path / "weights.safetensors"
    minigan.save({"w": np.zeros(2, np.float32)}, plain)
    with pytest.raises(ValueError, match="not a minigan training checkpoint"):
        load_model(plain)


# --------------------------------------------------------------------------- images
def test_make_grid_layout_and_gray_to_rgb():
    tiles = np.stack([np.full((1, 2, 2), v, np.float32) for v in (-1.0, 1.0, 0.0)])
    grid = imaging.make_grid(tiles, nrow=2, padding=1, pad_value=7)
    assert grid.shape == (7, 7, 3)
    assert grid[1, 1].tolist() == [0, 0, 0] and grid[1, 4].tolist() == [255, 255, 255]
    assert grid[4, 1].tolist() == [128, 128, 128] and grid[0, 0].tolist() == [7, 7, 7]
    assert grid[4, 4].tolist() == [7, 7, 7]  # the empty fourth cell


# --------------------------------------------------------------------------- ending with an error
def test_a_failing_losses_plot_does_not_hide_the_training_error(tmp_path, monkeypatch):
    from minigan.run import Run

    calls = []

    class Breaks(ToyGAN):
        def train_step(self, real):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("the model's own error")
            return super().train_step(real)

    def broken_plot(self, *args, **kw):
        raise OSError("disk full while drawing")

    monkeypatch.setattr(Run, "write_losses", broken_plot)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="the model's own error"):
            run_toy(tmp_path, model=Breaks)
    assert [str(w.message) for w in caught if "losses.png" in str(w.message)] == [
        "losses.png was not drawn: OSError: disk full while drawing"
    ]
    # without an error in flight (the plot drawn at an epoch's end), the plotting error is
    # the error
    with warnings.catch_warnings(record=True), pytest.raises(OSError, match="disk full"):
        warnings.simplefilter("always")
        run_toy(tmp_path, name="second", model=ToyGAN)


def test_no_progress_reaches_the_dataset_plugins_bars(tmp_path, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    image = np.zeros((8, 8, 3), np.uint8)
    for i in range(520):  # the folder reader draws its bar from 500 files
        image[..., 0] = i % 256
        imaging.save_image(folder / f"{i:04d}.png", image)
    capsys.readouterr()
    run_toy(tmp_path, name="quiet", data=str(folder), data_options={"resolution": 8}, epochs=1,
            max_steps=1)  # fmt: skip
    assert "reading many" not in capsys.readouterr().err
    from minigan.data import open_dataset

    open_dataset(str(folder), resolution=8)  # outside a --no-progress run the bar shows
    assert "reading many" in capsys.readouterr().err


# --------------------------------------------------------------------------- conditional
@dataclasses.dataclass
class LabelledConfig(ToyConfig):
    num_classes: int | None = dataclasses.field(
        default=None, metadata={"help": "classes (None: the data's)"}
    )


class LabelRecorder(ToyGAN):
    """ToyGAN that is conditional in name only: it records the labels of every batch."""

    Config = LabelledConfig
    seen: list[np.ndarray] = []

    def train_step(self, real, labels=None):
        if labels is not None:
            LabelRecorder.seen.append(np.asarray(labels.numpy()))
        return super().train_step(real)


class PairRecorder(LabelRecorder):
    batches_per_step = 2

    def train_step(self, real, labels=None):
        assert isinstance(real, list) and isinstance(labels, list) and len(labels) == 2
        LabelRecorder.seen.extend(np.asarray(y.numpy()) for y in labels)
        return ToyGAN.train_step(self, real[0])


@pytest.mark.parametrize("cls", [LabelRecorder, PairRecorder])
def test_a_conditional_model_gets_each_batchs_labels(tmp_path, cls):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, *SHAPE), dtype=np.uint8)
    labels = rng.integers(0, 5, 40)
    data = Dataset(images, labels, name="toy", classes=list("abcde"))
    LabelRecorder.seen = []
    train(cls, data, out=tmp_path / "run", epochs=1, batch_size=8, progress=False)
    expected = [y.numpy() for _, y in minigan.data.DataLoader(data, 8, seed=0, drop_last=True)]
    k = cls.batches_per_step  # an incomplete last group of batches is not drawn
    assert len(expected) == 5 and len(LabelRecorder.seen) == 5 // k * k
    for got, want in zip(LabelRecorder.seen, expected):
        np.testing.assert_array_equal(got, want)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["num_classes"] == 5 and config["classes"] == list("abcde")
    assert load_model(tmp_path / "run", cls=cls)[0].num_classes == 5


def test_num_classes_is_checked_against_the_data(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, *SHAPE), dtype=np.uint8)
    unlabelled = Dataset(images, name="plain")
    result = train(ToyGAN, unlabelled, out=tmp_path / "toy", epochs=1, batch_size=8, progress=False)
    assert result.steps == 2  # a Config without num_classes: unconditional, nothing checked
    with pytest.raises(ValueError, match="num_classes is 2, but dataset 'plain' has no labels"):
        train(LabelRecorder, unlabelled, out=tmp_path / "a", config={"num_classes": 2},
              epochs=1, batch_size=8, progress=False)  # fmt: skip
    labelled = Dataset(images, rng.integers(0, 4, 16), name="four")
    with pytest.raises(ValueError, match="num_classes is 2, but dataset 'four' has labels up"):
        train(LabelRecorder, labelled, out=tmp_path / "b", config={"num_classes": 2},
              epochs=1, batch_size=8, progress=False)  # fmt: skip
    negative = Dataset(images, np.arange(16) % 3 - 1, name="minus")
    with pytest.raises(ValueError, match="dataset 'minus' has negative labels"):
        train(LabelRecorder, negative, out=tmp_path / "m", epochs=1, batch_size=8, progress=False)
    LabelRecorder.seen = []
    train(LabelRecorder, unlabelled, out=tmp_path / "c", epochs=1, batch_size=8, progress=False)
    assert LabelRecorder.seen == []  # None on unlabelled data means 0: unconditional
