"""Model and TraceGrad configs: defaults, YAML round trip, clear errors."""

from __future__ import annotations

import pytest

from tgkit.config import (
    Config,
    ModelConfig,
    TraceGradConfig,
    config_from_dict,
    load_config,
    save_config,
)
from tgkit.errors import ConfigError


def test_deephe3_defaults():
    m = ModelConfig()
    assert (m.irreps_hidden, m.num_blocks, m.cutoff, m.lmax) == (
        "64x0e+32x1o+16x2e+8x3o+8x4e", 3, 7.2, 4)


@pytest.mark.parametrize("setup,trace,grad", [("baseline", False, False), ("trace", True, False),
                                              ("grad", False, True), ("tracegrad", True, True)])
def test_setup_switch(setup, trace, grad):
    tg = TraceGradConfig(setup=setup)
    assert (tg.use_trace, tg.use_grad) == (trace, grad)


def test_yaml_round_trip(tmp_path):
    cfg = config_from_dict({"model": {"num_blocks": 2, "irreps_hidden": "8x0e+2x1o"},
                            "tracegrad": {"setup": "grad"}})
    save_config(cfg, tmp_path / "c.yaml")
    back = load_config(tmp_path / "c.yaml")
    assert back == cfg and isinstance(back, Config)
    assert back.model.num_blocks == 2 and back.tracegrad.setup == "grad"


@pytest.mark.parametrize("data,match", [
    ({"model": {"num_block": 2}}, "model: unknown key"),
    ({"modle": {}}, "unknown section"),
    ({"model": {"irreps_hidden": "8x0e+2x1q"}}, "model.irreps_hidden: cannot parse"),
    ({"model": {"irreps_hidden": "4x1o"}}, "model.irreps_hidden: needs 0e"),
    ({"model": {"irreps_embed": "4x1o"}}, "model.irreps_embed: must be scalars"),
    ({"model": {"num_blocks": "3"}}, "model.num_blocks: expected int"),
    ({"tracegrad": {"setup": "trace+grad"}}, "tracegrad.setup: must be one of"),
])
def test_errors_name_section_and_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_load_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  lmax: 99\n")
    with pytest.raises(ConfigError, match="bad.yaml: model.lmax"):
        load_config(p)
