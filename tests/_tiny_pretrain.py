"""A tiny stage-2 training on seeded random tensors, run as a subprocess by the resume and DDP tests.

usage: python _tiny_pretrain.py RUN_DIR [key=value ...]   (also under torchrun)
"""

from __future__ import annotations

import sys

import torch
from torch.utils.data import TensorDataset

from sugar.config import DataConfig, PretrainConfig, load_config
from sugar.models.text import KnowledgeEmbeddings
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.processor import Processor
from sugar.training.pretrain import PretrainData, train


def tiny_data(classes: int = 4, samples: int = 32, dim: int = 16) -> PretrainData:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(samples) % classes
    x = torch.randn(samples, 3, 12, 20, 1, generator=g) * 0.5 + y.view(-1, 1, 1, 1, 1).float() * 0.3
    names = [f"class {i}" for i in range(classes)]
    texts = KnowledgeEmbeddings(
        names,
        torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=-1),
        torch.nn.functional.normalize(torch.randn(2 * classes, dim, generator=g), dim=-1),
        torch.arange(classes).repeat_interleave(2),
    )
    processor = Processor.from_config(DataConfig(frames=12, max_persons=1), get_layout("kinect20"), 3)
    return PretrainData(TensorDataset(x, y), TensorDataset(x[:8], y[:8]), TensorDataset(x[8:16], y[8:16]), names,
                        processor, DataSource("synthetic"), list(range(classes)), texts)


if __name__ == "__main__":
    torch.set_num_threads(1)
    # PyTorch's own convolution kernels: oneDNN's AVX-512 ones on Intel Xeons (AMX machines) reduce a batch and its
    # two halves in different orders, which put the DDP and one-process runs 5e-3 apart after one epoch (1e-6 here)
    torch.backends.mkldnn.enabled = False
    cfg = load_config(PretrainConfig, overrides=["epochs=4", "batch_size=8", "lr=0.05", "warmup_epochs=1",
                                                 "lr_steps=[3]", "model.preset=cpu",
                                                 # fp32: the DDP test compares with 1e-4 tolerances, which bf16
                                                 # rounding of differently split batches does not meet
                                                 "cpu_bf16=false", *sys.argv[2:]])
    train(cfg, sys.argv[1], tiny_data(), progress=False)
