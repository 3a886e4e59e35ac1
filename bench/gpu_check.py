"""Is bntui GPU-ready? Every check of issue 18 on a CUDA device, in about seven minutes, as a
table: reproducible reruns and what determinism costs, honest progress timings, host syncs
per diagnostics flush, out-of-memory handling, the fused optimizer, several GPUs, CUDA
graphs' speed-up, the CUDA tests (pytest -m cuda), and (issue 15) every architecture x BN x
norm trained on the GPU separate, with diagnostics and packed, checked against the CPU, with
packed-vs-separate speed (bench/packed_speed.py).

    python bench/gpu_check.py [--device cuda:0] [--size 1.0] [--skip-tests]

Data: MNIST-format (IDX) and CIFAR-10-format files of random-ish images written to a temp
dir, full size by default (--size 0.25: a quarter), plus the embedded mnist-mini.
Without a CUDA device it says so in one line, runs the checks that mean something on a CPU
(on mnist-mini and small files), and exits with status 2. Put the figures in the README's
GPU section the first time it runs on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from datafixtures import accept_cifar_files_without_md5, write_cifar, write_mnist  # noqa: E402

import bntui.engine.train as train_module  # noqa: E402
from bntui.config import RunConfig  # noqa: E402
from bntui.engine.device import (  # noqa: E402
    KernelSettings,
    available_devices,
    device_warnings,
    lane_for,
)
from bntui.engine.diagnostics import DiagnosticsRecorder  # noqa: E402
from bntui.engine.events import Diagnostics, EpochEnded, Progress, RunStarted  # noqa: E402
from bntui.engine.memory import is_out_of_memory, planned_parameters  # noqa: E402
from bntui.engine.models import build_model  # noqa: E402

BUDGET_SECONDS = 420


@dataclass
class Row:
    check: str
    ok: bool | None  # None: not applicable here
    figure: str


ROWS: list[Row] = []


def run_check(name: str, function: Callable[[str, Path], tuple[bool | None, str]], device: str, data: Path) -> None:
    """Run one check and record its row; a check that raises is a failed row, not a stop."""
    started = time.perf_counter()
    try:
        ok, figure = function(device, data)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        ok, figure = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    ROWS.append(Row(name, ok, f"{figure}  [{time.perf_counter() - started:.1f}s]"))
    mark = "ok" if ok else "n/a" if ok is None else "FAIL"
    print(f"  {mark:<4} {name}: {figure}", flush=True)


def train_events(config: RunConfig, data_dir: Path) -> list:
    events: list = []
    result = train_module.train(config, events.append, lambda: False, data_dir=data_dir)
    if result.status != "finished":
        raise RuntimeError(f"run {result.status}: {result.message}")
    return events


def losses(events) -> list[float]:
    found = []
    for event in events:
        if isinstance(event, Progress):
            found.append(event.train_loss)
        elif isinstance(event, EpochEnded):
            found += [event.train_loss, event.val_loss, event.val_accuracy]
    return found


def epoch_seconds(events, epoch: int = 1) -> float:
    return next(e.epoch_seconds for e in events if isinstance(e, EpochEnded) and e.epoch == epoch)


def steps_per_second(events, skip_first: bool = True) -> float:
    started = events[0]
    epochs = [e for e in events if isinstance(e, EpochEnded)][1 if skip_first else 0 :]
    return started.steps_per_epoch * len(epochs) / sum(e.epoch_seconds for e in epochs)


# -- the checks ----------------------------------------------------------------------------


def check_warm_up(device: str, data: Path) -> tuple[bool, str]:
    """Runs first in the process, so that CUDA's start-up costs land here if anywhere."""
    config = RunConfig(dataset="mnist", arch="mlp", epochs=1, device=device)
    first, second = train_events(config, data), train_events(config, data)
    ratio = epoch_seconds(first) / epoch_seconds(second)
    return ratio < 1.3, f"{ratio:.2f}x ({epoch_seconds(first):.2f}s vs {epoch_seconds(second):.2f}s)"


def check_progress(device: str, data: Path) -> tuple[bool, str]:
    # Batches of 32: over a thousand steps an epoch on full-size data, so that a fast device
    # still makes several points (at most one per MIN_PROGRESS_SECONDS) an epoch.
    config = RunConfig(dataset="mnist", arch="mlp", epochs=3, batch_size=32, device=device,
                       progress_every=10)  # fmt: skip
    events = train_events(config, data)
    points = [e for e in events if isinstance(e, Progress)]
    by_epoch: dict[int, list[Progress]] = {}
    for point in points:
        by_epoch.setdefault(point.epoch, []).append(point)
    firsts = [p[0].steps_per_second for e, p in by_epoch.items() if e > 1 and len(p) > 1]
    others = [q.steps_per_second for p in by_epoch.values() for q in p[1:]]
    if not firsts or not others:
        return False, f"too few points ({len(points)}) to compare"
    ratio = statistics.median(firsts) / statistics.median(others)
    gaps = [b.elapsed - a.elapsed for a, b in zip(points, points[1:]) if a.epoch == b.epoch]
    rate = len(points) / max(points[-1].elapsed, 1e-9)
    min_gap = train_module.min_progress_seconds(torch.device(device))
    ok = abs(1 - ratio) <= 0.3 and (not gaps or min(gaps) >= min_gap * 0.999)
    return ok, f"{ratio:.2f}x; {rate:.1f} points/s, closest two {min(gaps, default=0):.3f}s apart"


def check_rerun(device: str, data: Path) -> tuple[bool, str]:
    config = RunConfig(dataset="cifar10", arch="lenet5", epochs=1, device=device)
    first, second = train_events(config, data), train_events(config, data)
    started: RunStarted = first[0]
    same = losses(first) == losses(second)
    return same, (
        f"{'identical' if same else 'DIFFERENT'}; cuda {started.cuda_version or '-'}, "
        f"cudnn {started.cudnn_version or '-'}, deterministic {started.deterministic}, "
        f"tf32 {started.tf32}"
    )


@contextlib.contextmanager
def fastest_kernels(device):
    """torch's defaults: cuDNN benchmarking, TF32 convolutions (what determinism gives up)."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32)
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = False, True, True
    try:
        yield KernelSettings("", "", False, True)
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = saved


def check_determinism_cost(device: str, data: Path) -> tuple[bool, str]:
    config = RunConfig(dataset="cifar10", arch="lenet5", epochs=3, device=device, cuda_graphs="off")
    rates: dict[str, list[float]] = {"deterministic": [], "defaults": []}
    for _ in range(2):
        rates["deterministic"].append(steps_per_second(train_events(config, data)))
        saved = train_module.reproducible_kernels
        train_module.reproducible_kernels = fastest_kernels
        try:
            rates["defaults"].append(steps_per_second(train_events(config, data)))
        finally:
            train_module.reproducible_kernels = saved
    fast, exact = max(rates["defaults"]), max(rates["deterministic"])
    return True, f"{fast / exact:.2f}x ({fast:.0f} vs {exact:.0f} steps/s)"


def count_syncs(function: Callable[[], object]) -> int:
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            function()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


def check_syncs(device: str, data: Path) -> tuple[bool, str]:
    figures, ok = [], True
    for arch in ("mlp", "lenet5"):
        config = RunConfig(arch=arch)
        torch.manual_seed(0)
        model = build_model(config, (1, 28, 28)).to(device)
        recorder = DiagnosticsRecorder(model, torch.randn(64, 1, 28, 28, device=device), seed=0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        inputs = torch.randn(64, 1, 28, 28, device=device)
        captures = []
        for step in range(1, 6):
            model(inputs).sum().backward()
            recorder.snapshot()
            optimizer.step()
            captures.append(count_syncs(lambda s=step: recorder.capture(s, 1)))
        flush = count_syncs(recorder.flush)
        ok &= max(captures) == 0 and flush == 1
        figures.append(f"{max(captures)}, {flush}")
    return ok, "; ".join(figures) + " (want 0, 1)"


def check_memory(device: str, data: Path) -> tuple[bool, str]:
    total = torch.cuda.get_device_properties(device).total_memory
    try:
        torch.empty(total, dtype=torch.uint8, device=device)  # more than the device has
        recognised = False
    except RuntimeError as exc:
        recognised = is_out_of_memory(exc)

    def fail_after_allocating(prepared, config):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated after building)")

    torch.cuda.empty_cache()
    before = torch.cuda.memory_reserved(device)
    saved, train_module.warm_up = train_module.warm_up, fail_after_allocating
    try:
        result = train_module.train(RunConfig(dataset="mnist", hidden_sizes=[4096, 4096], device=device),
                                    lambda e: None, lambda: False, data_dir=data)  # fmt: skip
    finally:
        train_module.warm_up = saved
    left = torch.cuda.memory_reserved(device) - before
    huge = RunConfig(dataset="mnist", hidden_sizes=[65536] * 16, device=device)
    began = time.perf_counter()
    refused = train_module.train(huge, lambda e: None, lambda: False, data_dir=data)
    count = planned_parameters(lambda: build_model(huge, (1, 28, 28)))
    ok = (recognised and result.message.startswith(f"out of memory on {device}")
          and left <= 4 * 2**20 and f"{count:,} parameters" in (refused.message or ""))  # fmt: skip
    return ok, (
        f"real OOM recognised {recognised}; {left / 2**20:.1f} MiB kept after a failed run; "
        f"{count:,}-parameter model refused in {time.perf_counter() - began:.2f}s"
    )


def check_fused(device: str, data: Path) -> tuple[bool, str]:
    model = build_model(RunConfig(), (1, 28, 28)).to(device)
    found = []
    for name in ("adam", "sgd"):
        optimizer = train_module.make_optimizer(RunConfig(optimizer=name), model)
        model(torch.randn(8, 1, 28, 28, device=device)).sum().backward()
        optimizer.step()
        found.append(f"{name} fused={bool(optimizer.defaults['fused'])}")
    devices = ",".join(train_module.fused_optimizer_devices())
    return all("True" in f for f in found), f"{'; '.join(found)} (torch: {devices})"


def check_gpus(device: str, data: Path) -> tuple[bool, str]:
    names = [d.name for d in available_devices()]
    lanes = {lane_for(name, names) for name in ("auto", "cuda", "cuda:0")}
    count = torch.cuda.device_count()
    last = f"cuda:{count - 1}"
    torch.cuda.manual_seed_all(7)
    states, current = torch.cuda.get_rng_state_all(), torch.cuda.current_device()
    train_events(RunConfig(dataset="mnist-mini", epochs=1, dropout=0.2, device=last), data)
    kept = torch.cuda.current_device() == current and all(
        torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), states)
    )
    ok = lanes == {"cuda:0"} and kept
    return ok, f"{count} GPU(s); auto/cuda/cuda:0 -> {sorted(lanes)}; trained on {last}, state kept {kept}"


def check_graphs(device: str, data: Path) -> tuple[bool, str]:
    figures, ok = [], True
    for arch, dataset in (("mlp", "mnist"), ("lenet5", "cifar10")):
        base = RunConfig(dataset=dataset, arch=arch, epochs=3, device=device)
        graphed = train_events(base.model_copy(update={"cuda_graphs": "auto"}), data)
        eager = train_events(base.model_copy(update={"cuda_graphs": "off"}), data)
        a, b = losses(graphed), losses(eager)
        gap = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(a, b))
        ok &= graphed[0].cuda_graphs is True and gap < 1e-3
        figures.append(
            f"{steps_per_second(graphed) / steps_per_second(eager):.2f}x "
            f"({steps_per_second(graphed):.0f} vs {steps_per_second(eager):.0f}; "
            f"rel. gap {gap:.1e})"
        )
    return ok, "; ".join(figures)


def check_bench(device: str, data: Path) -> tuple[bool, str]:
    command = [sys.executable, str(ROOT / "bench" / "epoch_speed.py"), "--device", device,
               "--size", "0.1", "--reps", "1", "--models", "mlp"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    last = (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]])[-1]
    return done.returncode == 0, last[:150]


def check_tests(device: str, data: Path) -> tuple[bool, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
               str(ROOT / "tests")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=150, cwd=ROOT, env=env)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    return done.returncode == 0, summary[:150]


# -- issue 15: packed groups, every architecture x BN x norm ----------------------------------

NORMS = ("batch", "group", "layer", "renorm", "ghost")
MATRIX: list[str] = []  # the matrix's own table, printed after the checks' table


def packed_events(configs: list[RunConfig], data: Path) -> list[list]:
    from bntui.engine.packed import Member, train_packed

    events: list[list] = [[] for _ in configs]
    results = train_packed([Member(c, e.append) for c, e in zip(configs, events)], data_dir=data)
    bad = [f"{r.status}: {r.message}" for r in results if r.status != "finished"]
    if bad:
        raise RuntimeError(f"packed run {bad[0]}")
    return events


def peak_mib(device: str, function: Callable[[], object]) -> tuple[object, float | None]:
    """function()'s result and the device memory it peaked at (None off CUDA)."""
    if not device.startswith("cuda"):
        return function(), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = function()
    return result, torch.cuda.max_memory_allocated(device) / 2**20


def final_accuracy(events) -> float:
    return events[-1].test_accuracy


def check_matrix(device: str, data: Path, archs=("mlp", "lenet5")) -> tuple[bool, str]:
    """Every architecture x norm, BN on and off, one epoch of mnist-mini on `device`:
    separate (without and with diagnostics) and as a packed pair (BN on + off, one model;
    without and with diagnostics, each member with its own Diagnostics events), each compared with the CPU's run of the same config (test accuracy within noise: 3
    points on 1,000 test images; the packed pair also with the separate runs on `device`)."""
    worst, ok = 0.0, True
    MATRIX.append(
        f"{'arch':7} {'arm':5} {'sep st/s':>9} {'+diag st/s':>10} {'packed st/s':>11} {'+diag':>6} "
        f"{'peak MiB sep/packed':>19}  test acc cpu / sep / packed"
    )
    for arch in archs:
        for norm in NORMS:
            on = RunConfig(
                dataset="mnist-mini", arch=arch, norm=norm, bn=True, epochs=1, device=device, diagnostics_every=0
            )
            pair = [on, on.model_copy(update={"bn": False})]
            alone, alone_mib = peak_mib(device, lambda: [train_events(c, data) for c in pair])
            diag = [train_events(c.model_copy(update={"diagnostics_every": 25}), data) for c in pair]
            packed, packed_mib = peak_mib(device, lambda: packed_events(pair, data))
            packed_diag = packed_events([c.model_copy(update={"diagnostics_every": 25}) for c in pair], data)
            ok &= all(any(isinstance(e, Diagnostics) for e in member) for member in packed_diag)
            cpu = (
                [train_events(c.model_copy(update={"device": "cpu"}), data) for c in pair] if device != "cpu" else alone
            )
            for index, config in enumerate(pair):
                if index == 1 and norm != "batch":
                    continue  # BN off is one network whatever the norm: shown once
                accuracies = [final_accuracy(e[index]) for e in (cpu, alone, packed)]
                gap = max(accuracies) - min(accuracies)
                worst = max(worst, gap)
                ok &= gap <= 0.03
                arm = config.norm_tag
                mib = f"{alone_mib or 0:.0f} / {packed_mib or 0:.0f}" if alone_mib else "-"
                MATRIX.append(
                    f"{arch:7} {arm:5} {steps_per_second(alone[index], False):9.0f} "
                    f"{steps_per_second(diag[index], False):10.0f} "
                    f"{steps_per_second(packed[index], False):11.0f} "
                    f"{steps_per_second(packed_diag[index], False):6.0f} {mib:>19}  "
                    + " / ".join(f"{a:.1%}" for a in accuracies)
                )
    return ok, f"{len(MATRIX) - 1} arms; widest test-accuracy gap {worst:.1%} (want <= 3.0%)"


def check_packed_speed(device: str, data: Path) -> tuple[bool, str]:
    """bench/packed_speed.py on `device` (the MLP and LeNet-5 on a GPU; --quick on a CPU)."""
    quick = ["--quick"] if device == "cpu" else ["--reps", "1"]
    command = [sys.executable, str(ROOT / "bench" / "packed_speed.py"), "--device", device, *quick]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    lines = done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]]
    figures = "; ".join(" ".join(line.split()) for line in lines[1:-1]) or lines[-1]
    target = 2.5 if device == "cpu" else 4.0
    try:
        ratio = float(lines[-1].rsplit(" ", 1)[-1].rstrip("x"))
    except ValueError:
        return False, lines[-1][:150]
    return done.returncode == 0 and ratio >= target, f"{lines[-1]} (target {target}x); {figures}"[:300]


def check_matrix_cpu(device: str, data: Path) -> tuple[bool, str]:
    return check_matrix(device, data, archs=("mlp",))


# -- the CPU's share ---------------------------------------------------------------------------


def check_rerun_cpu(device: str, data: Path) -> tuple[bool, str]:
    config = RunConfig(dataset="mnist-mini", arch="lenet5", epochs=1, device=device)
    same = losses(train_events(config, data)) == losses(train_events(config, data))
    return same, "identical" if same else "DIFFERENT"


def check_refusal_cpu(device: str, data: Path) -> tuple[bool, str]:
    huge = RunConfig(dataset="mnist-mini", hidden_sizes=[65536] * 16, device=device)
    began = time.perf_counter()
    result = train_module.train(huge, lambda e: None, lambda: False, data_dir=data)
    message = result.message or ""
    return result.status == "failed" and "parameters" in message, (
        f"in {time.perf_counter() - began:.2f}s: {message[:80]}..."
    )


def check_fused_cpu(device: str, data: Path) -> tuple[bool, str]:
    model = build_model(RunConfig(), (1, 28, 28))
    optimizer = train_module.make_optimizer(RunConfig(), model)
    model(torch.randn(8, 1, 28, 28)).sum().backward()
    optimizer.step()
    fused = "cpu" in train_module.fused_optimizer_devices()
    return bool(optimizer.defaults["fused"]) == fused, f"adam fused={bool(optimizer.defaults['fused'])}"


GPU_CHECKS = [
    # First: CUDA's start-up costs land in the first run of the process, if anywhere.
    ("3 warm-up: first run's epoch 1 / a second run's", check_warm_up),
    ("3 progress: first point of an epoch / the others", check_progress),
    ("1 reproducible: LeNet-5 rerun bit-identical", check_rerun),
    ("1 determinism cost: LeNet-5 steps/s, torch defaults / deterministic", check_determinism_cost),
    ("4 host syncs: per capture, per flush (MLP; LeNet-5)", check_syncs),
    ("5 out of memory: recognised, cache given back, oversized refused", check_memory),
    ("6 fused optimizer on this device", check_fused),
    ("7 several GPUs: lanes, current device and RNG kept", check_gpus),
    ("9 CUDA graphs: steps/s graphed / eager (MLP; LeNet-5)", check_graphs),
    ("8 bench: epoch_speed.py --device (small) runs", check_bench),
    ("15 every arch x BN x norm: separate, +diagnostics, packed vs the CPU", check_matrix),
    ("15 packed vs separate: bench/packed_speed.py on the GPU", check_packed_speed),
]
CPU_CHECKS = [
    ("1 reproducible (cpu): LeNet-5 rerun bit-identical", check_rerun_cpu),
    ("3 progress (cpu): first point of an epoch / the others", check_progress),
    ("5 oversized model refused before it is built (cpu)", check_refusal_cpu),
    ("6 fused optimizer on the cpu", check_fused_cpu),
    ("15 MLP x BN x norm (cpu): separate, +diagnostics, packed", check_matrix_cpu),
    ("15 packed vs separate (cpu): bench/packed_speed.py --quick", check_packed_speed),
]


def print_table(started: float) -> None:
    width = max(len(row.check) for row in ROWS)
    print()
    print(f"{'check'.ljust(width)}  result  figure")
    for row in ROWS:
        result = "ok" if row.ok else "n/a" if row.ok is None else "FAIL"
        print(f"{row.check.ljust(width)}  {result:<6}  {row.figure}")
    total = time.perf_counter() - started
    if MATRIX:
        print(
            "\nEvery architecture x norm, one epoch of mnist-mini (steps/s of one run; packed: each"
            " member's steps/s in a pack of two)"
        )
        print("\n".join(MATRIX))
    print(f"\n{sum(1 for r in ROWS if r.ok)} of {len(ROWS)} checks passed in {total:.0f}s (budget {BUDGET_SECONDS}s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda:0", help="the CUDA device to check")
    parser.add_argument("--size", type=float, default=1.0, help="dataset size factor")
    parser.add_argument("--skip-tests", action="store_true", help="leave out pytest -m cuda")
    args = parser.parse_args()
    accept_cifar_files_without_md5()
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        size = args.size if cuda else min(args.size, 0.05)
        write_mnist(data, num_train=int(60000 * size), num_test=int(10000 * size))
        write_cifar(data, per_batch=int(10000 * size), num_test=int(10000 * size))
        if not cuda:
            reasons = "; ".join(device_warnings()) or "torch.cuda.is_available() is False"
            print(
                f"gpu_check: no CUDA device on this machine ({reasons}): "
                "running only the checks that mean something on a CPU",
                flush=True,
            )
            for name, function in CPU_CHECKS:
                run_check(name, function, "cpu", data)
            print_table(started)
            print("gpu_check: no CUDA device, so the GPU checks did not run (exit status 2)")
            return 2
        device = lane_for(args.device, [d.name for d in available_devices()])
        if device not in {d.name for d in available_devices()} or not device.startswith("cuda"):
            names = ", ".join(d.name for d in available_devices())
            print(f"gpu_check: --device {args.device!r} is not a CUDA device here (present: {names})")
            return 2
        print(
            f"gpu_check on {device}: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
            flush=True,
        )
        checks = GPU_CHECKS + ([] if args.skip_tests else [("2 pytest -m cuda", check_tests)])
        for name, function in checks:
            run_check(name, function, device, data)
    print_table(started)
    return 0 if all(row.ok is not False for row in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
