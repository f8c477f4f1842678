"""minigan.metrics against independent references: float64 eigendecomposition and closed
forms for the Frechet distance, brute-force loops for KID and precision/recall, pytorch-fid's
own FID Inception (with identical random weights) for the Inception features and FID, and
PyTorch's pooling for the count_include_pad=False average pool."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan.metrics import (
    FeatureSet,
    border_deviation,
    compare,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    knn_radii,
    polynomial_mmd2,
    precision_recall,
)


# --------------------------------------------------------------------------- references
def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def reference_frechet(mu1, s1, mu2, s2) -> float:
    """d² via Tr((s1 s2)^½) = Tr((s1^½ s2 s1^½)^½): symmetric eigendecompositions only."""
    r1 = _psd_sqrt(s1)
    inner = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr = np.sqrt(np.clip(eig, 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr)


def _random_cov(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1) * np.eye(d)


# --------------------------------------------------------------------------- Frechet
@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 24), seed=st.integers(0, 2**31 - 1))
def test_frechet_matches_eigendecomposition(d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    expected = reference_frechet(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_frechet_closed_form_diagonal(d: int, seed: int) -> None:
    """Diagonal covariances: d² = |mu1 - mu2|² + sum (sqrt(a) - sqrt(b))²."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.01, 4, d), rng.uniform(0.01, 4, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_frechet_identical_is_zero_and_rank_deficient_is_finite() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 40))  # 12 samples in 40-d: a singular covariance
    mu, s = feature_statistics(x)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-4  # sqrtm of a singular product: ~1e-6
    y = rng.normal(size=(12, 40)) + 0.5
    got = frechet_distance(mu, s, *feature_statistics(y))
    expected = reference_frechet(mu, s, *feature_statistics(y))
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-4)


def test_frechet_singular_fallback_adds_eps_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """When sqrtm gives non-finite values, eps·I is added to both covariances (pytorch-fid)."""
    import scipy.linalg

    rng = np.random.default_rng(1)
    s1, s2 = _random_cov(rng, 5), _random_cov(rng, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def flaky(m: np.ndarray, *a, **k):  # the first call fails as on a singular product
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m, *a, **k)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky)
    eps = 1e-2
    with pytest.warns(RuntimeWarning, match="singular"):
        got = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    off = eps * np.eye(5)
    np.testing.assert_allclose(calls[1], (s1 + off) @ (s2 + off))
    tr = np.trace(_psd_sqrt(_psd_sqrt(s1 + off) @ (s2 + off) @ _psd_sqrt(s1 + off)))
    d = mu1 - mu2
    assert got == pytest.approx(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr, rel=1e-9)


def test_frechet_rejects_non_covariances_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="means differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))


def test_frechet_matches_pytorch_fid_function() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("pytorch_fid")
    from fid_reference import fid_score_module

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 20)), rng.normal(size=(300, 20)) * 1.3 + 0.2
    stats = (*feature_statistics(a), *feature_statistics(b))
    ref = fid_score_module().calculate_frechet_distance(*stats)
    assert frechet_distance(*stats) == pytest.approx(float(ref), rel=1e-9)


# --------------------------------------------------------------------------- KID
def brute_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 12), n=st.integers(2, 12), d=st.integers(1, 6), seed=st.integers(0, 999))
def test_polynomial_mmd2_matches_brute_force(m: int, n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(m, d)), rng.normal(size=(n, d)) + 0.3
    assert polynomial_mmd2(x, y) == pytest.approx(brute_mmd2(x, y), rel=1e-9, abs=1e-12)


def test_kid_subsets_mean_and_std() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 0.5
    kid = kernel_inception_distance(x, y, subsets=7, subset_size=20, seed=4)
    draws = np.random.RandomState(4)
    values = []
    for _ in range(7):
        xs = x[draws.choice(60, 20, replace=False)]
        ys = y[draws.choice(50, 20, replace=False)]
        values.append(brute_mmd2(xs, ys))
    assert kid.mean == pytest.approx(np.mean(values), rel=1e-9)
    assert kid.std == pytest.approx(np.std(values), rel=1e-7)
    assert kid.subset_size == 20


def test_kid_is_unbiased_near_zero_for_one_distribution() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = kernel_inception_distance(x, y, subsets=50, subset_size=200)
    shifted = kernel_inception_distance(x, y + 0.5, subsets=50, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * max(abs(same.mean), same.std)


# --------------------------------------------------------------------------- precision/recall
def brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(s: np.ndarray) -> list[float]:
        out = []
        for i in range(len(s)):
            d = sorted(np.linalg.norm(s[i] - s[j]) for j in range(len(s)) if j != i)
            out.append(d[k - 1])
        return out

    rr, fr = radii(real), radii(fake)
    prec = np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, rr)) for f in fake])
    rec = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, fr)) for r in real])
    return float(prec), float(rec)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 999), k=st.integers(1, 4), shift=st.floats(0, 3))
def test_precision_recall_match_brute_force(seed: int, k: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(25, 3)), rng.normal(size=(20, 3)) * 0.7 + shift
    assert precision_recall(real, fake, k=k) == pytest.approx(brute_precision_recall(real, fake, k))


def test_precision_recall_extremes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    assert precision_recall(x, x.copy()) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)
    # a collapsed generator: every sample at one real point -> precise but no recall
    collapsed = np.repeat(x[:1], 50, axis=0) + 1e-9 * rng.normal(size=(50, 4))
    precision, recall = precision_recall(x, collapsed)
    assert precision == 1.0 and recall < 0.2
    assert knn_radii(np.array([[0.0], [1.0], [3.0]]), k=1).tolist() == [1.0, 1.0, 2.0]


def test_feature_validation_errors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        precision_recall(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.array([[np.nan, 1.0], [0.0, 1.0]]))


# --------------------------------------------------------------------------- compare / border
def test_compare_reports_classifier_verdicts() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 6))
    logits = np.zeros((40, 3))
    logits[:30, 0] = 10.0  # 30 confident "a"; 10 uniform (p = 1/3) -> argmax class 0 too
    logits[30:, 2] = 0.5  # ... except these lean to "c" without confidence
    r = compare(
        FeatureSet(f, logits),
        FeatureSet(f.copy(), logits),
        kid_subsets=3,
        class_names=["a", "b", "c"],
    )
    assert abs(r["fid"]) < 1e-6 and r["precision"] == 1.0 and r["recall"] == 1.0
    assert r["confident"] == pytest.approx(30 / 40)
    assert r["class_fractions"] == {"a": 0.75, "b": 0.0, "c": 0.25}
    assert r["real_confident"] == r["confident"]


def test_border_deviation_closed_form() -> None:
    x = np.full((1, 3, 10, 10), -1.0, np.float32)  # black
    x[:, :, 4:6, 4:6] = 1.0  # a white square in the middle: the interior median stays black
    assert border_deviation(x) == 0.0
    x[:, 0, -2:, :] = 1.0  # the red channel of the bottom 2 rows saturated
    # 20 of 64 border pixels differ by 1 in 1 of 3 channels
    assert border_deviation(x) == pytest.approx(20 / 64 / 3)


# --------------------------------------------------------------------------- feature networks
def test_shapes_features_match_the_classifier() -> None:
    import minigan
    from minigan.metrics.features import get_network
    from minigan.plugins.datasets import shapes
    from minigan.plugins.deepdream.shapes_classifier import load_shipped

    net = get_network("shapes")
    images = shapes(resolution=32, channels=3, limit=16)[:16][0]
    feats, logits = net(images)
    assert feats.shape == (16, 128) and logits.shape == (16, 6)
    with minigan.no_grad():
        expected = load_shipped()(minigan.tensor(images)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    # grayscale input at another size is repeated to RGB and resized to 32x32
    gray = shapes(resolution=28, channels=1, limit=4)[:4][0]
    assert net(gray)[0].shape == (4, 128)


def test_avg_pool_without_padding_counts_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    import minigan
    from minigan.metrics.inception import avg_pool3x3_same

    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
    expected = torch.nn.functional.avg_pool2d(
        torch.from_numpy(x), 3, 1, 1, count_include_pad=False
    ).numpy()
    np.testing.assert_allclose(avg_pool3x3_same(minigan.tensor(x)).numpy(), expected, atol=1e-6)


@pytest.fixture(scope="module")
def inception_pair():
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytorch_fid")
    from fid_reference import random_state_dict, reference_inception

    from minigan.metrics.inception import FIDInceptionV3, load_fid_weights

    torch.manual_seed(0)
    state = random_state_dict(0)
    ours = FIDInceptionV3()
    load_fid_weights(ours, state)
    return ours.eval(), reference_inception(state)


@pytest.mark.slow
def test_fid_inception_matches_pytorch_fid(inception_pair) -> None:
    """Identical random weights in minigan's network and pytorch-fid's: the 2048-d features
    of 32×32 and 40×28 inputs (resized to 299×299) and the FID between two sets agree."""
    import torch
    from fid_reference import fid_score_module

    import minigan

    ours, ref = inception_pair
    rng = np.random.default_rng(7)
    sets = [rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32) for _ in range(2)]
    sets[1] = np.clip(sets[1] * 0.5 + 0.2, -1, 1).astype(np.float32)
    feats_ours, feats_ref = [], []
    for x in sets:
        with minigan.no_grad():
            feats_ours.append(np.asarray(ours(minigan.tensor(x)).numpy(), np.float64))
        with torch.no_grad():  # pytorch-fid takes [0, 1] images
            out = ref(torch.from_numpy((x + 1) / 2))[0]
        feats_ref.append(out.reshape(len(x), -1).double().numpy())
        np.testing.assert_allclose(feats_ours[-1], feats_ref[-1], rtol=1e-4, atol=1e-4)
    odd = rng.uniform(-1, 1, (2, 3, 40, 28)).astype(np.float32)
    with minigan.no_grad():
        a = ours(minigan.tensor(odd)).numpy()
    with torch.no_grad():
        b = ref(torch.from_numpy((odd + 1) / 2))[0].reshape(2, -1).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # the final number, on a 16-d slice of the features (6 samples make a singular 2048-d
    # covariance, whose sqrtm is ill-conditioned in either implementation)
    ours_stats = [feature_statistics(f[:, :16]) for f in feats_ours]
    ref_stats = [feature_statistics(f[:, :16]) for f in feats_ref]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fid_score_module().calculate_frechet_distance(*ref_stats[0], *ref_stats[1])
        got = frechet_distance(*ours_stats[0], *ours_stats[1])
    assert got == pytest.approx(float(expected), rel=1e-3)


def test_load_fid_weights_reports_missing_tensors() -> None:
    from minigan.metrics.inception import FIDInceptionV3, load_fid_weights

    with pytest.raises(ValueError, match="tensors missing"):
        load_fid_weights(FIDInceptionV3(), {"fc.weight": np.zeros((1008, 2048), np.float32)})


def test_inception_features_without_weights_say_how_to_get_them(tmp_path, monkeypatch) -> None:
    from minigan.metrics.features import get_network

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="minigan weights download fid_inception"):
        get_network("inception")
    with pytest.raises(ValueError, match="unknown feature network 'vgg'"):
        get_network("vgg")


# --------------------------------------------------------------------------- run level
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from minigan.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(
        "dcgan",
        "shapes",
        out=out,
        config={"g_width": 8, "d_width": 8},
        epochs=1,
        batch_size=16,
        data_options={"limit": 32},
        progress=False,
        log=lambda s: None,
    )
    return out


def test_real_features_are_cached(tmp_path, monkeypatch) -> None:
    from minigan.metrics import real_features
    from minigan.metrics.features import get_network

    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path))
    net = get_network("shapes")
    first = real_features(net, "shapes", (3, 32, 32), 24, progress=False)
    files = list((tmp_path / "metrics").glob("*.npz"))
    assert len(files) == 1 and "cache" not in first.meta
    again = real_features(net, "shapes", (3, 32, 32), 24, progress=False)
    assert again.meta["cache"] == str(files[0])
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.logits, again.logits)
    real_features(net, "shapes", (1, 28, 28), 24, progress=False)  # another key
    assert len(list((tmp_path / "metrics").glob("*.npz"))) == 2


def test_metrics_command_prints_and_appends(tiny_run, tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from minigan.cli import main

    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path))
    args = ["metrics", str(tiny_run), "--num", "40", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "FID (shapes-classifier features)" in result.output
    assert "confident fraction" in result.output and "real vs held-out real" in result.output
    assert "class fidelity (asked -> named)" in result.output  # shapes has labels: conditional
    result = CliRunner().invoke(main, [*args, "--no-baseline", "--json"])
    assert result.exit_code == 0, result.output
    lines = (tiny_run / "quality.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["features"] == "shapes" and first["num"] == 40 and first["step"] == 2
    assert "baseline_fid" in first and "baseline_fid" not in second
    assert first["fid"] == pytest.approx(second["fid"])  # same seeds, same real images
    assert sum(first["class_fractions"].values()) == pytest.approx(1.0)
    assert 0 <= first["class_fidelity"] <= 1
    assert set(first["class_recognised"]) == {"circle", "square", "triangle", "star", "cross",
                                              "ellipse"}  # fmt: skip
    assert first["baseline_class_fidelity"] > 0.9 and "baseline_class_fidelity" not in second


class DrawsRealImages:
    """A stand-in conditional model: asked for class k it returns held-out real ``shapes``
    images of class ``(k + shift) % 6`` — so its class fidelity is known in closed form."""

    image_shape = (3, 32, 32)
    num_classes = 6

    def __init__(self, shift: int) -> None:
        from minigan.data import open_dataset

        images, labels = open_dataset("shapes", limit=4000)[2000:4000]
        self.by_class = [images[labels == k] for k in range(6)]
        self.shift = shift

    def latents(self, seeds):
        import minigan

        return minigan.tensor(np.array(list(seeds), np.float32)[:, None])

    def sample(self, z, label=None):
        import minigan

        index = z.numpy()[:, 0].astype(int)
        return minigan.tensor(self.by_class[(label + self.shift) % 6][index])


def test_class_fidelity_against_a_model_of_known_fidelity() -> None:
    """Real images of the asked class are named as asked (the classifier recognises held-out
    shapes 96-100% per class); real images of the next class never are."""
    from minigan.metrics import class_fidelity
    from minigan.metrics.features import get_network

    net = get_network("shapes")
    names = list(net.classes)
    right = class_fidelity(DrawsRealImages(0), net, names, num=120, batch_size=7)
    assert set(right["class_recognised"]) == set(names)
    assert min(right["class_recognised"].values()) >= 0.9 and right["class_fidelity"] >= 0.95
    assert right["class_fidelity_confident"] <= right["class_fidelity"]
    wrong = class_fidelity(DrawsRealImages(1), net, names, num=120)
    assert wrong["class_fidelity"] <= 0.05
    # it applies only to a conditional model judged by a classifier of the data's classes
    assert class_fidelity(DrawsRealImages(0), net, names[::-1], num=12) == {}
    assert class_fidelity(DrawsRealImages(0), net, None, num=12) == {}
    plain = DrawsRealImages(0)
    plain.num_classes = 0
    assert class_fidelity(plain, net, names, num=12) == {}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "step-999"], "--checkpoint step-999: no such file"),
        (["--real", "nosuchdata"], "nosuchdata"),
        (["--real", "{npz}", "--num", "20"], "use a smaller --num"),  # 30 images < 2 x 20
        (["--features", "inception", "--inception-weights", "{npz}"], "tensors missing"),
    ],
)
def test_metrics_command_errors_are_one_line(tiny_run, tmp_path, monkeypatch, extra, message):
    from click.testing import CliRunner

    from minigan.cli import main

    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path))
    npz = tmp_path / "small.npz"
    np.savez(npz, images=np.zeros((30, 32, 32, 3), np.uint8))
    extra = [a.format(npz=npz) for a in extra]
    result = CliRunner().invoke(main, ["metrics", str(tiny_run), "--no-progress", *extra])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_metrics_command_missing_run(tmp_path) -> None:
    from click.testing import CliRunner

    from minigan.cli import main

    result = CliRunner().invoke(main, ["metrics", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "no such run directory" in result.output


def test_hook_module_feature_names_match_the_metrics() -> None:
    from minigan import metrics
    from minigan.plugins import metrics as plugin

    assert plugin.FEATURES == metrics.NETWORKS


def test_metric_every_measures_during_training_without_changing_it(tmp_path, monkeypatch):
    """--metric-every N: quality.jsonl gets a record every N steps (the EMA generator's
    samples), losses.png a second panel, and the training itself is unchanged."""
    from click.testing import CliRunner

    from minigan.cli import main

    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    common = ["train", "dcgan", "--limit", "64", "--epochs", "2", "--batch-size", "16",
              "--g-width", "8", "--d-width", "8", "--no-progress"]  # fmt: skip
    plain, measured = tmp_path / "plain", tmp_path / "measured"
    result = CliRunner().invoke(main, [*common, "--out", str(plain)])
    assert result.exit_code == 0, result.output
    args = [*common, "--out", str(measured), "--metric-every", "4", "--metric-num", "32"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "step 4: FID (shapes-classifier features)" in result.output
    records = [json.loads(line) for line in (measured / "quality.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8] and all(r["num"] == 32 for r in records)
    assert "confident" in records[0] and "baseline_fid" not in records[0]
    assert (plain / "metrics.jsonl").exists()
    losses = [json.loads(line) for line in (plain / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (measured / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss_d"] for r in losses] == [r["loss_d"] for r in again]
    from minigan.run import Run

    plotted = Run(measured).write_losses("t")  # quality subplots beside the losses
    assert [s.key for s in plotted["FID (shapes-classifier features)"]] == ["fid"]
    quality = plotted["sample quality"]
    assert [s.key for s in quality] == ["confident", "class_fidelity", "precision", "recall"]
    assert "class fidelity" in result.output.split("step 4:")[1].splitlines()[0]  # conditional
    assert quality[0].steps.tolist() == [4, 8]
    assert quality[0].values.tolist() == [r["confident"] for r in records]
    assert "sample quality" not in Run(plain).write_losses("t")
    # the model measured is the sampling generator: the last record equals `minigan metrics`
    result = CliRunner().invoke(
        main, ["metrics", str(measured), "--num", "32", "--no-progress", "--no-baseline", "--json"]
    )
    assert result.exit_code == 0, result.output
    final = json.loads((measured / "quality.jsonl").read_text().splitlines()[-1])
    assert final["step"] == 8 and final["fid"] == pytest.approx(records[-1]["fid"], rel=1e-9)
