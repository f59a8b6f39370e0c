"""FID, KID and IS computed as the reference implementations compute them.

Modules:
  fid              Fréchet distance (TTUR's fid.py): ``statistics``, ``frechet_distance``
  kid              unbiased cubic-kernel MMD over subsets: ``kernel_inception_distance``
  inception_score  Salimans et al.'s score over 10 ordered splits: ``inception_score``
  backbones/       the 2015-12-05 Inception graph, or the offline CIFAR-10 classifier
  reference        real-image statistics cached per dataset key and backbone
  provenance       which backbone made a value (``EVAL_PARAMS``) and the quality floor
  evaluator        ``make_evaluator(...).evaluate(generator)`` during or after training

Only formulas, backbones and the evaluator: scoring a finished run into MLflow
is ``harness.generators.scoring``, training the offline backbone ``harness.measure.backbone_training``.
Importing this package does not import TensorFlow.
"""
