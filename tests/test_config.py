from pathlib import Path

import pytest

from sugar.config import PretrainConfig, TuneConfig, load_config, save_config
from sugar.errors import ConfigError


def test_overrides_and_yaml_roundtrip(tmp_path):
    cfg = load_config(PretrainConfig, overrides=["data.dataset=nw-ucla", "lr=0.05", "lr_steps=[3, 4]"])
    assert (cfg.data.dataset, cfg.lr, cfg.lr_steps) == ("nw-ucla", 0.05, (3, 4))
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(PretrainConfig, tmp_path / "c.yaml")
    assert again == cfg


def test_unknown_and_mistyped_keys_are_errors():
    with pytest.raises(ConfigError, match=r"bridge\.bogus"):
        load_config(TuneConfig, overrides=["bridge.bogus=1"])
    with pytest.raises(ConfigError, match="epochs: expected an integer"):
        load_config(TuneConfig, overrides=["epochs=many"])


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads(path: Path) -> None:
    kind = {"pretrain": PretrainConfig, "tune": TuneConfig}[path.parent.name]
    cfg = load_config(kind, path)
    if kind is PretrainConfig:
        stem = path.stem.removesuffix("-cpu")
        # DATASET[-VARIANT][-cpu].yaml; custom.yaml: the dataset is given by --dataset
        assert stem == cfg.data.dataset or stem.startswith(f"{cfg.data.dataset}-") or stem == "custom"
    else:
        assert cfg.bridge.num_queries >= 1 and cfg.lora.r >= 1
