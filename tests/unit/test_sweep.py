"""Grids: comma lists in the CLI, sweep files, --dry-run and the size limit."""

from __future__ import annotations

import pytest
from sweephelpers import GROUP, LRS, accuracy, make_lr_sweep

from bntui.cli import RunCommand, main
from bntui.commands.run import build_plan
from bntui.config import RunConfig, swept_settings
from bntui.settings import load_settings
from bntui.stats import summarize_group
from bntui.store import list_runs
from bntui.sweep import GRID_LIMIT, GridError, SweepFile, load_sweep_file, take_grid
from bntui.sweep_stats import summarize_sweep
from bntui.tui.run_view import RunView


def plan_of(tmp_path, **flags):
    command = RunCommand(runs_dir=tmp_path / "runs", **flags)
    plan, _note = build_plan(command, load_settings(runs_dir=tmp_path / "runs"))
    return plan


def test_a_comma_list_makes_a_grid_in_one_group_in_a_fixed_order(tmp_path):
    plan = plan_of(tmp_path, lr="0.01,0.1", bn="both", seeds=2)
    assert len(plan.configs) == 8 and plan.group is not None
    got = [(c.lr, c.seed, c.bn) for c in plan.configs]
    assert got == [(lr, seed, bn) for lr in (0.01, 0.1) for seed in (0, 1) for bn in (True, False)]
    # The same request plans the same runs in the same order (the group id is new each time).
    again = plan_of(tmp_path, lr="0.01,0.1", bn="both", seeds=2)
    assert [c.model_dump() for c in again.configs] == [c.model_dump() for c in plan.configs]


def test_two_lists_multiply_in_the_order_given(tmp_path):
    plan = plan_of(tmp_path, norm="batch,group", batch_size="8,32")
    assert [(c.norm, c.batch_size) for c in plan.configs] == [("batch", 8), ("batch", 32), ("group", 8), ("group", 32)]


def test_grid_values_are_validated_by_the_run_config(tmp_path):
    with pytest.raises(Exception, match="lr"):
        plan_of(tmp_path, lr="0.1,-1")


@pytest.mark.parametrize("text", ["0.1,", ",0.1", "0.1,,1"])
def test_an_empty_value_in_a_list_is_refused_naming_the_setting(text):
    with pytest.raises(GridError, match="^lr: empty value"):
        take_grid({"lr": text})


def test_hidden_sizes_keep_their_own_comma_syntax():
    single, grid = take_grid({"hidden_sizes": "128,64", "lr": "0.1"})
    assert grid == {} and single["hidden_sizes"] == "128,64"


def test_sweep_file_gives_fixed_settings_and_a_grid(tmp_path):
    path = tmp_path / "lr.toml"
    path.write_text('optimizer = "sgd"\nbn = "both"\nseeds = 3\n[grid]\nlr = [0.001, 0.01, 0.1, 1.0]\n')
    plan = plan_of(tmp_path, sweep_file=path)
    assert len(plan.configs) == 4 * 3 * 2
    assert {c.optimizer for c in plan.configs} == {"sgd"}
    assert sorted({c.lr for c in plan.configs}) == [0.001, 0.01, 0.1, 1.0]
    # A flag given on the command line wins over the file, a list there over the file's list.
    plan = plan_of(tmp_path, sweep_file=path, seeds=1, lr="0.5,0.05", optimizer="adam")
    assert [(c.lr, c.optimizer) for c in plan.configs] == [(0.5, "adam"), (0.5, "adam"), (0.05, "adam"), (0.05, "adam")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('optimiser = "sgd"\n', "optimiser: unknown setting"),
        ("[grid]\nlr = []\n", "grid: lr: the list of values is empty"),
        ("[grid]\nseed = [1, 2]\n", "grid: seed: cannot be swept"),
        ("[grid]\nwidth = [1, 2]\n", "grid: width: cannot be swept"),
        ("[grid]\nlr = [[1], [2]]\n", "grid: lr: values must be numbers or names"),
        ("lr = -1\n", "lr: must be greater than 0"),
        ("lr = \n", "is not valid TOML"),
    ],
)
def test_sweep_file_errors_are_one_line_naming_the_file_and_setting(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(GridError) as caught:
        load_sweep_file(path)
    message = str(caught.value)
    assert message.startswith(f"--sweep: {path}") and expected in message and "\n" not in message


def test_sweep_file_model_forbids_extra_settings():
    assert SweepFile.model_config["extra"] == "forbid"


def test_dry_run_prints_the_runs_and_launches_nothing(tmp_path, capsys):
    status = main(
        ["run", "--runs-dir", str(tmp_path / "runs"), "--lr", "0.01,0.1", "--bn", "both", "--seeds", "2", "--dry-run"]
    )
    out = capsys.readouterr().out
    assert status == 0 and "8 runs in group" in out and "nothing was launched" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "/" in line]
    assert [row[0] for row in rows] == [str(i) for i in range(1, 9)]
    assert [row[2] for row in rows] == ["0.01"] * 4 + ["0.1"] * 4
    assert not (tmp_path / "runs").exists()


def test_a_grid_over_the_limit_is_refused_without_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    values = ",".join(str(0.001 * (i + 1)) for i in range(GRID_LIMIT + 1))
    status = main(["run", "--runs-dir", str(tmp_path / "runs"), "--lr", values])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2 and len(lines) == 1
    assert f"{GRID_LIMIT + 1} runs, more than {GRID_LIMIT}: pass --yes" in lines[0]
    assert not (tmp_path / "runs").exists()


# -- the sweep's numbers and tables ----------------------------------------------------------


@pytest.fixture
def sweep_records(tmp_path):
    make_lr_sweep(tmp_path)
    return [run.record for run in list_runs(tmp_path)]


def test_a_sweep_has_one_point_per_value_with_paired_differences(sweep_records):
    summary = summarize_sweep(sweep_records)
    assert summary.settings == ("lr",) and summary.log_x
    assert [p.values for p in summary.points] == [(lr,) for lr in LRS]
    for point in summary.points[:3]:
        (lr,) = point.values
        assert point.paired.n == 3
        assert point.paired.mean_diff == pytest.approx(accuracy(lr, True, 0) - accuracy(lr, False, 0))
        assert point.bn.mean == pytest.approx(accuracy(lr, True, 1))  # seeds 0, 1, 2: the middle one
        assert point.bn.low < point.bn.mean < point.bn.high
    last = summary.points[-1]
    assert last.no_bn.diverged == 3 and last.no_bn.n == 0 and last.paired is None  # counted, not dropped
    assert last.bn.n == 3


def test_seed_pairs_need_the_same_swept_value(sweep_records):
    assert swept_settings(r.config for r in sweep_records) == ["lr"]
    summary = summarize_group(sweep_records)
    assert all(
        next(r for r in sweep_records if r.id == p.bn_run_id).config.lr
        == next(r for r in sweep_records if r.id == p.nobn_run_id).config.lr
        for p in summary.pairs
    )
    assert summary.k == 9  # 3 seeds x 3 rates where both arms finished
    bn, no_bn = (
        RunView(key=k, config=RunConfig(lr=lr, bn=b), status="finished", group=GROUP)
        for k, lr, b in (("a", 0.1, True), ("b", 0.01, False))
    )
    twin = RunView(key="c", config=RunConfig(lr=0.1, bn=False), status="finished", group=GROUP)
    assert not bn.twin_of(no_bn) and bn.twin_of(twin)


def test_a_group_without_a_swept_setting_is_no_sweep(tmp_path):
    from storehelpers import make_run

    for bn in (True, False):
        make_run(tmp_path, group="g", bn=bn)
    assert summarize_sweep([run.record for run in list_runs(tmp_path)]) is None


def test_two_swept_settings_make_a_rows_by_columns_table(tmp_path):
    from storehelpers import make_run

    from bntui.present.sweep_table import sweep_table

    for lr in (0.01, 0.1):
        for batch in (16, 64):
            for bn in (True, False):
                make_run(tmp_path, group="g2", lr=lr, batch_size=batch, bn=bn)
    table = sweep_table(summarize_sweep([run.record for run in list_runs(tmp_path)]))
    assert table.headers == ["lr \\ batch_size", "16", "64"]
    assert [row[0] for row in table.rows] == ["0.01", "0.1"] and all(len(r) == 3 for r in table.rows)


@pytest.mark.parametrize("fmt", ["text", "md", "latex", "csv"])
def test_compare_group_prints_the_sweep(tmp_path, capsys, fmt):
    import csv
    import io

    make_lr_sweep(tmp_path)
    assert main(["compare", "--runs-dir", str(tmp_path), "--group", GROUP, "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [row["lr"] for row in rows] == ["0.001", "0.01", "0.1", "1"]
        assert rows[-1]["diverged BN / no BN"] == "0 / 3" and rows[2]["BN - no BN"] == "+3.00 ± 0.00"
    else:
        assert "+3.00" in out and "0 / 3" in out
    if fmt == "text":
        assert "test accuracy against lr" in out  # the plot


def test_compare_group_metric_best_val_loss(tmp_path, capsys):
    make_lr_sweep(tmp_path)
    assert (
        main(["compare", "--runs-dir", str(tmp_path), "--group", GROUP, "--metric", "best_val_loss", "--format", "csv"])
        == 0
    )
    assert "best validation loss" not in capsys.readouterr().err


def test_lr_sensitivity_preset_plans_the_learning_rate_experiment(tmp_path):
    plan = plan_of(tmp_path, preset="lr-sensitivity")
    lrs = sorted({c.lr for c in plan.configs})
    assert lrs[0] == 0.001 and lrs[-1] == 1.0 and len(lrs) >= 5
    assert {c.optimizer for c in plan.configs} == {"sgd"} and {c.seed for c in plan.configs} == {0, 1, 2}
    assert {c.bn for c in plan.configs} == {True, False} and len(plan.configs) == len(lrs) * 3 * 2


def test_a_sweep_of_one_arm_shows_that_arm_s_means(tmp_path):
    from bntui.present.sweep_table import sweep_table
    from storehelpers import make_run

    for norm in ("batch", "group"):
        for batch in (8, 32):
            make_run(tmp_path, group="small", norm=norm, batch_size=batch, bn=True)
    table = sweep_table(summarize_sweep([run.record for run in list_runs(tmp_path)]))
    assert table.title.startswith("BN, test accuracy")
    assert table.rows == [["batch", "87.00", "87.00"], ["group", "87.00", "87.00"]]
