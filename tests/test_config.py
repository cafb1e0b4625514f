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
