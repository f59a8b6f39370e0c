"""Sample quality, computed as the reference implementations compute it.

Modules:
  fid                Fréchet distance (TTUR's fid.py): ``statistics``, ``frechet_distance``
  fid_infinity       FID at several N, extrapolated to N = infinity (Chong & Forsyth 2020)
  kid                unbiased cubic-kernel MMD over subsets: ``kernel_inception_distance``
  inception_score    Salimans et al.'s score over 10 ordered splits: ``inception_score``
  prdc               precision/recall (k = 3), density/coverage (k = 5); nearest neighbours
  backbones/         the 2015-12-05 Inception graph, or the offline CIFAR-10 classifier
  backbone_training  training the offline classifier, and doing so on first use
  real_images        which real images a run is scored against (a held-out split) and its floor
  reference          real-image statistics cached per dataset key and backbone
  provenance         which backbone and settings made a value (``EVAL_PARAMS``), the quality floor
  evaluator          ``make_evaluator(...).evaluate(generator)``: values, floors and curves
  memorisation       samples beside their nearest training images in feature space

Scoring a finished run into MLflow is ``harness.generators.scoring``.
Importing this package does not import TensorFlow.
"""
