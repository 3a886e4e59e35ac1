"""Export -> import: round trips field for field, hostile ids, bad files, collisions, the schema."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bntui.config import RunConfig
from bntui.store import (
    ImportFileError,
    export_document,
    export_text,
    import_runs,
    list_runs,
    load_run,
    write_export,
)
from bntui.store.exchange import import_id
from bntui.store.schema import SCHEMA_VERSION, ExportDocument, RunRecord, json_schema

from storehelpers import dead_pid, make_run, set_owner

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "export-schema.json"


def export_file(runs, path: Path) -> Path:
    write_export(export_document(runs), path)
    return path


def same_record(a: RunRecord, b: RunRecord) -> bool:
    """Field for field; through JSON so that NaN (a diverged run's loss) equals itself."""
    return a.model_dump_json() == b.model_dump_json()


def a_store_with_every_kind_of_run(runs_dir: Path) -> None:
    make_run(runs_dir, epochs=3, group="g-1", seed=0)
    make_run(runs_dir, epochs=3, group="g-1", seed=0, bn=False, diagnostics=False)
    make_run(runs_dir, epochs=2, status="cancelled", arch="lenet5", dataset="cifar10")
    make_run(runs_dir, epochs=1, status="failed", activation="tanh")
    diverged = make_run(runs_dir, epochs=2, status=None, lr=5.0)
    from bntui.engine.events import EpochEnded, RunDiverged

    diverged.write_event(EpochEnded(3, 30, math.nan, math.inf, 0.1, 0.1, 0.5, 1.8))
    diverged.write_event(RunDiverged(epoch=3, step=30, message="loss is nan"))
    diverged.finish()
    crashed = make_run(runs_dir, epochs=2, status=None, seed=5)
    crashed.close()
    set_owner(crashed.path, pid=dead_pid())


def test_round_trip_is_equal_field_for_field(tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    a_store_with_every_kind_of_run(source)
    exported = list_runs(source)
    assert {run.status for run in exported} == {"finished", "cancelled", "failed", "diverged", "crashed"}
    path = export_file(exported, tmp_path / "export.json")

    report = import_runs(target, path)
    assert report.rejected == []
    assert [new for _, new in report.imported] == [run.id for run in exported]
    imported = {run.id: run for run in list_runs(target)}
    for run in exported:
        back = imported[run.id]
        assert back.damaged is None
        assert same_record(back.record, run.record), run.id
        if not any(math.isnan(v) for v in run.record.history.train_loss):
            assert back.record == run.record


def test_second_round_trip_gives_the_same_document(tmp_path):
    a_store_with_every_kind_of_run(tmp_path / "a")
    first = export_text(export_document(list_runs(tmp_path / "a")))
    (tmp_path / "one.json").write_text(first)
    import_runs(tmp_path / "b", tmp_path / "one.json")
    second = export_text(export_document(list_runs(tmp_path / "b")))
    strip = lambda text: {**json.loads(text), "created": None}  # noqa: E731
    assert strip(first) == strip(second)


def test_colliding_ids_get_a_new_id_and_nothing_is_overwritten(tmp_path):
    make_run(tmp_path, epochs=2)
    [original] = list_runs(tmp_path)
    before = (original.path / "events.jsonl").read_bytes()
    path = export_file([original], tmp_path.parent / "collide.json")
    data = json.loads(path.read_text())
    data["runs"][0]["message"] = "changed elsewhere"  # same id, different content
    path.write_text(json.dumps(data))

    first = import_runs(tmp_path, path)
    second = import_runs(tmp_path, path)
    assert first.imported == [(original.id, original.id + "-import2")]
    assert second.imported == [] and second.skipped == [original.id]
    assert (original.path / "events.jsonl").read_bytes() == before
    copy = load_run(tmp_path, original.id + "-import2")
    assert copy.record == original.record.model_copy(update={"id": copy.id, "message": "changed elsewhere"})


def test_import_id_stays_a_valid_id():
    base = "r" * 128
    assert len(import_id(base, 1)) == 128
    assert import_id(base, 1).endswith("-import2")
    assert import_id("abc", 0) == "abc"


def _document_with(*runs: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "bntui_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "runs": list(runs),
    }


def _minimal_run(run_id: str, **extra) -> dict:
    return {"id": run_id, "status": "finished", "config": {"dataset": "mnist-mini"}, **extra}


@pytest.mark.parametrize("bad_id", ["../x", "/abs", "a/b", "..", ".hidden", "a\\b", "", "x" * 200, "../../etc/passwd"])
def test_ids_that_would_escape_the_runs_dir_are_rejected(tmp_path, bad_id):
    runs_dir = tmp_path / "store" / "runs"
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run(bad_id), _minimal_run("good-run"))))
    report = import_runs(runs_dir, path)
    assert report.imported == [("good-run", "good-run")]
    [(source, reason)] = report.rejected
    assert source == bad_id or source == "#1"
    assert reason.startswith("id: run id must be")
    # Nothing outside the runs dir, nothing but the good run inside.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json", "store"]
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["runs"]
    assert [p.name for p in runs_dir.iterdir()] == ["good-run"]


def test_hostile_group_is_rejected(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run("r1", group="../g"))))
    report = import_runs(tmp_path / "runs", path)
    assert report.imported == [] and report.rejected[0][1].startswith("group:")


def test_each_bad_run_is_reported_and_the_rest_imported(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(
        json.dumps(
            _document_with(
                _minimal_run("ok-1"),
                _minimal_run("bad-lr", config={"lr": -1}),
                "not an object",
                _minimal_run(
                    "bad-history",
                    history={
                        "epoch": [1, 2],
                        "train_loss": [1.0],
                        "val_loss": [],
                        "train_accuracy": [],
                        "val_accuracy": [],
                    },
                ),
                _minimal_run("ok-2", status="crashed"),
            )
        )
    )
    report = import_runs(tmp_path / "runs", path)
    assert [new for _, new in report.imported] == ["ok-1", "ok-2"]
    reasons = dict(report.rejected)
    assert set(reasons) == {"bad-lr", "#3", "bad-history"}
    assert "config.lr" in reasons["bad-lr"]
    assert "differ in length" in reasons["bad-history"]
    assert {run.id: run.status for run in list_runs(tmp_path / "runs")} == {"ok-1": "finished", "ok-2": "crashed"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json", "not valid JSON (line 1 column 1"),
        ("[1, 2, 3]", "not a bntui export"),
        (json.dumps({**_document_with(), "schema_version": 99}), "schema_version 99 is not supported"),
        (json.dumps({"runs": []}), "schema_version missing"),
        (json.dumps({**_document_with(), "runs": {"a": 1}}), "runs must be a list"),
        (json.dumps({**_document_with(), "surprise": 1}), "surprise: unknown setting"),
        (json.dumps({**_document_with(), "created": "yesterday"}), "created"),
    ],
)
def test_a_bad_file_is_rejected_whole_and_nothing_written(tmp_path, content, message):
    path = tmp_path / "doc.json"
    runs = [_minimal_run("would-be-imported")]
    try:
        data = json.loads(content)
        if isinstance(data, dict) and isinstance(data.get("runs"), list):
            data["runs"] = runs
            content = json.dumps(data)
    except json.JSONDecodeError:
        pass
    path.write_text(content)
    with pytest.raises(ImportFileError) as caught:
        import_runs(tmp_path / "runs", path)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
    assert not (tmp_path / "runs").exists()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImportFileError, match="nope.json: cannot read"):
        import_runs(tmp_path / "runs", tmp_path / "nope.json")


def test_schema_version_1_documents_import(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({**_document_with(_minimal_run("old-run")), "schema_version": 1}))
    assert import_runs(tmp_path / "runs", path).imported == [("old-run", "old-run")]


@pytest.mark.parametrize("version", [1, 2])
def test_runs_from_before_the_norm_setting_import_as_batch_norm(tmp_path, version):
    path = tmp_path / "old.json"
    run = _minimal_run("old-run", config={"dataset": "mnist-mini", "bn": True})
    path.write_text(json.dumps({**_document_with(run), "schema_version": version}))
    import_runs(tmp_path / "runs", path)
    [stored] = list_runs(tmp_path / "runs")
    assert (stored.config.norm, stored.config.bn, stored.config.label) == ("batch", True, "mnist-mini/mlp/bn/s0")


def test_landscape_points_survive_export_and_import(tmp_path):
    point = {
        "step": 5,
        "epoch": 1,
        "loss_min": 0.5,
        "loss_max": 2.0,
        "grad_change_min": 0.1,
        "grad_change_max": 0.4,
        "beta_smoothness": None,
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run("r1", landscape={"points": [point]}))))
    import_runs(tmp_path / "runs", path)
    [stored] = list_runs(tmp_path / "runs")
    assert stored.record.landscape.points == [point]
    again = export_file([stored], tmp_path / "again.json")
    assert json.loads(again.read_text())["runs"][0]["landscape"] == {"points": [point]}


def test_a_run_exported_while_running_imports_as_crashed(tmp_path):
    writer = make_run(tmp_path / "a", epochs=2, status=None)
    [live] = list_runs(tmp_path / "a")
    assert live.status == "running"
    path = export_file([live], tmp_path / "live.json")
    import_runs(tmp_path / "b", path)
    [copy] = list_runs(tmp_path / "b")
    assert (copy.status, copy.live, copy.epochs_done) == ("crashed", False, 2)
    writer.close()


def test_import_from_stdin(tmp_path):
    make_run(tmp_path / "a", epochs=1)
    text = export_text(export_document(list_runs(tmp_path / "a")))
    report = import_runs(tmp_path / "b", "-", stdin=io.StringIO(text))
    assert len(report.imported) == 1


def test_write_export_to_stdout_writes_only_the_document(tmp_path):
    make_run(tmp_path, epochs=1)
    out = io.StringIO()
    write_export(export_document(list_runs(tmp_path)), "-", stdout=out)
    doc = ExportDocument.model_validate_json(out.getvalue())
    assert len(doc.runs) == 1


def test_schema_file_is_current():
    current = json.dumps(json_schema(), indent=2) + "\n"
    committed = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    assert committed == current, (
        "docs/export-schema.json is out of date with bntui/store/schema.py; regenerate it with:\n"
        "    python -m bntui schema > docs/export-schema.json"
    )


# -- property: any valid record survives import -> read back ------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_float = st.floats(width=64)
fraction = st.floats(min_value=0.0, max_value=1.0, width=64)
seconds = st.floats(min_value=-1e9, max_value=1e9, width=64)  # the store's limits (schema.Seconds)
small_int = st.integers(min_value=0, max_value=10_000)
aware_time = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@st.composite
def records(draw) -> RunRecord:
    n = draw(st.integers(min_value=0, max_value=5))
    column = lambda values: draw(st.lists(values, min_size=n, max_size=n))  # noqa: E731
    optional = lambda values: draw(st.sampled_from([[], column(values)]))  # noqa: E731
    history = {
        "epoch": column(small_int),
        "train_loss": column(any_float),
        "val_loss": column(any_float),
        "train_accuracy": column(fraction),
        "val_accuracy": column(fraction),
        "epoch_seconds": optional(seconds),
        "step": optional(small_int),
        "elapsed": optional(seconds),
        "val_loss_batch_stats": optional(st.none() | finite),
        "val_accuracy_batch_stats": optional(st.none() | fraction),
    }
    m = draw(st.integers(min_value=0, max_value=6))
    progress = {
        key: draw(st.lists(values, min_size=m, max_size=m))
        for key, values in (("step", small_int), ("epoch", small_int), ("train_loss", finite), ("elapsed", seconds))
    }
    points = draw(
        st.lists(
            st.fixed_dictionaries(
                {"step": small_int, "epoch": small_int},
                optional={
                    "layers": st.lists(st.fixed_dictionaries({"name": st.text(max_size=5), "mean": finite}), max_size=2)
                },
            ),
            max_size=3,
        )
    )
    landscape = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "step": small_int,
                    "epoch": small_int,
                    **{
                        key: st.none() | finite
                        for key in ("loss_min", "loss_max", "grad_change_min", "grad_change_max", "beta_smoothness")
                    },
                },
            ),
            max_size=3,
        )
    )
    final = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                name: fraction if "accuracy" in name else any_float
                for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
            }
        )
    )
    return RunRecord.model_validate(
        {
            "id": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,20}\Z")),
            "status": draw(st.sampled_from(["finished", "cancelled", "failed", "diverged", "crashed"])),
            "message": draw(st.none() | st.text(max_size=20)),
            "group": draw(st.none() | st.just("g-1")),
            "config": RunConfig(
                seed=draw(small_int),
                bn=draw(st.booleans()),
                norm=draw(st.sampled_from(["batch", "group", "layer", "renorm", "ghost"])),
            ),
            "environment": {"python": "3.11", "device": draw(st.sampled_from(["cpu", "cuda:0"]))},
            "split_hash": draw(st.text(alphabet="0123456789abcdef", max_size=8)),
            "history": history,
            "progress": progress,
            "final": final,
            "timings": {
                "started_at": draw(st.none() | aware_time),
                "ended_at": draw(st.none() | aware_time),
                "train_seconds": draw(st.none() | seconds),
                "total_seconds": draw(st.none() | seconds),
                "steps": draw(small_int),
            },
            "diagnostics": {"points": points} if points else None,
            "landscape": {"points": landscape} if landscape else None,
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records())
def test_any_valid_record_round_trips(tmp_path_factory, record):
    runs_dir = tmp_path_factory.mktemp("runs")
    path = runs_dir.parent / f"{runs_dir.name}.json"
    write_export(ExportDocument(runs=[record]), path)
    report = import_runs(runs_dir, path)
    assert report.rejected == []
    [run] = list_runs(runs_dir)
    assert run.damaged is None
    assert same_record(run.record, record)


# -- accuracies, non-finite numbers, duplicates ------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (
            {
                "final": {
                    "train_loss": 0.1,
                    "train_accuracy": 0.9,
                    "val_loss": 0.1,
                    "val_accuracy": 0.9,
                    "test_loss": 0.1,
                    "test_accuracy": 7.5,
                }
            },
            "final.test_accuracy",
        ),
        (
            {
                "history": {
                    "epoch": [1],
                    "train_loss": [0.1],
                    "val_loss": [0.1],
                    "train_accuracy": [-0.1],
                    "val_accuracy": [0.5],
                }
            },
            "history.train_accuracy",
        ),
        (
            {
                "history": {
                    "epoch": [1],
                    "train_loss": [0.1],
                    "val_loss": [0.1],
                    "train_accuracy": [0.5],
                    "val_accuracy": [0.5],
                    "val_accuracy_batch_stats": [1.5],
                }
            },
            "history.val_accuracy_batch_stats",
        ),
    ],
)
def test_an_accuracy_outside_0_1_rejects_the_run_naming_the_field(tmp_path, extra, field):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run("bad-acc", **extra), _minimal_run("ok"))))
    report = import_runs(tmp_path / "runs", path)
    assert report.imported == [("ok", "ok")]
    [(source, reason)] = report.rejected
    assert source == "bad-acc"
    assert reason.startswith(field) and "between 0 and 1" in reason and "\n" not in reason


def test_export_is_strict_json_and_non_finite_losses_round_trip(tmp_path):
    a_store_with_every_kind_of_run(tmp_path / "a")
    text = export_text(export_document(list_runs(tmp_path / "a")))

    def refuse(constant):
        raise ValueError(f"bare {constant} in the export")

    json.loads(text, parse_constant=refuse)  # what jq / JSON.parse accept
    path = tmp_path / "export.json"
    path.write_text(text)
    assert import_runs(tmp_path / "b", path).rejected == []
    [diverged] = [run for run in list_runs(tmp_path / "b") if run.status == "diverged"]
    assert math.isnan(diverged.record.history.train_loss[-1])
    assert diverged.record.history.val_loss[-1] == math.inf


def test_old_exports_with_bare_nan_constants_still_import(tmp_path):
    history = {
        "epoch": [1, 2],
        "train_loss": [0.5, math.nan],
        "val_loss": [0.4, -math.inf],
        "train_accuracy": [0.5, 0.1],
        "val_accuracy": [0.5, 0.1],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_document_with(_minimal_run("old", status="diverged", history=history))))
    assert "NaN" in path.read_text()
    report = import_runs(tmp_path / "runs", path)
    assert report.rejected == []
    back = load_run(tmp_path / "runs", "old").record.history
    assert math.isnan(back.train_loss[1]) and back.val_loss[1] == -math.inf


def test_reimporting_the_same_export_skips_runs_already_in_the_store(tmp_path):
    a_store_with_every_kind_of_run(tmp_path / "a")
    path = export_file(list_runs(tmp_path / "a"), tmp_path / "export.json")
    ids = sorted(run.id for run in list_runs(tmp_path / "a"))

    import_runs(tmp_path / "b", path)
    again = import_runs(tmp_path / "b", path)
    assert again.imported == [] and again.rejected == []
    assert sorted(again.skipped) == ids
    assert sorted(run.id for run in list_runs(tmp_path / "b")) == ids


def test_a_run_listed_twice_in_one_file_is_imported_once(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run("twice"), _minimal_run("twice"))))
    report = import_runs(tmp_path / "runs", path)
    assert report.imported == [("twice", "twice")]
    assert report.skipped == ["twice"]
    assert [run.id for run in list_runs(tmp_path / "runs")] == ["twice"]


def test_same_id_with_different_content_is_imported_under_a_new_id(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(_document_with(_minimal_run("r"), _minimal_run("r", status="failed"))))
    report = import_runs(tmp_path / "runs", path)
    assert report.imported == [("r", "r"), ("r", "r-import2")]
    assert report.skipped == []


def test_a_run_exported_while_queued_is_imported_as_crashed(tmp_path):
    from bntui.config import RunConfig
    from bntui.store import export_document, import_runs, list_runs, write_export
    from bntui.store.queue import LaunchSpec, write_entry
    from bntui.store.writer import reserve_run

    source = tmp_path / "source"
    run_id = reserve_run(source, RunConfig(), group=None)
    write_entry(source, LaunchSpec(run_id=run_id, data_dir=tmp_path))
    document = export_document(list_runs(source))
    assert [run.status for run in document.runs] == ["queued"]
    write_export(document, tmp_path / "out.json")
    report = import_runs(tmp_path / "target", tmp_path / "out.json")
    assert len(report.imported) == 1
    assert [run.status for run in list_runs(tmp_path / "target")] == ["crashed"]  # nothing runs it here
