"""Profiles load, overrides apply, unknown keys and wrong types are refused with a message naming them."""

import dataclasses

import pytest
import yaml

import igpt
from igpt.config import SECTIONS, RunConfig, config_from_run, field_docs, load_config, profiles, save_config
from igpt.errors import ConfigError


@pytest.mark.parametrize("name", ["tiny", "lora", "full", "paper", "smoke"])
def test_every_shipped_profile_loads(name):
    cfg = load_config(name)
    assert isinstance(cfg, RunConfig)
    assert name in profiles()


def test_paper_profile_holds_the_papers_values():
    cfg = load_config("paper")
    assert cfg.ppo.kl_coef == 0.02 and cfg.ppo.ptx_coef == 27.8 and cfg.ppo.ptx_ratio == 8
    assert (cfg.ppo.batch_size, cfg.ppo.mini_batch_size) == (512, 64)
    assert cfg.sft.epochs == 16 and cfg.sft.dropout == 0.2 and cfg.sft.lr_min_ratio == 0.1
    assert cfg.reward.k == 9 and cfg.reward.epochs == 1
    assert cfg.ppo.ema_decay == 0.992 and cfg.ppo.lam == 0.95 and cfg.ppo.gamma == 1.0


def test_smoke_lays_sizes_over_the_profile():
    tiny, smoke = load_config("tiny"), load_config("tiny", smoke=True)
    assert smoke.world.corpus_docs < tiny.world.corpus_docs
    assert smoke.pretrain.n_embd < tiny.pretrain.n_embd
    assert smoke.run_dir == tiny.run_dir  # sizes only


def test_overrides_dotted_and_keyword():
    cfg = load_config("tiny", overrides=["ppo.kl_coef=0.05", "seed=3", "pretrain.base_model=null",
                                         "pretrain.betas=[0.8, 0.9]"], sft={"epochs": 2})
    assert cfg.ppo.kl_coef == 0.05 and cfg.seed == 3 and cfg.sft.epochs == 2
    assert cfg.pretrain.base_model is None and cfg.pretrain.betas == [0.8, 0.9]
    assert isinstance(load_config("tiny", overrides=["ppo.kl_coef=1"]).ppo.kl_coef, float)  # int -> float
    assert load_config("tiny", overrides=["sft.lr=3e-4"]).sft.lr == 3e-4  # YAML 1.1 reads 3e-4 as a string


@pytest.mark.parametrize("override, named, suggestion", [
    ("ppo.kl_cof=0.1", "ppo.kl_cof", "ppo.kl_coef"),
    ("ppoo.kl_coef=0.1", "ppoo.kl_coef", None),
    ("sed=1", "sed", "seed"),
    ("key=bad", "key", None),
])
def test_unknown_key_is_named_with_close_matches(override, named, suggestion):
    with pytest.raises(ConfigError) as e:
        load_config("tiny", overrides=[override])
    assert repr(named) in str(e.value)
    if suggestion:
        assert suggestion in str(e.value)


@pytest.mark.parametrize("override, field, wants", [
    ("ppo.kl_coef=abc", "ppo.kl_coef", "a float"),
    ("sft.epochs=1.5", "sft.epochs", "an int"),
    ("sft.use_lora=3", "sft.use_lora", "true/false"),
    ("pretrain.betas=0.9", "pretrain.betas", "a list of a float"),
    ("ppo=3", "ppo", "section"),
])
def test_wrong_type_names_field_and_type(override, field, wants):
    with pytest.raises(ConfigError) as e:
        load_config("tiny", overrides=[override])
    assert repr(field) in str(e.value) and wants in str(e.value)


def test_bad_override_syntax_and_missing_profile():
    with pytest.raises(ConfigError, match="key=value"):
        load_config("tiny", overrides=["ppo.kl_coef"])
    with pytest.raises(ConfigError, match="did you mean tiny"):
        load_config("tinyy")


def test_profile_inheritance_and_loop(tmp_path):
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\nseed: 5\n")
    (tmp_path / "b.yaml").write_text("base: tiny\nppo:\n  kl_coef: 0.3\n")
    cfg = load_config(str(tmp_path / "a.yaml"))
    assert cfg.seed == 5 and cfg.ppo.kl_coef == 0.3
    (tmp_path / "c.yaml").write_text(f"base: {tmp_path / 'c.yaml'}\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(str(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(tmp_path / "d.yaml"))


def test_resolved_config_round_trips_through_the_run_folder(tmp_path):
    cfg = load_config("tiny", overrides=[f"run_dir={tmp_path}", "ppo.kl_coef=0.07"])
    save_config(cfg)
    data = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert data["ppo"]["kl_coef"] == 0.07
    assert config_from_run(tmp_path) == cfg
    assert cfg.hash() == config_from_run(tmp_path).hash()


def test_every_field_is_documented():
    for cls in (RunConfig, *SECTIONS.values()):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in SECTIONS:
                continue
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no comment"


def test_public_entry_point():
    assert igpt.load_config is load_config


def test_a_run_folder_of_another_format_is_refused_and_names_both(tmp_path):
    import json

    from igpt.config import RUN_FORMAT, check_run_dir, save_config

    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}"])
    save_config(cfg)
    stamp = json.loads((tmp_path / "igpt.json").read_text())
    assert stamp["run_format"] == RUN_FORMAT and stamp["igpt"] == igpt.__version__
    check_run_dir(cfg)  # its own format: fine
    (tmp_path / "igpt.json").write_text(json.dumps({"run_format": RUN_FORMAT + 1, "igpt": "9.9.0"}))
    with pytest.raises(igpt.ConfigError, match=rf"igpt 9\.9\.0 in run-folder format {RUN_FORMAT + 1}.*new --run-dir"):
        check_run_dir(cfg)
    (tmp_path / "igpt.json").write_text("[]")
    with pytest.raises(igpt.ConfigError, match="not igpt's run-folder stamp"):
        check_run_dir(cfg)
