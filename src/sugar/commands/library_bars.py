"""`--no-progress` also silences the bars that transformers and huggingface_hub draw while loading models
("Loading weights", downloads), so the logs of long unattended runs hold only our own report lines."""

from __future__ import annotations


def show_library_progress(enabled: bool) -> None:
    """Switch the model libraries' tqdm bars on or off for the rest of this process."""
    from transformers.utils import logging as hf_logging

    if enabled:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
