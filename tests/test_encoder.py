import numpy as np
import pytest
import torch

from sugar.config import DataConfig, EncoderConfig, PretrainConfig, save_config
from sugar.errors import ConfigError, SugarError
from sugar.models.encoder import (
    SkeletonEncoder,
    build_encoder,
    load_encoder,
    save_pretrained,
    spatial_graph,
)
from sugar.models.heads import ProjectionHead
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.layouts import get_layout, list_layouts
from sugar.skeleton.processor import Processor

torch.set_num_threads(1)


@pytest.mark.parametrize("layout_name", list_layouts())
@pytest.mark.parametrize("stride", ["none", "stock"])
def test_token_shapes_for_every_layout(layout_name, stride):
    layout = get_layout(layout_name)
    enc = SkeletonEncoder(layout, 3, "cpu", stride).eval()
    x = torch.randn(2, 3, 20, layout.num_joints, 2)
    tokens = enc(x)
    expected_t = 20 if stride == "none" else 5
    assert tokens.shape == (2, expected_t, enc.dim) == (2, enc.output_length(20), 128)
    assert torch.isfinite(tokens).all()


def test_paper_preset_is_ctrgcn_sized():
    enc = SkeletonEncoder(get_layout("ntu25"), 3, "paper", "stock")
    assert len(enc.units) == 10 and enc.dim == 256
    params = sum(p.numel() for p in enc.parameters())
    assert 1.3e6 < params < 1.5e6  # CTR-GCN joint stream: 1.46M including its 60-way classifier
    assert enc(torch.randn(1, 3, 16, 25, 2)).shape == (1, 4, 256)
    full = SkeletonEncoder(get_layout("ntu25"), 3, "paper", "none").eval()
    assert full(torch.randn(1, 3, 9, 25, 1)).shape == (1, 9, 256)


def test_2d_input_and_any_person_count():
    enc = SkeletonEncoder(get_layout("coco17"), 2, "cpu", "stock").eval()
    assert enc(torch.randn(3, 2, 8, 17, 1)).shape == (3, 2, 128)
    assert enc(torch.randn(3, 2, 8, 17, 4)).shape == (3, 2, 128)
    with pytest.raises(ValueError, match="C=2"):
        enc(torch.randn(3, 3, 8, 17, 1))


def test_adjacency_from_bones():
    layout = get_layout("kinect20")
    a = spatial_graph(layout)
    assert a.shape == (3, 20, 20)
    np.testing.assert_array_equal(a[0], np.eye(20))
    for child, parent in layout.bones:
        assert a[1][parent, child] > 0  # inward: child -> parent
        assert a[2][child, parent] > 0  # outward: parent -> child
    # each non-empty column is normalised by its degree (CTR-GCN normalize_digraph: A @ D^-1)
    for k in (1, 2):
        sums = a[k].sum(0)
        assert np.allclose(sums[sums > 0], 1.0)
    assert (a[1] > 0).sum() == len(layout.bones) == (a[2] > 0).sum()


def test_persons_are_interchangeable():
    enc = SkeletonEncoder(get_layout("ntu25"), 3, "cpu", "stock").eval()
    x = torch.randn(2, 3, 8, 25, 2)
    torch.testing.assert_close(enc(x), enc(x.flip(-1)), rtol=1e-4, atol=1e-5)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="preset"):
        build_encoder(EncoderConfig(preset="huge"), get_layout("ntu25"))
    with pytest.raises(ConfigError, match="temporal_stride"):
        build_encoder(EncoderConfig(temporal_stride="2"), get_layout("ntu25"))


def test_projection_head_is_unit_norm():
    head = ProjectionHead(128, 32)
    out = head(torch.randn(4, 7, 128))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))


def test_save_load_symmetry(tmp_path):
    cfg = PretrainConfig()
    cfg.model.preset, cfg.model.temporal_stride = "cpu", "none"
    enc = build_encoder(cfg.model, get_layout("msr20"))
    enc.train()
    enc(torch.randn(4, 3, 8, 20, 1))  # move BN running stats away from their init
    enc.eval()
    processor = Processor.from_config(DataConfig(frames=8), enc.layout, 3)
    source = DataSource("msr-action3d", "xsub", seed=3)
    save_pretrained(enc, tmp_path, processor, source, {"classes": ["a", "b"]})
    assert not (tmp_path / "config.yaml").exists()  # the folder describes itself
    bundle = load_encoder(tmp_path)
    loaded = bundle.encoder
    assert loaded.layout == enc.layout and not loaded.training and bundle.data == source
    assert bundle.processor.to_dict() == processor.to_dict() and bundle.meta["classes"] == ["a", "b"]
    x = torch.randn(2, 3, 8, 20, 1)
    torch.testing.assert_close(loaded(x), enc(x))


def test_legacy_encoder_folder_loads_from_its_run_config(tmp_path):
    """Encoder folders written before processor.json existed still load (from the run's config.yaml)."""
    cfg = PretrainConfig()
    cfg.data.frames = 24
    enc = build_encoder(cfg.model, get_layout("msr20"))
    processor = Processor.from_config(cfg.data, enc.layout, 3)
    save_pretrained(enc, tmp_path, processor)
    (tmp_path / "processor.json").unlink()
    with pytest.raises(SugarError, match=r"config\.yaml"):
        load_encoder(tmp_path)
    save_config(cfg, tmp_path / "config.yaml")
    bundle = load_encoder(tmp_path)
    assert bundle.processor.settings.frames == 24 and bundle.data is not None and bundle.data.dataset == "synthetic"


def test_load_encoder_names_what_is_missing(tmp_path):
    with pytest.raises(SugarError, match=r"encoder\.json"):
        load_encoder(tmp_path)


def test_fused_ctrgc_equals_ctrgcn_formulation():
    """The fused CTR-GC equals CTR-GCN's per-subset formula (relation convs, time-mean, tanh, lift, einsum)."""
    from torch import nn

    from sugar.models.encoder import CTRGC

    torch.manual_seed(0)
    m = CTRGC(16, 24, 3)
    x, adjacency, alpha = torch.randn(2, 16, 7, 5), torch.rand(3, 5, 5), torch.tensor([0.6])
    r, c, expected = m.rel, m.out, 0
    for i in range(3):
        def conv(layer, x, width, i=i):
            rows = slice(i * width, (i + 1) * width)
            return nn.functional.conv2d(x, layer.weight[rows], layer.bias[rows])
        x1, x2, x3 = conv(m.phi, x, r).mean(-2), conv(m.psi, x, r).mean(-2), conv(m.value, x, c)
        topo = conv(m.lift, torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2)), c) * alpha + adjacency[i]
        expected = expected + torch.einsum("ncuv,nctv->nctu", topo, x3)
    torch.testing.assert_close(m(x, adjacency, alpha), expected, rtol=1e-5, atol=1e-5)


def test_cpu_bf16_runs_channels_last_within_bf16_rounding_of_fp32():
    """Under CPU bf16 autocast the encoder switches to NHWC (oneDNN's fast bf16 convs, with AMX or AVX512-BF16);
    tokens and gradients stay within bf16 rounding of fp32, for several persons and both strides."""
    from sugar.models.encoder import working_layout

    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 25, 2)
    assert working_layout(x[..., 0]) == torch.contiguous_format
    for stride in ("stock", "none"):
        enc = SkeletonEncoder(get_layout("ntu25"), 3, "cpu", stride)
        with torch.inference_mode():
            enc.eval()
            fp32 = enc(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert working_layout(x[..., 0]) == torch.channels_last
                bf16 = enc(x).float()
        assert float((bf16 - fp32).abs().max()) < 0.02 * float(fp32.abs().max())
        enc.train()
        grads = []
        for mixed in (False, True):
            enc.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
                enc(x).float().square().mean().backward()
            grads.append(torch.cat([p.grad.flatten() for p in enc.parameters()]))
        # bf16 rounding alone gives ~0.975 here (NCHW bf16 too): biases ahead of a BatchNorm have ~0 true gradient
        assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.95


def test_contiguous_gradients_leave_the_temporal_conv_unchanged(monkeypatch):
    """In NHWC the temporal conv's branches hand BatchNorm contiguous gradients (a speed-up only): same gradients."""
    from sugar.models import encoder

    torch.manual_seed(0)
    tcn = encoder.MultiScaleTemporalConv(24)
    x = torch.randn(3, 24, 10, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    grads = []
    for patched in (False, True):
        if patched:
            monkeypatch.setattr(encoder._ContiguousGrad, "apply", lambda t: t)
        tcn.zero_grad()
        x.grad = None
        tcn(x).square().sum().backward()
        grads.append([x.grad.clone(), *[p.grad.clone() for p in tcn.parameters()]])
    for a, b in zip(*grads, strict=True):  # summation order differs (a strided vs a contiguous reduction)
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
