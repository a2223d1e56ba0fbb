"""Typed trainer configs: the command line is derived from the dataclass, presets are instances
(a misspelt setting fails when the preset is built), and the recipe hands trainers configs."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from training.config import add_config_arguments, config_from_args
from training.loop import warmup_cosine
from training.recipe import PRESETS, TRAINERS, RecipePreset
from training.train_codec import CodecConfig
from training.train_denoiser import DenoiserConfig
from training.train_mc3 import MC3Config


def _parse(cls, argv: list[str]):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return config_from_args(cls, parser.parse_args(argv))


def test_command_line_and_dataclass_give_the_same_config():
    parsed = _parse(
        DenoiserConfig,
        ["feats", "-o", "run", "--steps", "7", "--video-channels", "4", "8", "--cpu",
         "--objective", "v"],
    )  # fmt: skip
    expected = DenoiserConfig(
        features="feats", out="run", steps=7, video_channels=(4, 8), cpu=True, objective="v"
    )
    assert parsed == expected
    assert _parse(MC3Config, ["--data", "d", "--out", "o", "--no-augment"]).augment is False
    assert _parse(MC3Config, ["--data", "d", "--out", "o"]).augment is True


def test_required_options_and_choices_are_checked_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        _parse(CodecConfig, ["--data", "d"])
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(CodecConfig, ["--data", "d", "--out", "o", "--preset", "huge"])
    assert "huge" in capsys.readouterr().err


def test_a_misspelt_setting_fails_when_the_preset_is_built():
    with pytest.raises(TypeError, match="lattent_dim"):
        CodecConfig(preset="small", lattent_dim=32)
    with pytest.raises(TypeError):
        dataclasses.replace(PRESETS["tiny"].codec, stepz=3)


def test_every_recipe_preset_holds_one_typed_config_per_trainer():
    for preset in PRESETS.values():
        assert isinstance(preset, RecipePreset)
        for name, module in TRAINERS.items():
            config = getattr(preset, name)
            assert config is config_from_args(type(config), config)
            assert type(config).__module__ == module.__name__


def test_warmup_cosine_rises_then_falls_to_zero():
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0) and f(500) == pytest.approx(0.0)
