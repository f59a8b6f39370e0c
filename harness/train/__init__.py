"""Training one variant on one dataset.

  run          ``run(config)``: the training entry point, top to bottom
  gan          the one GAN model and its step
  callbacks    the progress bar and the NaN guard of an epoch
  checkpoints  one file per epoch: both networks, both optimisers, the config
  kernels      faster CPU forms of some convolutions, chosen per machine
  progress     the per-epoch line and the run's timeline
"""
