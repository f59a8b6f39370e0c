"""`fidelity`: the notebooks' loop measures what the harness measures, starts from the same
weights, freezes D in the combined update as the notebooks did, and the command runs end to end,
reusing finished (loop, seed) results."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from harness import cli
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.notebooks.fidelity import FidelitySettings, equivalence, notebook_presets
from harness.notebooks.reference_loop import NotebookTrainer
from variants import resolve

BATCH = 8


def tiny_spec(**changes):
    return resolve("animals_baseline").scaled(0.05).replace(**changes)


def batches(n: int = 2) -> list[np.ndarray]:
    return list(np.random.default_rng(7).integers(0, 256, (n, BATCH, 32, 32, 3), dtype=np.uint8))


def bce(label: float, p: np.ndarray) -> float:
    """Keras's binary cross-entropy of probabilities (clipped to [1e-7, 1 - 1e-7]), in float64."""
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(label * np.log(p) + (1 - label) * np.log(1 - p)))


def test_the_notebook_loops_epoch_metrics_equal_a_numpy_computation():
    # No Dropout and a learning rate of ~0: D's probabilities in each update are those of
    # its initial weights, computed here independently of the loop.
    spec = tiny_spec(dropout="none", d_lr=1e-12, g_lr=1e-12)
    keras.utils.set_random_seed(0)
    trainer = NotebookTrainer(spec, BATCH, seed=5)
    d, g = trainer.d, trainer.g
    rng = np.random.default_rng(5)  # the trainer's stream: D's noise, then G's, per batch
    per_batch = []
    for images in batches():
        real = images.astype(np.float32) / 127.5 - 1.0
        z_fake, z_g = (rng.standard_normal((BATCH, spec.latent_dim)).astype(np.float32) for _ in range(2))
        p_real = d(real).numpy()
        p_fake = d(g(z_fake)).numpy()
        p_g = d(g(z_g)).numpy()
        per_batch.append({"real_acc": np.mean(p_real > 0.5), "fake_acc": np.mean(p_fake < 0.5),
                          "d_loss_real": bce(1.0, p_real), "d_loss_fake": bce(0.0, p_fake),
                          "d_loss": 0.5 * (bce(1.0, p_real) + bce(0.0, p_fake)), "g_loss": bce(1.0, p_g)})
    expected = {k: np.mean([b[k] for b in per_batch]) for k in per_batch[0]}
    measured = trainer.train_epoch(batches())
    assert set(measured) == set(expected)
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert 0 < expected["real_acc"] < 1 or 0 < expected["fake_acc"] < 1  # the threshold does decide something


def test_real_batch_metrics_come_from_d_before_its_update():
    spec = tiny_spec(dropout="none", d_lr=0.05)  # a large step: before and after differ
    keras.utils.set_random_seed(0)
    trainer = NotebookTrainer(spec, BATCH, seed=0)
    real = batches(1)[0].astype(np.float32) / 127.5 - 1.0
    p_before = trainer.d(real).numpy()
    step = trainer.step(real, trainer.noise(), trainer.noise())
    assert step["d_loss_real"] == pytest.approx(bce(1.0, p_before), rel=1e-5)
    assert step["real_acc"] == np.mean(p_before > 0.5)
    assert bce(1.0, trainer.d(real).numpy()) != pytest.approx(bce(1.0, p_before), rel=1e-3)


@pytest.mark.parametrize("combined_d, moves", [("frozen", False), ("trainable", True)])
def test_the_combined_update_trains_d_only_when_asked(combined_d, moves):
    # D's own updates are ~0 (d_lr 1e-12), G's are not: any change of D comes from the combined update.
    spec = tiny_spec(d_lr=1e-12, g_lr=1e-2)
    keras.utils.set_random_seed(0)
    trainer = NotebookTrainer(spec, BATCH, seed=0, combined_d=combined_d)
    before = [w.copy() for w in trainer.d.get_weights()]
    g_before = [w.copy() for w in trainer.g.get_weights()]
    trainer.train_epoch(batches(1))
    change = max(float(np.abs(a - b).max()) for a, b in zip(before, trainer.d.get_weights()))
    assert (change > 1e-4) is moves, change
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, trainer.g.get_weights()))


@pytest.mark.parametrize("fakes", NotebookTrainer.FAKES)
def test_ds_fakes_come_from_predict_or_from_g_in_training_mode(fakes):
    # cifar_bn has BatchNorm in G: predict uses its moving statistics, training mode the batch's.
    spec = resolve("cifar_bn").scaled(0.05)
    keras.utils.set_random_seed(0)
    trainer = NotebookTrainer(spec, BATCH, seed=0, fakes=fakes)
    z_fake, weights = trainer.noise(), trainer.g.get_weights()
    expected = {"predict": trainer.g.predict(z_fake, verbose=0),
                "training": np.asarray(trainer.g(z_fake, training=True))}
    trainer.g.set_weights(weights)  # training mode moved BatchNorm's moving statistics
    assert expected["predict"].std() < 0.5 * expected["training"].std()  # the two modes differ here
    seen, train_on_batch = [], trainer.d.train_on_batch
    trainer.d.train_on_batch = lambda x, y, **kw: (seen.append(np.asarray(x)), train_on_batch(x, y, **kw))[1]
    real = batches(1)[0].astype(np.float32) / 127.5 - 1.0
    trainer.step(real, z_fake, trainer.noise())
    np.testing.assert_allclose(seen[1], expected[fakes], rtol=1e-5, atol=1e-6)


def test_both_loops_start_from_the_same_weights():
    from harness.train.gan import GAN

    spec = tiny_spec()
    keras.utils.set_random_seed(3)
    gan = GAN(spec, seed=3)
    keras.utils.set_random_seed(3)
    trainer = NotebookTrainer(spec, BATCH, seed=3)
    for ours, theirs in ((gan.generator, trainer.g), (gan.discriminator, trainer.d.layers[0])):
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_fidelity_is_a_paired_equivalence_test_checked_against_statsmodels():
    from statsmodels.stats.weightstats import ttost_paired

    harness, notebook = [1.00, 1.02, 0.98, 1.01, 0.99], [1.01, 1.00, 0.99, 1.02, 0.98]
    row = equivalence(harness, notebook, "d_loss", margin=0.10)
    scale = np.mean(notebook)
    p = ttost_paired(np.array(harness) / scale, np.array(notebook) / scale, -0.10, 0.10)[0]
    assert row["p_equivalence"] == pytest.approx(p, rel=1e-9) and row["verdict"] == "equivalent"
    assert row["change"] == pytest.approx((np.mean(harness) - scale) / scale)
    # Far apart: a difference, with no better side for a loss; FID has one (lower).
    assert equivalence([2.0, 2.1, 1.9, 2.05, 1.95], notebook, "d_loss")["verdict"] == "different"
    assert equivalence([2.0, 2.1, 1.9, 2.05, 1.95], notebook, "fid")["verdict"] == "worse"
    # Three noisy seeds: no difference found, and no equivalence shown either.
    noisy = equivalence([1.0, 1.3, 0.8], [1.1, 0.9, 1.0], "d_loss")
    assert noisy["verdict"] == "inconclusive" and noisy["p_equivalence"] > 0.05
    one = equivalence([1.0], [1.0], "d_loss")
    assert one["verdict"] == "inconclusive" and one["change"] is None  # one seed: no spread to judge by
    assert equivalence([1.0, float("nan")], [1.0, 2.0], "kid")["verdict"] == "inconclusive"


def test_variant_all_runs_every_preset_with_a_notebook_loop_in_its_own_folder(monkeypatch, tmp_path):
    from harness.commands import notebooks

    assert notebook_presets() == ("animals_baseline", "cifar_bn", "cars_bn_k4")
    calls = []

    def fake(settings):
        calls.append((settings.run.variant, settings.out, settings.seeds, settings.margin))
        (tmp_path / "t.md").write_text("table")
        return {"files": [str(tmp_path / "t.json"), str(tmp_path / "t.md")]}

    monkeypatch.setattr(notebooks, "run_fidelity", fake)
    assert cli.main(["fidelity", "--variant", "all", "--out", str(tmp_path / "f")]) == 0
    assert calls == [(v, f"{tmp_path}/f/{v}", 5, 0.10) for v in notebook_presets()]


def test_a_mixed_batch_variant_has_no_notebook_loop():
    with pytest.raises(ConfigError, match="d_update split"):
        FidelitySettings(run=RunConfig(variant="mnist_tutorial", dataset="digits"))


def test_fidelity_end_to_end_and_a_rerun_reuses_each_loop_and_seed(tiny_backbone, data_root, tmp_path, capsys):
    out = tmp_path / "fidelity"
    args = ["fidelity", "--max-images", "16", "--batch-size", str(BATCH), "--width", "0.05", "--epochs", "2",
            "--seeds", "2", "--eval-samples", "20", "--backbone", "cifar10_classifier", "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    for loop in ("harness", "notebook"):
        for seed in (0, 1):
            assert f"{loop} seed {seed}: trained 2 epochs" in printed
    assert "## real_acc" in printed and "## final scores" in printed
    result = json.loads((out / "fidelity.json").read_text())
    assert set(result["per_epoch"]) == {"real_acc", "fake_acc", "d_loss", "g_loss"}
    assert [row["epoch"] for row in result["per_epoch"]["g_loss"]] == [1, 2]
    assert all(row["verdict"] in ("equivalent", "different", "inconclusive") for row in result["per_epoch"]["d_loss"])
    assert result["settings"]["margin"] == 0.10 and "values equivalent" in printed
    assert set(result["final"]) == {"fid", "kid"}
    assert [r["seed"] for r in result["runs"]["notebook"]] == [0, 1]
    assert result["settings"]["evaluation"]["eval_n_fake"] == "20"
    assert (out / "fidelity.png").stat().st_size > 10_000 and (out / "fidelity.md").exists()

    # The same command again trains nothing; other evaluation settings only rescore.
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count(": reused") == 4 and "trained" not in printed
    assert cli.main([*args[:-6], "--eval-samples", "30", *args[-4:]]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": rescored") == 4 and "trained" not in printed
    assert json.loads((out / "fidelity.json").read_text())["settings"]["evaluation"]["eval_n_fake"] == "30"

    # Fakes for D from G in training mode: another notebook loop (retrained), the same harness loop.
    assert cli.main([*args, "--notebook-fakes", "training"]) == 0
    printed = capsys.readouterr().out
    assert "harness seed 0: trained" not in printed and "harness seed 1: trained" not in printed
    assert "notebook seed 0: trained 2 epochs" in printed and "notebook seed 1: trained 2 epochs" in printed
    assert json.loads((out / "fidelity.json").read_text())["settings"]["notebook_fakes"] == "training"
    assert "D's fakes made by G in training mode" in (out / "fidelity.md").read_text()


def test_a_value_is_called_apart_only_after_holms_correction_over_its_family():
    """40 per-epoch values at alpha 0.05: one p of 0.005 alone is no longer 'different' (Holm p ~0.2),
    while a difference far beyond the family's noise still is; the final scores are a family of two."""
    from harness.notebooks.fidelity import compare, render_markdown

    rng = np.random.default_rng(0)
    seeds, epochs = 5, 10
    base = {m: 1.0 + rng.random((seeds, epochs)) for m in ("real_acc", "fake_acc", "d_loss", "g_loss")}
    noise = {m: 1.0 + 0.002 * rng.standard_normal((seeds, epochs)) for m in base}
    noise["d_loss"][:, 2] = [1.15, 1.25, 1.2, 1.1, 1.3]  # epoch 3: p 0.005 by itself
    noise["g_loss"][:, 0] = [2.0, 2.02, 1.98, 2.01, 1.99]  # epoch 1: doubled, p ~1e-7

    def runs(scale, final):
        return [{"epochs": [{m: float(base[m][s, e] * scale[m][s, e]) for m in base} for e in range(epochs)],
                 "final": {"fid": 400.0 + final[s], "kid": 600.0 + final[s]}} for s in range(seeds)]

    ones = {m: np.ones((seeds, epochs)) for m in base}
    result = compare({"harness": runs(noise, [0, 3, 1, 4, 2]), "notebook": runs(ones, [1, 2, 3, 0, 4])}, epochs)
    lifted = result["per_epoch"]["d_loss"][2]
    assert lifted["p_difference"] < 0.01 and lifted["p_adjusted"] > 0.05 and lifted["family_size"] == 40
    assert lifted["verdict"] == "inconclusive"
    assert result["per_epoch"]["g_loss"][0]["verdict"] == "different"
    assert result["summary"]["apart"] == ["g_loss epoch 1"]
    assert result["final"]["fid"]["family_size"] == 2
    result["settings"] = {"variant": "v", "dataset": "d", "images": 10, "batch_size": 2, "epochs": epochs,
                          "width": 1.0, "seeds": seeds, "combined_d": "frozen", "margin": 0.1, "alpha": 0.05,
                          "evaluation": {}}
    text = render_markdown(result)
    assert "Holm's correction within its family (the 40 per-epoch values; the 2 final scores)" in text
    assert "| p | Holm p | TOST p | verdict |" in text
