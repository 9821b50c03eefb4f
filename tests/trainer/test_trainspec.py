"""The trainer's interface has one owner: flags, run layout and metrics record round-trip through it."""

from __future__ import annotations

import dataclasses

import pytest

from mnistkit import trainspec
from mnistkit.config import TrainConfig
from mnistkit.errors import ConfigError
from mnistkit.manifests.params import ManifestParams

NON_DEFAULT = TrainConfig(data_dir="s3://bkt/data/mnist", model_dir="/tmp/m", export_dir="/tmp/e", train_steps=7,
                          batch_size=3, learning_rate=0.5, model_type="bn", lr_schedule="cosine", label_smoothing=0.1,
                          export_version=4, augment=True,
                          peer_timeout=9.0, sync_seconds=2.5, seed=11)


def test_every_trainer_field_is_a_flag_and_every_flag_round_trips() -> None:
    trainer_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"workers"}
    assert {f.field for f in trainspec.FLAGS} == trainer_fields
    for cfg in (TrainConfig(), NON_DEFAULT):
        args = trainspec.build_parser({}).parse_args(cfg.to_flags())
        back = trainspec.config_from_args(args)
        assert back == dataclasses.replace(cfg, data_dir=cfg.data_dir, model_dir=cfg.model_dir)
    # only what differs from the defaults, for short command lines
    assert trainspec.to_argv(TrainConfig(seed=5)) == ["--tf-seed=5"]


def test_environment_fallbacks_and_flags_win_over_them() -> None:
    env = {"TF_TRAIN_STEPS": "40", "TF_AUGMENT": "1", "TF_DATA_DIR": "/data", "TF_SEED": ""}
    cfg = trainspec.config_from_args(trainspec.build_parser(env).parse_args([]))
    assert (cfg.train_steps, cfg.augment, cfg.data_dir, cfg.seed) == (40, True, "/data", 0)
    cfg = trainspec.config_from_args(trainspec.build_parser(env).parse_args(["--tf-train-steps=9", "--tf-augment=0"]))
    assert (cfg.train_steps, cfg.augment) == (9, False)


@pytest.mark.parametrize(("argv", "field"), [(["--tf-seed=x"], "seed"), (["--tf-augment=maybe"], "augment"),
                                             (["--tf-sync-seconds=0"], "sync_seconds"),
                                             (["--tf-model-type=rnn"], "model_type"),
                                             (["--tf-lr-schedule=step"], "lr_schedule"),
                                             (["--tf-label-smoothing=0.9"], "label_smoothing")])
def test_a_bad_flag_is_an_error_naming_the_field(argv: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        trainspec.config_from_args(trainspec.build_parser({}).parse_args(argv))
    assert err.value.field == field and field in str(err.value)


def test_every_flag_reaches_the_tfjob_and_the_manifest_args_parse_back() -> None:
    params = ManifestParams.from_train_config(dataclasses.replace(NON_DEFAULT, data_dir="s3://bkt/data/mnist",
                                                                  model_dir="", export_dir=""))
    flags = params.trainer_flags()
    assert [f.split("=")[0] for f in flags] == [f.option for f in trainspec.FLAGS]
    back = trainspec.config_from_args(trainspec.build_parser({}).parse_args(flags))
    for name in ("train_steps", "batch_size", "learning_rate", "model_type", "lr_schedule", "label_smoothing",
                 "export_version", "augment",
                 "peer_timeout", "sync_seconds", "seed", "data_dir"):
        assert getattr(back, name) == getattr(NON_DEFAULT, name), name
    assert back.model_dir == params.model_dir and back.export_dir == trainspec.RunLayout(params.model_dir).export_dir()
    # the workflow's inline TFJob passes each as a parameter
    assert "--tf-augment={{workflow.parameters.model-augment}}" in ManifestParams.placeholders().trainer_flags()


def test_a_bad_trainer_parameter_names_the_workflow_parameter() -> None:
    with pytest.raises(ConfigError) as err:
        ManifestParams().with_parameters({"model-seed": "-1"})
    assert err.value.field == "model_seed"


def test_metrics_records_round_trip_dedupe_and_skip_partial_lines() -> None:
    rows = [trainspec.EpochMetrics(e, 3, e * 10, 1.0 / e, 0.5, None, 0.9, float(e)) for e in (1, 2)]
    again = dataclasses.replace(rows[1], loss=0.1)  # a resumed run writes epoch 2 again
    text = "\n".join([trainspec.format_metrics(r) for r in [*rows, again]]
                     + ['{"epoch": 3, "epochs": 3, "step": 30, "loss": 0.1, "accuracy": 0.9, "future_key": 1}',
                        '{"epoch": 4, "ep'])
    parsed = trainspec.parse_metrics(text)
    assert [m.epoch for m in parsed] == [1, 2, 3]
    assert parsed[1].loss == 0.1 and parsed[0] == rows[0]
