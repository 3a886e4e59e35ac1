"""Run filters (one grammar), tags and notes, and the CSV / Markdown / LaTeX tables."""

from __future__ import annotations

import csv
import io
import json
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storehelpers import make_run

from bntui.cli import main
from bntui.config import RunConfig
from bntui.filters import FilterError, RunFacts, parse_filter
from bntui.store import list_runs
from bntui.store.annotations import ANNOTATIONS_FILE, read_annotations
from bntui.present.tables import PlainTable, to_csv, to_latex, to_markdown

# -- the filter grammar ----------------------------------------------------------------------

LRS = (0.001, 0.01, 0.1, 1.0)
NORMS = ("batch", "group", "layer")
STATUSES = ("finished", "diverged", "running")
TAGS = ("paper", "draft", "lr")
NUMBER_OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

facts_strategy = st.builds(
    lambda index, lr, bn, norm, seed, status, tags: RunFacts(
        id=f"run{index:03d}",
        status=status,
        group="g1" if index % 2 else None,
        config=RunConfig(lr=lr, bn=bn, norm=norm, seed=seed),
        tags=tuple(sorted(tags)),
    ),
    st.integers(0, 999),
    st.sampled_from(LRS),
    st.booleans(),
    st.sampled_from(NORMS),
    st.integers(0, 3),
    st.sampled_from(STATUSES),
    st.sets(st.sampled_from(TAGS)),
)

# A term as text and, independently, the predicate it must mean.
term_strategy = st.one_of(
    st.builds(
        lambda op, lr: (f"lr{op}{lr}", lambda f: NUMBER_OPS[op](f.config.lr, lr)),
        st.sampled_from(sorted(NUMBER_OPS)),
        st.sampled_from(LRS + (0.05,)),
    ),
    st.builds(
        lambda op, seed: (f"seed{op}{seed}", lambda f: NUMBER_OPS[op](f.config.seed, seed)),
        st.sampled_from(sorted(NUMBER_OPS)),
        st.integers(0, 3),
    ),
    st.builds(lambda on: (f"bn={'on' if on else 'off'}", lambda f: f.config.bn == on), st.booleans()),
    st.builds(lambda norm: (f"norm={norm}", lambda f: f.config.norm == norm), st.sampled_from(NORMS)),
    st.builds(lambda norm: (f"norm!={norm}", lambda f: f.config.norm != norm), st.sampled_from(NORMS)),
    st.builds(lambda tag: (f"tag:{tag}", lambda f: tag in f.tags), st.sampled_from(TAGS)),
    st.builds(lambda s: (f"status:{s}", lambda f: f.status == s), st.sampled_from(STATUSES)),
    st.builds(lambda p: (f"id:{p}", lambda f: f.id.startswith(p)), st.sampled_from(["run", "run0", "run1", "x"])),
    st.builds(lambda g: (f"group:{g}", lambda f: f.group == g), st.just("g1")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(facts_strategy, max_size=12), st.lists(term_strategy, max_size=4))
def test_a_filter_selects_exactly_the_runs_a_direct_predicate_selects(runs, terms):
    query = " ".join(text for text, _ in terms)
    predicate = parse_filter(query)
    expected = [run for run in runs if all(check(run) for _, check in terms)]
    assert [run for run in runs if predicate(run)] == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lr<abc", "filter 'lr<abc': lr takes a number"),
        ("width=3", "filter 'width=3': unknown setting 'width'"),
        ("bn=maybe", "filter 'bn=maybe': bn is on or off"),
        ("norm<batch", "filter 'norm<batch': norm takes = or != only"),
        ("tag:", "filter 'tag:': give a value after tag:"),
        ("lr", "filter 'lr': write SETTING=VALUE"),
    ],
)
def test_a_bad_query_is_one_line_naming_the_term(query, expected):
    with pytest.raises(FilterError) as caught:
        parse_filter(query)
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_runs_filter_in_the_cli(tmp_path, capsys):
    make_run(tmp_path, lr=0.1, bn=True)
    make_run(tmp_path, lr=0.001, bn=False)
    status = main(["runs", "--runs-dir", str(tmp_path), "--json", "--filter", "lr>0.01 bn=on"])
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert status == 0 and len(runs) == 1 and "-bn-" in runs[0]["id"]
    assert main(["runs", "--runs-dir", str(tmp_path), "--filter", "lr<x"]) == 2
    assert "lr takes a number" in capsys.readouterr().err


# -- tags and notes --------------------------------------------------------------------------


def test_tags_and_notes_survive_export_and_import(tmp_path, capsys):
    source, target = tmp_path / "a", tmp_path / "b"
    run = make_run(source, group="g1", bn=True)
    make_run(source, group="g1", bn=False)
    config_before = (run.path / "config.json").read_bytes()
    assert main(["tag", "--runs-dir", str(source), "g1", "paper", "lr"]) == 0
    assert main(["untag", "--runs-dir", str(source), run.run_id, "lr"]) == 0
    assert main(["note", "--runs-dir", str(source), run.run_id, "the good one"]) == 0
    assert (run.path / "config.json").read_bytes() == config_before  # the record is untouched
    assert read_annotations(run.path).tags == ["paper"]
    export = tmp_path / "x.json"
    assert main(["export", "--runs-dir", str(source), "-o", str(export)]) == 0
    assert main(["import", "--runs-dir", str(target), str(export)]) == 0
    imported = {r.id: read_annotations(r.path) for r in list_runs(target)}
    assert imported[run.run_id].tags == ["paper"] and imported[run.run_id].note == "the good one"
    assert sorted(len(a.tags) for a in imported.values()) == [1, 2]
    # Importing again: the same runs (tags are not part of what makes a run the same).
    capsys.readouterr()
    assert main(["import", "--runs-dir", str(target), str(export)]) == 0
    assert len(list_runs(target)) == 2


def test_a_bad_tag_is_refused_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["tag", "--runs-dir", str(tmp_path), run.run_id, "two words"]) == 2
    assert "must be 1 to 64 letters" in capsys.readouterr().err
    assert not (run.path / ANNOTATIONS_FILE).exists()


def test_a_damaged_annotations_file_costs_only_the_tags(tmp_path):
    run = make_run(tmp_path)
    (run.path / ANNOTATIONS_FILE).write_text("{not json")
    assert read_annotations(run.path).tags == []
    (stored,) = list_runs(tmp_path)
    assert stored.status == "finished" and not stored.damaged


# -- formats ---------------------------------------------------------------------------------

TRICKY = PlainTable(["name", "value"], [["a|b & c_%", "1.5"], ['quote " and, comma', "2"]], "T & t", {1})


def test_csv_parses_back_with_the_csv_module():
    assert list(csv.reader(io.StringIO(to_csv(TRICKY)))) == [TRICKY.headers, *TRICKY.rows]


def test_markdown_is_a_table_of_the_same_cells():
    lines = [line for line in to_markdown(TRICKY).splitlines() if line.startswith("|")]
    split = [
        [c.strip().replace(r"\|", "|") for c in __import__("re").split(r"(?<!\\)\|", line)[1:-1]] for line in lines
    ]
    assert split[0] == TRICKY.headers and split[1] == ["---", "---:"] and split[2:] == TRICKY.rows


def test_latex_is_a_tabular_with_a_row_per_row():
    text = to_latex(TRICKY)
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert r"\begin{tabular}{lr}" in text and len(body) == 2
    assert all(line.endswith(r"\\") and line.count(" & ") == 1 for line in body)
    assert r"a|b \& c\_\%" in body[0]


def test_export_csv_has_a_row_per_run_with_named_columns(tmp_path, capsys):
    make_run(tmp_path, lr=0.1, seed=3)
    make_run(tmp_path, lr=0.01, bn=False)
    assert main(["export", "--runs-dir", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2
    assert {row["lr"] for row in rows} == {"0.1", "0.01"} and {row["bn"] for row in rows} == {"on", "off"}
    assert float(rows[0]["test_accuracy"]) == pytest.approx(0.87)
    assert {"seed", "norm", "status", "id", "tags"} <= set(rows[0])


@pytest.mark.parametrize("fmt", ["md", "latex"])
def test_export_tables_have_a_row_per_run(tmp_path, capsys, fmt):
    make_run(tmp_path)
    make_run(tmp_path, bn=False)
    assert main(["export", "--runs-dir", str(tmp_path), "--format", fmt]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.startswith("| 2") or (fmt == "latex" and l.endswith(r"\\"))]
    assert len(rows) == (2 if fmt == "md" else 3)  # LaTeX: the header row too


def test_compare_runs_as_csv(tmp_path, capsys):
    first = make_run(tmp_path, lr=0.1)
    second = make_run(tmp_path, lr=0.01)
    assert main(["compare", "--runs-dir", str(tmp_path), first.run_id, second.run_id, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["id"], row["lr"]) for row in rows] == [(first.run_id, "0.1"), (second.run_id, "0.01")]


@pytest.mark.parametrize("fmt", ["md", "latex", "csv"])
def test_a_group_s_result_card_as_a_table(tmp_path, capsys, fmt):
    for seed in range(3):
        for bn in (True, False):
            make_run(tmp_path, group="g1", seed=seed, bn=bn)
    assert main(["compare", "--runs-dir", str(tmp_path), "--group", "g1", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "BN - no BN" in out and "87.00%" in out.replace(r"\%", "%")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0][:3] == ["arm", "n", "test accuracy"] and [r[0] for r in rows[1:]] == [
            "BN",
            "no BN",
            "BN - no BN",
        ]
