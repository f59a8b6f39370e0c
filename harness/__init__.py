"""Train DCGAN variants on one image class at a time and log everything to MLflow."""

import os
import time

# When the package was first imported: the start of a `python -m harness` command,
# from which a run's timeline counts its start-up (imports included).
STARTED = time.perf_counter()

# TensorFlow's default CPU allocator hands every large tensor back to the OS when
# it is freed, so each training step page-faults its activations in again (about
# 15% of a step went to the kernel). The BFC allocator keeps and reuses them:
# +28% images/s for animals_baseline on a 2-core CPU, measured A/B in separate
# processes. It only takes effect if set before TensorFlow is imported, which is
# why it lives here; a value already in the environment wins. GPUs are unaffected.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
