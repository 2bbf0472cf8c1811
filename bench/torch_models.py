#!/usr/bin/env python3
"""torch_models.py — the PyTorch peers of kiln's example models, timed like `kiln bench`.

PyTorch equivalents of examples/mlp.kiln, examples/model_a.kiln, examples/model_b.kiln (Adam
lr 1e-3) and examples/resnet_cifar.kiln (SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4):
same layers, PyTorch's default init, CrossEntropyLoss; timed the way
`kiln bench` times kiln (src/train/bench.c): synthetic inputs N(0,1) and uniform labels from a
fixed seed, W untimed warm-up runs, then every run timed on its own with a monotonic clock
(time.perf_counter) and the median reported. Without --steps it runs at least 10 timed runs
and at least --min-time seconds, like kiln.

  train: zero_grad, forward, loss, backward, optimizer step (model.train())
  infer: forward under torch.inference_mode() (model.eval())

Prints one JSON line per measurement, with the process's peak RSS so far
(resource.getrusage; bench/run_peers.sh runs one measurement per process so that it is the
peak of that measurement). Eager PyTorch, default threading (torch.set_num_threads(T)),
default memory format: the configuration a PyTorch user gets without tuning.

--device cuda runs on the GPU: every run first copies the batch (images and labels) from
pinned host memory with non_blocking=True, as kiln's GPU plans upload their inputs from pinned
staging every run, and ends with torch.cuda.synchronize(), as kiln's runs end when the step is
done;
--compile wraps the model in torch.compile (the training step's forward and backward;
compilation happens in the warm-up runs, which are raised to at least 3).

Not part of kiln's build or tests; bench/run_peers.sh and scripts/gpu-check.sh drive it:
    python bench/torch_models.py --model model_b --mode train --batch 64 --threads 2
    python bench/torch_models.py --device cuda --compile --model resnet_cifar --batch 512
"""
import argparse
import json
import platform
import resource
import statistics
import time

import torch
import torch.nn as nn


def make_model(name):
    """The layers of examples/<name>.kiln (input [1, 28, 28], 10 classes)."""
    if name == "mlp":  # 784 → 256 → 128 → 10, ReLU; 235,146 parameters
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    if name == "model_a":  # conv 32 3×3 valid, ReLU, maxpool 2, dense 64, ReLU, dense 10; 347,146
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 13 * 13, 64),
                             nn.ReLU(), nn.Linear(64, 10))
    if name == "model_b":  # two conv stages (pad 1), dense 128, dense 10; 421,642
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "resnet_cifar":
        return ResNetCifar()
    raise SystemExit(f"torch_models.py: unknown model '{name}' (mlp, model_a, model_b, resnet_cifar)")


def conv_bn(cin, cout, k, stride=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus the shortcut (identity, or strided 1x1 conv + bn), then relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.main = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3))
        self.short = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.main(x) + self.short(x))


class ResNetCifar(nn.Module):
    """examples/resnet_cifar.kiln: stem 32, blocks 32, 32, 64 (stride 2), 64, global average pool, dense 10."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*conv_bn(3, 32, 3), nn.ReLU(), Block(32, 32, 1), Block(32, 32, 1), Block(32, 64, 2),
                                 Block(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


INPUT_SHAPE = {"mlp": (1, 28, 28), "model_a": (1, 28, 28), "model_b": (1, 28, 28), "resnet_cifar": (3, 32, 32)}


def timed_runs(step, steps, warmup, min_time, sync=lambda: None):
    """Warm-up, then per-run times in seconds (at least 10 runs and min_time s when steps is 0)."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    start = time.perf_counter()
    while (len(times) < steps) if steps else (len(times) < 10 or time.perf_counter() - start < min_time):
        a = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - a)
        if len(times) >= 100000:
            break
    return times


def bench(name, mode, batch, threads, steps, warmup, min_time, seed, device="cpu", compile_=False):
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = make_model(name).to(dev)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(batch, *INPUT_SHAPE[name], device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    if dev.type == "cuda":  # the batch comes from pinned host memory every run, like kiln's
        x_host, y_host = x.cpu().pin_memory(), y.cpu().pin_memory()

        def upload():
            x.copy_(x_host, non_blocking=True)
            y.copy_(y_host, non_blocking=True)
    else:
        def upload():
            pass
    fwd = torch.compile(model) if compile_ else model
    if compile_:
        warmup = max(warmup, 3)
    if mode == "train":
        model.train()
        if name == "resnet_cifar":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            upload()
            opt.zero_grad()
            loss = loss_fn(fwd(x), y)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            upload()
            with torch.inference_mode():
                fwd(x)

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = timed_runs(step, steps, warmup, min_time, sync)
    med = statistics.median(times)
    return {
        "framework": "pytorch" + (" compile" if compile_ else ""),
        "version": torch.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor(),
        "model": name,
        "mode": mode,
        "batch": batch,
        "threads": threads,
        "params": params,
        "steps": len(times),
        "warmup": warmup,
        "step_ms": 1e3 * med,
        "min_ms": 1e3 * min(times),
        "max_ms": 1e3 * max(times),
        "mean_ms": 1e3 * statistics.fmean(times),
        "images_per_s": batch / med,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append",
                    help="mlp, model_a, model_b, resnet_cifar (repeatable; default the first three)")
    ap.add_argument("--mode", action="append", choices=["train", "infer"], help="repeatable; default train")
    ap.add_argument("--batch", type=int, action="append", help="repeatable; default 64")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: PyTorch's choice)")
    ap.add_argument("--steps", type=int, default=0, help="timed runs (default: auto, ≥ 10 runs and --min-time s)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (default: eager)")
    ap.add_argument("--versions", action="store_true", help="print the versions as JSON and exit")
    a = ap.parse_args()
    if a.versions:
        try:
            import numpy
            np_version = numpy.__version__
        except ImportError:
            np_version = "not installed"
        print(json.dumps({"torch": torch.__version__, "python": platform.python_version(), "numpy": np_version,
                          "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                          "threads_default": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
                          "config": torch.__config__.show().strip().splitlines()}))
        return
    if a.threads < 0 or a.steps < 0 or a.warmup < 0 or a.min_time < 0:
        raise SystemExit("torch_models.py: --threads, --steps, --warmup and --min-time must be ≥ 0")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"torch_models.py: --device {a.device}: PyTorch sees no CUDA device")
    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    for name in a.model or ["mlp", "model_a", "model_b"]:
        for mode in a.mode or ["train"]:
            for batch in a.batch or [64]:
                if batch < 1:
                    raise SystemExit(f"torch_models.py: --batch {batch}: must be ≥ 1")
                r = bench(name, mode, batch, threads, a.steps, a.warmup, a.min_time, a.seed, a.device, a.compile)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
