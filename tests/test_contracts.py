"""The plugin author's and trainer's everyday contracts (issue 16): metrics a model chooses
(a WGAN critic without D(x)), several fresh batches per step with exact resume, TensorBoard
logging read back from the event file, losses.png from matplotlib, the processor output
check, and the small API / CLI texts."""

from __future__ import annotations

import dataclasses
import json
import pydoc
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan
from minigan import hookimpl, nn, optim
from minigan.cli import main
from minigan.data import DataLoader, Dataset
from minigan.plots import metric_groups, plot_metrics, smooth
from minigan.processing import ProcessorOutputError, check_output
from minigan.run import Run, RunExistsError
from minigan.testing import check_model, registered_plugin
from minigan.train import GAN, GANConfig, frozen, train
from minigan.trainer import _progress_text

SHAPE = (1, 4, 4)
N_CRITIC = 5


# =========================================================================== a WGAN-GP
@dataclasses.dataclass
class CriticConfig(GANConfig):
    latent_dim: int = dataclasses.field(default=4, metadata={"help": "size of z"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    gp_weight: float = dataclasses.field(default=10.0, metadata={"help": "penalty weight"})


class TinyWGAN(GAN):
    """A WGAN-GP on 1x4x4 images: a critic with raw scores, a gradient penalty (second
    derivatives), 5 fresh critic batches per generator step. It remembers which images it
    was given (each test image's pixels hold its index)."""

    Config = CriticConfig
    train_defaults = {"epochs": 2, "batch_size": 4}
    batches_per_step = N_CRITIC
    progress_metrics = ("wasserstein", "gp")
    plot_groups = {"critic": ("wasserstein", "gp")}

    def __init__(self, config=None, image_shape=SHAPE, device="cpu"):
        super().__init__(config, image_shape, device)
        n = int(np.prod(image_shape))
        self.generator = nn.Sequential(
            nn.Linear(self.config.latent_dim, n), nn.Tanh(), nn.Unflatten(1, image_shape)
        )
        self.critic = nn.Sequential(nn.Flatten(), nn.Linear(n, 8), nn.Tanh(), nn.Linear(8, 1))
        self.opt_g = optim.Adam(self.generator.parameters(), lr=self.config.lr)
        self.opt_d = optim.Adam(self.critic.parameters(), lr=self.config.lr)
        self.seen: list[int] = []

    def networks(self):
        return {"generator": self.generator, "discriminator": self.critic}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def train_step(self, real):
        assert isinstance(real, list) and len(real) == N_CRITIC
        for batch in real:
            ids = np.rint((batch.numpy()[:, 0, 0, 0] + 1) * 127.5).astype(int)
            self.seen.extend(ids.tolist())
            fake = self.generator(minigan.randn(batch.shape[0], 4)).detach()
            wasserstein = self.critic(batch).mean() - self.critic(fake).mean()
            eps = minigan.rand(batch.shape[0], 1, 1, 1)
            x_hat = (eps * batch + (1 - eps) * fake).detach()
            x_hat.requires_grad = True
            (g,) = minigan.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
            gp = (((g * g).reshape(g.shape[0], -1).sum(1) + 1e-12).sqrt() - 1) ** 2
            gp = gp.mean()
            self.update(self.opt_d, -wasserstein + self.config.gp_weight * gp)
        with frozen(self.critic):
            loss_g = -self.critic(self.generator(minigan.randn(real[0].shape[0], 4))).mean()
            self.update(self.opt_g, loss_g)
        return {"loss_g": loss_g.detach(), "wasserstein": wasserstein.detach(), "gp": gp.detach()}


def indexed_data(n: int = 108) -> Dataset:
    """n images whose pixels all hold their index (uint8): 27 batches of 4, so 5 steps of 5
    batches per epoch and 2 batches left over."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, *SHAPE))
    return Dataset(images.copy(), name="indexed")


def run_wgan(tmp: Path, name: str, **options):
    models: list[GAN] = []
    options = {"data": indexed_data(), "progress": False, "log": lambda m: None, **options}
    result = train(TinyWGAN, out=tmp / name, callbacks=[lambda r, m: models.append(m)], **options)
    return result, models[-1] if models else None


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_wgan_follows_the_contract_without_standard_metrics():
    check_model(TinyWGAN, image_shape=SHAPE)


def test_declared_metric_that_a_step_does_not_return_fails_check_model():
    class Forgets(TinyWGAN):
        plot_groups = {"critic": ("wasserstein", "gp", "critic_real")}

    with pytest.raises(AssertionError, match=r"Forgets.*critic_real"):
        check_model(Forgets, image_shape=SHAPE)


def test_d_real_when_returned_must_be_a_probability():
    class Scores(TinyWGAN):
        def train_step(self, real):
            return {**super().train_step(real), "d_real": 3.5}

    with pytest.raises(AssertionError, match=r"d_real=3.5 is not in \[0, 1\]"):
        check_model(Scores, image_shape=SHAPE)


def test_five_batches_per_step_count_in_the_data_position_and_resume_exactly(tmp_path):
    full, model = run_wgan(tmp_path, "full")
    assert full.steps == 2 * 5  # 27 batches an epoch: 5 steps of 5, 2 batches left over
    loader = DataLoader(indexed_data(), 4, shuffle=True, seed=0, drop_last=True)
    expected = [int(i) for e in range(2) for i in loader.order(e)[: 5 * N_CRITIC * 4]]
    assert model.seen == expected  # fresh batches, in the loader's order, none reused
    rows = records(full.run_dir)
    assert [r["batch"] for r in rows] == [5, 10, 15, 20, 25] * 2
    assert all(r["epoch"] == 1 + i // 5 for i, r in enumerate(rows))

    part, first = run_wgan(tmp_path, "part", max_steps=7)  # stops mid-epoch 2
    rest, second = run_wgan(tmp_path, "part", resume=True)
    assert part.steps == 7 and rest.steps == 10 and rest.steps_this_call == 3
    assert first.seen + second.seen == expected
    assert records(rest.run_dir) == [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
        | {k: r2[k] for k in ("seconds", "images_per_s")}
        for r, r2 in zip(rows, records(rest.run_dir))
    ]  # every metric bit-identical (same process, same ops): only the timings differ


def test_too_few_batches_for_one_step_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="TinyWGAN takes 5 batches per step.*only 4"):
        run_wgan(tmp_path, "small", data=indexed_data(16))


def test_wgan_progress_summary_and_plot_show_its_own_metrics(tmp_path, capsys):
    result, _ = run_wgan(tmp_path, "run", epochs=1, progress=True)
    bar = capsys.readouterr().err
    assert "wasserstein=" in bar and "gp=" in bar and "D(x)" not in bar
    assert "loss_g=" not in bar  # not in progress_metrics
    assert result.shown_metrics == ["wasserstein", "gp"]
    summary = result.summary()
    assert summary.startswith("trained 5 steps, 1 epoch in ") and "D(x)" not in summary
    last = records(result.run_dir)[-1]
    assert f"wasserstein={last['wasserstein']:.3f}" in summary

    plotted = Run(result.run_dir).write_losses("tiny", TinyWGAN.plot_groups)
    assert {t: [s.key for s in group] for t, group in plotted.items()} == {
        "critic": ["wasserstein", "gp"],
        "losses": ["loss_g"],
    }
    gp = plotted["critic"][1]
    rows = records(result.run_dir)
    assert gp.steps.tolist() == [1, 2, 3, 4, 5] and gp.values.tolist() == [r["gp"] for r in rows]


def test_progress_text_shows_the_chosen_metrics_with_labels():
    record = {"loss_d": 1.2, "d_real": 0.75, "d_fake": 0.25, "gp": 0.5, "images_per_s": 64.4}
    assert _progress_text(record, ["loss_d", "d_real", "d_fake"]) == (
        "loss_d=1.200 D(x)=0.75 D(G(z))=0.25 64 img/s"
    )
    assert _progress_text(record, ["gp"]) == "gp=0.500 64 img/s"


# =========================================================================== losses.png
def test_loss_plot_groups_smooths_and_uses_a_log_axis_for_wide_ranges(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"step": s, "loss_d": 1 + rng.normal(0, 0.3), "loss_g": 100.0 / s, "d_real": 0.5,
         "d_fake": 0.4, "seconds": 0.1, "images_per_s": 10.0}
        for s in range(1, 201)
    ] + [{"step": 100, "fid": 30.0}, {"step": 200, "fid": 20.0}]  # fmt: skip
    plotted = plot_metrics(tmp_path / "l.png", rows, {"quality": ["fid"]}, title="t")
    assert list(plotted) == ["quality", "losses", "D outputs"]
    (fid,) = plotted["quality"]
    assert fid.steps.tolist() == [100, 200] and fid.values.tolist() == [30.0, 20.0]
    loss_d = plotted["losses"][0]
    raw = np.array([r["loss_d"] for r in rows[:200]])
    np.testing.assert_allclose(loss_d.smoothed, smooth(raw, 1 - 25 / 200))
    assert loss_d.smoothed[50:].std() < 0.5 * raw[50:].std()  # the noise is smoothed
    from minigan.images import read_image

    image = read_image(tmp_path / "l.png")
    assert image.shape[:2] == (round(100 * (1.2 + 2.4 * 3)), 800)
    # the log axis: loss_g falls from 100 to 0.5, over two decades
    from minigan.plots import log_scale

    assert log_scale(plotted["losses"]) and not log_scale(plotted["D outputs"])


def test_smooth_is_a_bias_corrected_moving_average():
    values = np.array([2.0, 4.0, 8.0])
    w = 0.5
    expected = [
        sum(w ** (i - j) * (1 - w) * values[j] for j in range(i + 1)) / (1 - w ** (i + 1))
        for i in range(3)
    ]
    np.testing.assert_allclose(smooth(values, w), expected)


def test_metric_groups_puts_extras_alone_and_never_bookkeeping():
    keys = ["step", "loss_d", "gp", "d_fake", "loss_g", "images_per_s", "epoch"]
    assert metric_groups(keys) == {
        "losses": ["loss_d", "loss_g"],
        "D outputs": ["d_fake"],
        "gp": ["gp"],
    }


def test_matplotlib_is_not_imported_by_minigan_or_its_help():
    import subprocess

    code = (
        "import sys, minigan, minigan.train, minigan.trainer, minigan.run\n"
        "from minigan.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'matplotlib' not in sys.modules and 'tensorboardX' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# =========================================================================== TensorBoard
def test_tensorboard_logs_every_metric_the_samples_and_the_config(tmp_path):
    from minigan.tensorboard import read_events

    result, _ = run_wgan(tmp_path, "tb", epochs=2, max_steps=7, tensorboard=True)
    rest, _ = run_wgan(tmp_path, "tb", resume=True, tensorboard=True)
    events = read_events(rest.run_dir / "tensorboard")
    rows = records(rest.run_dir)
    for key in ("loss_g", "wasserstein", "gp", "seconds", "images_per_s", "epoch"):
        steps, values = zip(*events["scalars"][key])
        assert list(steps) == [r["step"] for r in rows] == list(range(1, 11))
        np.testing.assert_allclose(values, [r[key] for r in rows], rtol=1e-6)  # float32
    assert "step" not in events["scalars"] and "batch" not in events["scalars"]
    assert [s for s, _ in events["images"]["samples"]] == [0, 5, 10]
    assert [s for s, _ in events["images"]["real"]] == [0]
    png = events["images"]["samples"][-1][1]
    import imageio.v3 as iio

    final = iio.imread(rest.run_dir / "samples" / "epoch-002.png")
    np.testing.assert_array_equal(iio.imread(png)[..., :3], final)
    hp = events["hparams"]
    assert hp["model"].endswith("TinyWGAN") and hp["training/batch_size"] == 4
    assert hp["config/gp_weight"] == 10.0 and hp["data/name"] == "indexed"


def test_tensorboard_resume_in_the_same_second_keeps_the_earlier_events(tmp_path, monkeypatch):
    """tensorboardX names an event file by the second it was opened: a resumed call opening
    its file in the same second must not overwrite the earlier call's events."""
    import types

    import tensorboardX.event_file_writer as efw

    from minigan.tensorboard import read_events

    monkeypatch.setattr(efw, "time", types.SimpleNamespace(time=lambda: 1796000000.25))
    run_wgan(tmp_path, "tb", epochs=2, max_steps=7, tensorboard=True)
    rest, _ = run_wgan(tmp_path, "tb", resume=True, tensorboard=True)
    events = read_events(rest.run_dir / "tensorboard")
    assert [s for s, _ in events["scalars"]["gp"]] == list(range(1, 11))
    assert [s for s, _ in events["images"]["samples"]] == [0, 5, 10]


def test_missing_tensorboardx_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'minigan\[tensorboard\]'"):
        run_wgan(tmp_path, "none", tensorboard=True)
    assert not (tmp_path / "none").exists()  # failed before writing anything

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("tiny-wgan", TinyWGAN)

    with registered_plugin(Plugin(), "tiny-wgan-plugin"):
        out = str(tmp_path / "cli")
        done = CliRunner().invoke(main, ["train", "tiny-wgan", "--tensorboard", "--out", out])
    assert done.exit_code == 1 and "Traceback" not in done.output
    (line,) = done.output.strip().splitlines()
    assert line.startswith("Error: TensorBoard logging needs tensorboardX") and "pip" in line


# =========================================================================== processors
def ok_image() -> np.ndarray:
    return np.full((4, 5, 3), 0.5, np.float32)


@pytest.mark.parametrize(
    "result, words",
    [
        (None, ["returned None"]),
        (ok_image() * 255, ["0-255", "divide by 255"]),
        (np.where(np.arange(60).reshape(4, 5, 3) == 7, np.nan, 0.5), ["NaN", "1 of 60"]),
        (ok_image().transpose(2, 0, 1), ["(3, 4, 5)", "channels-first"]),
        (ok_image()[None], ["(1, 4, 5, 3)", "H×W×3"]),
        (ok_image()[:0], ["empty", "(0, 5, 3)"]),
        ((ok_image() * 255).astype(np.uint8), ["dtype uint8", "float"]),
        ([[0.5]], ["list", "NumPy array"]),
        (ok_image() - 0.7, ["[-0.2", "expected [0, 1]"]),
    ],
)
def test_processor_output_errors_name_the_plugin_and_the_fault(result, words):
    with pytest.raises(ProcessorOutputError) as info:
        check_output(result, "invert", "minigan-invert")
    message = str(info.value)
    assert message.startswith("processor 'invert' (plugin 'minigan-invert'): ")
    for word in words:
        assert word in message


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.floats(-1 / 512, 1 + 1 / 512, allow_nan=False),
)
def test_processor_output_within_half_a_grey_level_is_clipped(h, w, value):
    out = check_output(np.full((h, w, 3), value, np.float64), "x")
    assert out.dtype == np.float32 and out.shape == (h, w, 3)
    assert out.min() == out.max() == np.float32(min(max(value, 0.0), 1.0))


class BadProcessor:
    """Returns values in [0, 255] (a classic)."""

    @dataclasses.dataclass
    class Config:
        gain: float = dataclasses.field(default=255.0, metadata={"help": "scale"})

    def __init__(self, config):
        self.config = config

    def process(self, image):
        assert image.shape[2] == 3 and image.dtype == np.float32  # gray arrives as RGB
        return image * self.config.gain

    def metadata(self):
        return {}


def test_cli_rejects_bad_processor_output_naming_plugin_and_file(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "gray.png", np.full((3, 3), 128, np.uint8))

    class Plugin:
        @hookimpl
        def register_processors(self, register):
            register("times255", BadProcessor)

    with registered_plugin(Plugin(), "bad-plugin"):
        src, dst = str(tmp_path / "gray.png"), str(tmp_path / "out.png")
        done = CliRunner().invoke(main, ["process", "times255", src, "-o", dst])
        good = CliRunner().invoke(main, ["process", "times255", src, "-o", dst, "--gain", "1"])
    assert done.exit_code == 1 and "Traceback" not in done.output
    (line,) = done.output.strip().splitlines()
    assert "gray.png" in line and "'times255' (plugin 'bad-plugin')" in line and "0-255" in line
    assert good.exit_code == 0, good.output
    assert iio.imread(dst).shape == (3, 3, 3)


class GrayProcessor:
    """Returns a gray (or RGBA) result: the luminance, as the old contract's H×W×C allowed."""

    @dataclasses.dataclass
    class Config:
        layout: str = dataclasses.field(default="hw", metadata={"help": "hw, hw1 or rgba"})

    def __init__(self, config):
        self.config = config

    def process(self, image):
        gray = image.mean(axis=2, dtype=np.float64)  # float64: legitimate too
        if self.config.layout == "hw1":
            return gray[..., None]
        if self.config.layout == "rgba":
            return np.concatenate([image, np.full(gray.shape + (1,), 0.5, np.float32)], 2)
        return gray

    def metadata(self):
        return {}


@pytest.mark.parametrize("layout, shape", [("hw", (3, 4)), ("hw1", (3, 4)), ("rgba", (3, 4, 4))])
def test_cli_writes_gray_and_rgba_processor_results_as_such(tmp_path, layout, shape):
    import imageio.v3 as iio

    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 255  # red: luminance by mean = 85
    iio.imwrite(tmp_path / "red.png", rgb)

    class Plugin:
        @hookimpl
        def register_processors(self, register):
            register("gray", GrayProcessor)

    with registered_plugin(Plugin(), "gray-plugin"):
        src, dst = str(tmp_path / "red.png"), str(tmp_path / "out.png")
        done = CliRunner().invoke(main, ["process", "gray", src, "-o", dst, "--layout", layout])
    assert done.exit_code == 0, done.output
    out = iio.imread(dst)
    assert out.shape == shape
    if layout == "rgba":
        assert out[..., :3].tolist() == rgb.tolist() and (out[..., 3] == 128).all()
    else:
        assert (out == 85).all()


# =========================================================================== datasets
def test_dataset_factory_contract_open_dataset_conforms_what_it_returns():
    from minigan.data import open_dataset

    calls = []

    def plain(seed=0, limit=None):  # takes only what it needs; ignores limit
        """Plain grey squares."""
        calls.append({"seed": seed, "limit": limit})
        return Dataset(np.full((10, 3, 6, 6), 100, np.uint8), name="plain")

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("plain", plain)

    with registered_plugin(Plugin(), "plain-plugin"):
        data = open_dataset("plain", resolution=8, channels=1, limit=4, seed=3)
        listing = CliRunner().invoke(main, ["datasets"]).output
    assert calls == [{"seed": 3, "limit": 4}]  # only the options it accepts
    assert data.shape == (1, 8, 8) and len(data) == 4  # open_dataset applied the rest
    assert "plain" in listing and "Plain grey squares." in listing


# =========================================================================== API and CLI text
def test_rand_and_friends_have_real_signatures_and_docs():
    for fn in (minigan.rand, minigan.randn, minigan.zeros, minigan.ones):
        text = pydoc.render_doc(fn, renderer=pydoc.plaintext)
        assert f"{fn.__name__}(*size" in text and "make(" not in text
        assert "device" in text and fn.__doc__.strip()


def test_frozen_is_public():
    import minigan.train

    assert "frozen" in minigan.train.__all__ and minigan.train.frozen is frozen
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "frozen(" in readme and "minigan.cli:main" in readme


def test_run_exists_error_speaks_api_or_cli(tmp_path):
    run_wgan(tmp_path, "run", epochs=1)
    with pytest.raises(RunExistsError) as info:
        run_wgan(tmp_path, "run", epochs=1)
    assert "resume=True" in str(info.value) and "--resume" not in str(info.value)

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("tiny-wgan", TinyWGAN)

    with registered_plugin(Plugin(), "tiny-wgan-plugin"):
        out = str(tmp_path / "run")
        done = CliRunner().invoke(main, ["train", "tiny-wgan", "--out", out])
    assert done.exit_code == 1 and "--resume" in done.output and "--force" in done.output
    assert "resume=True" not in done.output


def test_summaries_count_one_epoch_and_resumed_runs_say_both(tmp_path):
    one, _ = run_wgan(tmp_path, "one", epochs=1)
    assert one.summary().startswith("trained 5 steps, 1 epoch in ")
    messages: list[str] = []
    run_wgan(tmp_path, "one", epochs=1, resume=True, log=messages.append)
    assert any("already trained 1 epoch;" in m for m in messages)

    run_wgan(tmp_path, "two", epochs=2, max_steps=7)
    rest, _ = run_wgan(tmp_path, "two", epochs=2, resume=True)
    text = rest.summary()
    assert text.startswith("trained 3 steps in ") and "(run total: 10 steps, 2 epochs, " in text
    assert rest.seconds_total >= rest.seconds


def test_help_texts_have_no_rest_markup_and_explain_defaults():
    for args in (["datasets", "--help"], ["process", "deepdream", "--help"]):
        out = CliRunner().invoke(main, args).output
        assert "``" not in out and ":class:" not in out, args
    dream = " ".join(CliRunner().invoke(main, ["dream", "--help"]).output.split())
    assert "--guide TEXT" in dream and "[default: none: amplify what the network sees" in dream


def test_sample_outdir_names_the_files_written(tmp_path):
    outdir = str(tmp_path / "d") + "/"

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("tiny-wgan", TinyWGAN)

    with registered_plugin(Plugin(), "tiny-wgan-plugin"):
        # made from the class while it is registered: the checkpoint names it "tiny-wgan",
        # which is how `minigan sample` finds it (files never name code to import)
        result, _ = run_wgan(tmp_path, "run", epochs=1)
        done = CliRunner().invoke(
            main, ["sample", str(result.run_dir), "--seeds", "3-5", "--outdir", outdir]
        )
    assert done.exit_code == 0, done.output
    line = done.output.strip().splitlines()[0]
    assert "//" not in line and "seed0000" not in line
    assert line == f"wrote 3 images to {tmp_path / 'd'}/ (seed0003.png ... seed0005.png)"
