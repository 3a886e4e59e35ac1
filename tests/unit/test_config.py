"""RunConfig: defaults from the lab, one-line messages naming the field, exact JSON round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from bntui.config import (
    MAX_SEED,
    RunConfig,
    TrainingFields,
    check_device_available,
    field_errors,
    format_validation_error,
)
from bntui.launch import plan_runs


def message_for(**values) -> str:
    with pytest.raises(ValidationError) as caught:
        RunConfig(**values)
    text = format_validation_error(caught.value)
    assert "\n" not in text
    return text


def test_lab_defaults_depend_on_the_architecture():
    mlp = RunConfig()
    assert (mlp.arch, mlp.epochs, mlp.dropout, mlp.hidden_sizes) == ("mlp", 10, 0.0, [128, 64])
    assert (mlp.lr, mlp.batch_size, mlp.val_fraction, mlp.optimizer) == (1e-3, 64, 0.2, "adam")
    assert (mlp.activation, mlp.bn, mlp.bn_placement) == ("relu", True, "before")
    lenet = RunConfig(arch="lenet5")
    assert (lenet.epochs, lenet.dropout) == (20, 0.3)
    assert RunConfig(arch="lenet5", epochs=3, dropout=0.0).dropout == 0.0


@pytest.mark.parametrize(
    ("values", "field", "allowed"),
    [
        ({"lr": 0}, "lr", "greater than 0"),
        ({"lr": -1e-3}, "lr", "greater than 0"),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"val_fraction": 0}, "val_fraction", "greater than 0"),
        ({"val_fraction": 1.0}, "val_fraction", "less than 1"),
        ({"dataset": "imagenet"}, "dataset", "'mnist-mini', 'mnist', 'fashion-mnist' or 'cifar10'"),
        ({"arch": "resnet"}, "arch", "'mlp' or 'lenet5'"),
        ({"device": "tpu"}, "device", "auto, cpu, cuda, cuda:N or mps"),
        ({"bn": True, "batch_size": 1}, "batch_size", "cannot train on one sample"),
        ({"hidden_sizes": "12,x"}, "hidden_sizes", "comma-separated positive integers"),
        ({"hidden_sizes": []}, "hidden_sizes", "positive integers"),
        ({"colour": "red"}, "colour", "unknown setting"),
        # inf passed every bound and a run was stored with null in its config (JSON has no inf).
        ({"bn_eps": float("inf")}, "bn_eps", "finite number"),
        ({"lr": "inf"}, "lr", "finite number"),
        ({"bn_momentum": float("nan")}, "bn_momentum", "finite number"),
        ({"sgd_momentum": "-inf"}, "sgd_momentum", "finite number"),
        (
            {"norm": "group", "hidden_sizes": [64], "norm_groups": 7},
            "norm_groups",
            "7 does not divide layer fc1's width 64; must divide every hidden layer's width (1, 2, 4, 8, 16, 32, 64)",
        ),
        (
            {"norm": "group", "arch": "lenet5", "norm_groups": 4},
            "norm_groups",
            "4 does not divide layer conv1's width 6; must divide every hidden layer's width (1, 2)",
        ),
        ({"ghost_batch_size": 1}, "ghost_batch_size", "greater than or equal to 2"),
        ({"renorm_rmax": 0.5}, "renorm_rmax", "greater than or equal to 1"),
        ({"renorm_dmax": -1}, "renorm_dmax", "greater than or equal to 0"),
        ({"renorm_warmup_steps": -1}, "renorm_warmup_steps", "greater than or equal to 0"),
        ({"landscape_every": -1}, "landscape_every", "greater than or equal to 0"),
    ],
)
def test_invalid_values_name_the_field_and_what_is_allowed(values, field, allowed):
    text = message_for(**values)
    assert text.startswith(f"{field}: ")
    assert allowed in text


def test_field_errors_map_fields_for_the_form():
    with pytest.raises(ValidationError) as caught:
        RunConfig(lr=-1, batch_size=1)
    errors = field_errors(caught.value)
    assert "lr" in errors and "greater than 0" in errors["lr"]
    with pytest.raises(ValidationError) as caught:
        RunConfig(batch_size=1)
    assert "one sample" in field_errors(caught.value)["batch_size"]


def test_batch_size_one_is_fine_without_batchnorm():
    assert RunConfig(bn=False, batch_size=1).batch_size == 1
    assert RunConfig(norm="group", batch_size=1).batch_size == 1  # per-image statistics
    assert RunConfig(norm="layer", batch_size=1).batch_size == 1
    for norm in ("ghost", "renorm"):
        assert "one sample" in message_for(norm=norm, batch_size=1)


def test_bn_accepts_on_and_off_words():
    assert RunConfig(bn="off").bn is False
    assert RunConfig(bn="on").bn is True


def test_missing_cuda_is_reported_by_name():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"device: 'cuda' is not present on this machine"):
        check_device_available("cuda")
    check_device_available("cpu")
    check_device_available("auto")


@settings(max_examples=60, deadline=None)
@given(
    dataset=st.sampled_from(["mnist-mini", "mnist", "fashion-mnist", "cifar10"]),
    arch=st.sampled_from(["mlp", "lenet5"]),
    lr=st.floats(min_value=1e-8, max_value=10, allow_nan=False),
    hidden=st.lists(st.integers(1, 4096), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    bn=st.booleans(),
    momentum=st.floats(min_value=1e-6, max_value=1.0),
)
def test_json_round_trip_is_exact(dataset, arch, lr, hidden, seed, bn, momentum):
    config = RunConfig(dataset=dataset, arch=arch, lr=lr, hidden_sizes=hidden, seed=seed, bn=bn, bn_momentum=momentum)
    again = RunConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.model_dump_json() == config.model_dump_json()


def test_plan_pairs_bn_arms_per_seed_in_one_group():
    plan = plan_runs(TrainingFields(seed=5, epochs=2), "both", seeds=3)
    assert [(c.seed, c.bn) for c in plan.configs] == [
        (5, True),
        (5, False),
        (6, True),
        (6, False),
        (7, True),
        (7, False),
    ]
    assert plan.group is not None
    single = plan_runs(TrainingFields(), "off", seeds=1)
    assert single.group is None and [c.bn for c in single.configs] == [False]


def test_every_float_setting_refuses_inf():
    floats = [name for name, field in RunConfig.model_fields.items() if field.annotation in (float, float | None)]
    assert {"lr", "bn_eps", "bn_momentum", "dropout", "sgd_momentum", "val_fraction"} <= set(floats)
    for name in floats:
        assert message_for(**{name: float("inf")}).startswith(f"{name}: must be a finite number")


def test_a_plan_whose_seeds_would_pass_the_largest_seed_is_refused():
    assert [c.seed for c in plan_runs(TrainingFields(seed=MAX_SEED - 1), "on", seeds=2).configs] == [
        MAX_SEED - 1,
        MAX_SEED,
    ]
    with pytest.raises(ValueError) as caught:
        plan_runs(TrainingFields(seed=MAX_SEED), "both", seeds=2)
    assert str(caught.value).startswith("seeds: 2 seeds from seed 2147483647 go past the largest seed")
    assert f"start at seed {MAX_SEED - 1} or lower" in str(caught.value)


def test_groups_are_checked_only_for_group_norm_with_normalization_on():
    assert RunConfig(norm="batch", hidden_sizes=[64], norm_groups=7).norm_groups == 7
    assert RunConfig(norm="group", bn=False, hidden_sizes=[64], norm_groups=7).bn is False
    assert RunConfig(norm="group", arch="lenet5", norm_groups=2).norm_groups == 2


def test_a_config_without_norm_reads_as_batch_norm():
    old = RunConfig().model_dump()
    for name in (
        "norm",
        "norm_groups",
        "ghost_batch_size",
        "renorm_rmax",
        "renorm_dmax",
        "renorm_warmup_steps",
        "landscape_every",
    ):
        del old[name]
    config = RunConfig.model_validate(old)
    assert (config.norm, config.landscape_every) == ("batch", 0)


def test_labels_name_the_norm():
    assert RunConfig(norm="group").label == "mnist-mini/mlp/gn/s0"
    assert RunConfig(norm="renorm", bn=False).label == "mnist-mini/mlp/no-bn/s0"
    assert RunConfig().label == "mnist-mini/mlp/bn/s0"


def test_a_sweep_plans_one_run_per_combination_in_one_group():
    plan = plan_runs(
        TrainingFields(arch="lenet5"),
        "on",
        seeds=2,
        sweep={"batch_size": [4, 32], "norm": ["batch", "group", "renorm"]},
    )
    assert [(c.batch_size, c.norm, c.seed) for c in plan.configs] == [
        (4, "batch", 0),
        (4, "batch", 1),
        (4, "group", 0),
        (4, "group", 1),
        (4, "renorm", 0),
        (4, "renorm", 1),
        (32, "batch", 0),
        (32, "batch", 1),
        (32, "group", 0),
        (32, "group", 1),
        (32, "renorm", 0),
        (32, "renorm", 1),
    ]
    assert plan.group is not None and all(c.bn for c in plan.configs)


def test_every_preset_plans_valid_runs():
    from bntui.presets import PRESETS, preset_values

    for name in PRESETS:
        values = preset_values(name, dataset_present=False)
        sweep = values.pop("sweep", None)
        bn, seeds = values.pop("bn"), values.pop("seeds")
        plan = plan_runs(TrainingFields(**values), bn, seeds, sweep)
        assert plan.configs and all(c.dataset == "mnist-mini" for c in plan.configs), name
    santurkar = preset_values("santurkar-landscape", dataset_present=True)
    assert (santurkar["dataset"], santurkar["landscape_every"], santurkar["bn"]) == ("cifar10", 25, "both")


def test_a_flag_the_user_gives_replaces_the_presets_sweep_over_it(tmp_path):
    from bntui.cli import RunCommand
    from bntui.commands.run import build_plan
    from bntui.settings import AppSettings

    settings = AppSettings(data_dir=tmp_path, runs_dir=tmp_path / "runs")
    plan, note = build_plan(RunCommand(preset="small-batch"), settings)
    assert sorted({(c.batch_size, c.norm) for c in plan.configs}) == [
        (4, "batch"),
        (4, "group"),
        (4, "renorm"),
        (32, "batch"),
        (32, "group"),
        (32, "renorm"),
    ]
    assert "preset uses mnist-mini" in note
    plan, _ = build_plan(RunCommand(preset="small-batch", batch_size=8), settings)
    assert [(c.batch_size, c.norm) for c in plan.configs] == [(8, "batch"), (8, "group"), (8, "renorm")]


def test_arm_names_say_which_norm():
    from bntui.config import arm_name, norm_description

    assert [arm_name(RunConfig(norm=n)) for n in ("batch", "group", "layer", "renorm", "ghost")] == [
        "BN",
        "GN",
        "LN",
        "BRN",
        "GBN",
    ]
    assert arm_name(RunConfig(bn=False)) == "no BN" and arm_name(RunConfig(norm="group", bn=False)) == "no norm"
    assert norm_description(RunConfig(norm="group", norm_groups=4)) == "GroupNorm (G=4)"
    assert norm_description(RunConfig(norm="renorm")) == "Batch Renorm (rmax 3, dmax 5, warm-up 100 steps)"
