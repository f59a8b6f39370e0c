"""The harness measured against the seed notebooks.

  reference_loop  the notebooks' training loop (predict + train_on_batch), for comparison
  bench           training throughput: the harness's step against that loop (and PyTorch)
  fidelity        does the harness's step train like that loop? over seeds
"""
