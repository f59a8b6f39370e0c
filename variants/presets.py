"""Presets that reproduce the architectures of the published notebooks.

Each preset is a ``VariantSpec`` value in one explicit table, ``PRESETS``.
The docstring-like ``source`` field says where it comes from, and
``python -m harness variants`` prints it.
"""

from __future__ import annotations

from variants.spec import DBlock, VariantSpec

ANIMALS_BASELINE = VariantSpec(
    name="animals_baseline",
    g_activation="leaky_relu",
    source=(
        "Animals-10 per-class DCGAN notebook: G Dense 4x4x256 + LeakyReLU, three "
        "Conv2DTranspose(128, k3, s2) + LeakyReLU(0.2), Conv2D(3, k3, tanh); D Conv2D 64 "
        "(s1) then 128/128/256 (k3, s2) with LeakyReLU(0.2) layers, Flatten, Dropout(0.4), "
        "Dense(1, sigmoid); Adam(2e-4, beta_1=0.5) for both; no BatchNorm; D trained on "
        "a real batch and a fake batch separately."
    ),
)

CIFAR_BN = VariantSpec(
    name="cifar_bn",
    batchnorm="generator",
    dropout="none",
    kernel=4,
    g_activation="leaky_relu",  # after the convolutions; the Dense alone has ReLU
    g_dense_filters=256,
    g_dense_activation="relu",
    g_filters=(128, 64),
    g_out_kernel=3,
    bn_momentum=0.8,
    bn_after_activation=True,
    bn_on_dense=True,
    d_blocks=(DBlock(64, 2, kernel=3), DBlock(128, 2, kernel=3), DBlock(256, 2, kernel=3)),
    g_lr=1e-3,
    g_beta_1=0.9,
    d_lr=1e-3,
    d_beta_1=0.9,
    source=(
        "CIFAR-10 DCGAN notebook with BatchNorm: G Dense 8x8x256 ReLU, BatchNorm(momentum "
        "0.8), Conv2DTranspose 128 and 64 (k4, s2) each followed by LeakyReLU(0.2) and then "
        "BatchNorm(0.8) (after the activation, as published), Conv2D(3, k3, tanh); D Conv2D "
        "64/128/256 (k3, s2) with LeakyReLU, no dropout; Keras default Adam (1e-3, 0.9); "
        "split real/fake updates."
    ),
)

CARS_BN_K4 = VariantSpec(
    name="cars_bn_k4",
    batchnorm="both",
    dropout="head",
    kernel=4,
    g_activation="leaky_relu",
    leaky_relu="layer",
    d_update="split",
    source=(
        "Car-fronts DCGAN notebook: the baseline family with BatchNorm in G and D, kernel 4, "
        "LeakyReLU layers, Dropout(0.4) after Flatten, D updated on separate real and fake "
        "batches (so BatchNorm never mixes real and fake statistics)."
    ),
)

MNIST_TUTORIAL = VariantSpec(
    name="mnist_tutorial",
    batchnorm="generator",
    dropout="blocks",
    kernel=4,
    g_activation="leaky_relu",
    leaky_relu="inline",
    d_update="mixed",
    image_size=28,
    channels=1,
    g_dense_filters=128,
    g_filters=(64,),
    g_out_kernel=4,
    g_out_transpose=True,
    bn_on_dense=True,
    bn_after_activation=True,  # inline activations leave no place before them
    d_blocks=(DBlock(64, 2, kernel=5), DBlock(64, 2, kernel=3)),
    source=(
        "MNIST DCGAN tutorial: 28x28x1; G Dense 7x7x128 (inline LeakyReLU), BatchNorm, "
        "Conv2DTranspose 64 (k4, s2, inline LeakyReLU), BatchNorm, Conv2DTranspose 1 (k4, "
        "s2, tanh); D Conv2D 64 (k5, s2) and 64 (k3, s2) with inline LeakyReLU, each "
        "followed by Dropout(0.4), Dense(1, sigmoid); Adam(2e-4, 0.5); one mixed batch."
    ),
)

UGTO_DCGAN64 = VariantSpec(
    name="ugto_dcgan64",
    batchnorm="none",
    dropout="head",
    kernel=4,
    g_activation="relu",
    leaky_relu="layer",
    d_update="mixed",
    image_size=64,
    latent_dim=128,
    g_dense_filters=128,
    g_filters=(128, 256, 512),
    g_out_kernel=5,
    d_blocks=(DBlock(64), DBlock(128), DBlock(128)),
    dropout_rate=0.2,
    g_lr=1e-4,
    g_beta_1=0.9,
    d_lr=1e-4,
    d_beta_1=0.9,
    source=(
        "UGTO 64x64 DCGAN final-project notebook (Caltech 101/256 and Kaggle categories). "
        "From the notebook text: images resized to 64x64 and scaled to [-1, 1]; G a Dense "
        "layer and three Conv2DTranspose, all with ReLU, then a convolution with tanh; D three "
        "convolutions with LeakyReLU, Flatten, Dropout, Dense(1, sigmoid); each D batch half "
        "real, half generated (one mixed batch). The text gives no widths, kernels, strides, "
        "rates or BatchNorm, so these come from the Keras DCGAN guide it cites "
        "(dcgan_overriding_train_step): latent 128; G Dense 8x8x128, Conv2DTranspose "
        "128/256/512 (k4, s2), Conv2D(3, k5); D Conv2D 64/128/128 (k4, s2) with "
        "LeakyReLU(0.2) layers, Dropout(0.2); Adam(1e-4) for both with Keras's default "
        "beta_1 0.9; no BatchNorm. Not taken from the guide: its G activations (none after "
        "the Dense, LeakyReLU after the transposed convolutions; the notebook has ReLU after "
        "all four), its sigmoid output on [0, 1] images, and its 0.05 label noise. The "
        "notebook saves .h5 files; the harness logs the generator as .keras."
    ),
)

PRESETS: dict[str, VariantSpec] = {
    spec.name: spec for spec in (ANIMALS_BASELINE, CIFAR_BN, CARS_BN_K4, MNIST_TUTORIAL, UGTO_DCGAN64)
}

# Grammar names take their unspecified axes (and the whole architecture family)
# from this preset.
BASELINE = ANIMALS_BASELINE
