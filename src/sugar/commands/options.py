"""Command-line options shared by several commands (one definition, one help text)."""

from __future__ import annotations

import typer

ENCODER_PRECISION = typer.Option(
    "fp32", "--encoder-precision",
    help="Stage-3 runs: the skeleton encoder at inference, fp32 | bf16 (autocast; faster at batch 32 on CPUs with "
         "AVX512-BF16/AMX) | auto (bf16 where native); docs/benchmarks.md.")
FUSION = typer.Option(
    None, "--fusion", min=0.0, max=1.0,
    help="Stage-3 rank mode: weight of the encoder's text head beside the LLM, without its CE classifier (default: "
         "the weights calibrated on validation, the classifier's too on lists of its classes; 0 = the LLM alone).")
