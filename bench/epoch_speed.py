"""How much faster is one training epoch in bntui's engine than in the lab's own pipeline?

    python bench/epoch_speed.py [--size 1.0] [--reps 3] [--models mlp,lenet5] [--threads N]
                                [--device auto|cpu|cuda|cuda:N|mps]

Runs offline: it writes MNIST-format (IDX) and CIFAR-10-format (pickle) files of random-ish
images into a temp dir, full size by default (60,000 + 10,000 and 50,000 + 10,000 images;
the lab trains on 80% of the training pool: 48,000 and 40,000 images). `--size 0.25` makes
them four times smaller. Models: MLP 784-128-64-10 with BatchNorm on the MNIST-format data,
LeNet-5 with BatchNorm (dropout 0.3) on the CIFAR-format data, the same bntui model in both
pipelines.

(a) lab: torchvision dataset with ToTensor + Normalize transforms, DataLoader(batch_size=64,
    shuffle=True; num_workers=2 for CIFAR-10 as the lab does), Adam 1e-3, NLL loss,
    loss.item() every step.
(b) engine: bntui.engine.train.train() with the same settings (one epoch, defaults otherwise),
    timed by the epoch_seconds it reports; once without diagnostics (like for like) and
    once with them at the default interval.

Both pipelines train on the same device (`--device`, resolved as a run resolves it; the lab
copies each batch there, as its notebook does on a GPU). Both time the training steps of
one epoch; a second figure adds each pipeline's end-of-epoch evaluation (lab: validation loss; engine: validation loss/accuracy, train accuracy, and the
batch-statistics validation). The two alternate, `--reps` times; medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from datafixtures import accept_cifar_files_without_md5, write_cifar, write_mnist  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from bntui.config import RunConfig, check_device_name  # noqa: E402
from bntui.engine.device import resolve_device  # noqa: E402
from bntui.engine.events import EpochEnded  # noqa: E402
from bntui.engine.models import build_model  # noqa: E402
from bntui.engine.train import train  # noqa: E402

CASES = {
    "mlp": dict(dataset="mnist", arch="mlp", hidden_sizes=[128, 64]),
    "lenet5": dict(dataset="cifar10", arch="lenet5"),
}


def lab_epoch(config: RunConfig, data_dir: Path, device: torch.device) -> tuple[float, float]:
    """(train seconds, train + validation-loss seconds) of one lab-style epoch."""
    channels = 3 if config.dataset == "cifar10" else 1
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)])
    dataset_class = datasets.CIFAR10 if config.dataset == "cifar10" else datasets.MNIST
    trainset = dataset_class(str(data_dir), train=True, download=False, transform=transform)
    validset = dataset_class(str(data_dir), train=True, download=False, transform=transform)
    numval = int(len(trainset) * 0.8)
    trainset.data, trainset.targets = trainset.data[:numval], trainset.targets[:numval]
    validset.data, validset.targets = validset.data[numval:], validset.targets[numval:]
    workers = 2 if config.dataset == "cifar10" else 0
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=64, shuffle=True, num_workers=workers)
    validloader = torch.utils.data.DataLoader(validset, batch_size=64, shuffle=True, num_workers=workers)
    torch.manual_seed(config.seed)
    model = build_model(config, (channels, *trainset.data.shape[1:3])).to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    synchronize(device)
    start = time.perf_counter()
    running_loss = 0.0
    model.train()
    for images, labels in trainloader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(images), labels)
        running_loss += loss.item()
        loss.backward()
        optimizer.step()
    synchronize(device)  # (loss.item() every step already waits; this says so)
    trained = time.perf_counter() - start
    with torch.no_grad():
        model.eval()
        valid_loss = 0.0
        for images, labels in validloader:
            images, labels = images.to(device), labels.to(device)
            valid_loss += F.nll_loss(model(images), labels).item()
    return trained, time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    """Wait for the device, so that a clock read next times work done, not work queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def engine_epoch(config: RunConfig, data_dir: Path, threads: int) -> tuple[float, float]:
    epochs: list[EpochEnded] = []
    result = train(
        config,
        lambda event: epochs.append(event) if isinstance(event, EpochEnded) else None,
        lambda: False,
        data_dir=data_dir,
        threads=threads,
    )
    if result.status != "finished":
        raise SystemExit(f"engine run {result.status}: {result.message}")
    return epochs[0].epoch_seconds, epochs[0].elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=float, default=1.0, help="dataset size factor")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="mlp,lenet5")
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0: default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args()
    accept_cifar_files_without_md5()
    try:
        device = resolve_device(check_device_name(args.device))
    except ValueError as exc:
        raise SystemExit(f"--device: {exc}") from None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads by default, both pipelines on {device}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        print("writing datasets ...", flush=True)
        write_mnist(data_dir, num_train=int(60000 * args.size), num_test=1000)
        write_cifar(data_dir, per_batch=int(10000 * args.size), num_test=1000)
        for name in args.models.split(","):
            compare(name, data_dir, args.reps, args.threads, device)


def compare(name: str, data_dir: Path, reps: int, threads: int, device: torch.device) -> None:
    """Alternate lab, engine without diagnostics (like for like: the lab has none) and engine
    with diagnostics at the default interval; print median times and ratios."""
    base = RunConfig(**CASES[name], epochs=1, batch_size=64, lr=1e-3, bn=True, device=str(device))
    plain = base.model_copy(update={"diagnostics_every": 0})
    runs: dict[str, list[tuple[float, float]]] = {"lab": [], "plain": [], "diagnostics": []}
    for _ in range(reps):
        runs["lab"].append(lab_epoch(base, data_dir, device))
        runs["plain"].append(engine_epoch(plain, data_dir, threads))
        runs["diagnostics"].append(engine_epoch(base, data_dir, threads))
        print(
            f"  {name}: lab {runs['lab'][-1][0]:.2f}s, engine {runs['plain'][-1][0]:.2f}s, "
            f"engine with diagnostics {runs['diagnostics'][-1][0]:.2f}s",
            flush=True,
        )
    labels = ("training steps", "with each pipeline's end-of-epoch evaluation")
    for index, label in enumerate(labels):
        lab_s, plain_s, diag_s = (
            statistics.median(run[index] for run in runs[key]) for key in ("lab", "plain", "diagnostics")
        )
        print(
            f"{name} epoch, {label}: lab {lab_s:.2f}s; engine {plain_s:.2f}s "
            f"-> faster by {lab_s / plain_s:.1f}x; with diagnostics every "
            f"{base.diagnostics_every} steps {diag_s:.2f}s -> {lab_s / diag_s:.1f}x"
        )


if __name__ == "__main__":
    main()
