"""The commands of ``python -m harness``, grouped by what they act on.

Each module declares its commands' flags (``add_<command>(subparsers)``) and a
thin handler that calls the library; ``harness.cli`` assembles them and runs
the one asked for.

    training     run, study, campaign
    generators   sample, serve, register, export, eval (logged generators and generator files)
    catalog      variants, datasets
    report       report
    notebooks    bench, fidelity (the harness's step against the notebooks' loop)
    backbone     backbone train
    common       the flags several commands share
"""
