"""Stages of the cyclical-learning-rate chest X-ray workflow, one module per stage.

Each stage module holds pure functions that the tests import, and a thin `main(snakemake)`
entry that the Snakemake rule of that stage calls through its `script:` directive.
"""
