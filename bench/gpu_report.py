#!/usr/bin/env python3
"""gpu_report.py — writes the markdown report of scripts/gpu-check.sh from its log folder.

    python3 bench/gpu_report.py LOG_DIR REPORT.md FAILED

LOG_DIR holds gpu.txt (nvidia-smi), versions.txt, torch_versions.json, <step>.status and
<step>.log for every step, and bench.jsonl (kiln bench --json and bench/torch_models.py
lines). The report: device and versions, a table of steps (status, time), the throughput
table (kiln vs PyTorch eager and torch.compile, with the issue's targets: ≥ 1.5× eager and
≥ 1.0× compile), the test and sanitizer summaries, and the tail of every failed step's log.
Standard library only.
"""
import json
import os
import sys


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def main():
    log, out, failed = sys.argv[1], sys.argv[2], sys.argv[3] != "0"
    gpu = read(os.path.join(log, "gpu.txt")).strip()
    lines = [f"# kiln GPU check: {gpu.splitlines()[0] if gpu else 'no GPU'}", ""]
    lines.append(f"Overall: **{'FAILED' if failed else 'passed'}** (build, GPU tests, compute-sanitizer)")
    lines += ["", "## Machine and versions", "", "```", "nvidia-smi: " + gpu, read(os.path.join(log, "versions.txt")).strip()]
    tv = read(os.path.join(log, "torch_versions.json")).strip()
    try:
        t = json.loads(tv.splitlines()[-1])
        lines.append(f"torch: {t.get('torch')} (CUDA {t.get('cuda')}, cuDNN {t.get('cudnn')}), python {t.get('python')}")
    except (ValueError, IndexError):
        lines.append("torch: " + (tv[:200] or "not run"))
    lines += ["```", "", "## Steps", "", "| step | status |", "|---|---|"]
    steps = sorted(f[:-7] for f in os.listdir(log) if f.endswith(".status"))
    for s in steps:
        lines.append(f"| {s} | {read(os.path.join(log, s + '.status')).strip()} |")

    rows = []
    for ln in read(os.path.join(log, "bench.jsonl")).splitlines():
        try:
            rows.append(json.loads(ln))
        except ValueError:
            pass
    kiln = {(r["model"], r["batch"]): r for r in rows if "framework" not in r}
    eager = {(r["model"], r["batch"]): r for r in rows if r.get("framework") == "pytorch"}
    comp = {(r["model"], r["batch"]): r for r in rows if r.get("framework") == "pytorch compile"}
    lines += ["", "## Training-step throughput (images/s, median step)", "",
              "| model | batch | kiln | PyTorch eager | torch.compile | kiln/eager (≥ 1.5) | kiln/compile (≥ 1.0) | kiln plan |",
              "|---|---|---|---|---|---|---|---|"]
    for key in sorted(set(kiln) | set(eager) | set(comp)):
        k, e, c = kiln.get(key), eager.get(key), comp.get(key)

        def ips(r):
            return f"{r['images_per_s']:.0f} ({r['step_ms']:.3f} ms)" if r else "—"

        def ratio(a, b, goal):
            if not a or not b:
                return "—"
            x = a["images_per_s"] / b["images_per_s"]
            return f"{x:.2f} {'met' if x >= goal else 'NOT met'}"

        plan = (f"{k.get('plan_steps')} kernels, {k.get('fallbacks')} on the CPU, "
                f"{'CUDA graph' if k.get('cuda_graph') else 'eager'}") if k else "—"
        lines.append(f"| {key[0]} | {key[1]} | {ips(k)} | {ips(e)} | {ips(c)} | {ratio(k, e, 1.5)} | {ratio(k, c, 1.0)} | {plan} |")
    if kiln:
        lines.append("")
        lines.append(f"kiln device: {next(iter(kiln.values())).get('device_name')}")

    for name, title in (("tests", "GPU tests"), ("memcheck", "compute-sanitizer memcheck (op test)"),
                        ("racecheck", "compute-sanitizer racecheck (op test)"),
                        ("memcheck_plan", "compute-sanitizer memcheck (plan test)")):
        text = read(os.path.join(log, name + ".log"))
        if not text:
            continue
        keep = [ln for ln in text.splitlines() if any(w in ln for w in (
            "tests passed", "Test #", "Passed", "Failed", "Skipped", "SKIPPED", "ERROR SUMMARY", "RACECHECK SUMMARY",
            "checks passed", "failed", "Error", "error"))]
        lines += ["", f"## {title}", "", "```"] + keep[-40:] + ["```"]

    train = read(os.path.join(log, "train_model_b.log"))
    acc = [ln for ln in train.splitlines() if ln.startswith("test accuracy") or ln.startswith("training:")]
    if acc:
        ref = None
        results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
        for name in sorted(os.listdir(results)) if os.path.isdir(results) else []:
            if name.endswith("cpu-fashion-mnist-accuracy.md"):
                for ln in read(os.path.join(results, name)).splitlines():
                    if ln.startswith("| model B |"):
                        ref = ln.split("|")[2].strip()
        lines += ["", "## Model B on Fashion-MNIST, trained on the GPU (5 epochs, seed 42)", ""]
        lines += [f"- {ln}" for ln in acc]
        try:
            gpu = float(acc[0].split()[2])
            lines.append(f"- CPU reference (bench/results): {ref}; difference {100 * (gpu - float(ref)):+.2f} points "
                         f"(target: within 0.5)")
        except (ValueError, IndexError, TypeError):
            lines.append(f"- CPU reference (bench/results): {ref}")

    nofuse = {}
    for ln in read(os.path.join(log, "bench_nofuse.jsonl")).splitlines():
        try:
            r = json.loads(ln)
            nofuse[(r["model"], r["batch"])] = r
        except (ValueError, KeyError):
            pass
    if nofuse:
        lines += ["", "## Fused steps (chains, grouped optimizer updates) vs KILN_PASSES without fuse", "",
                  "| model | batch | fused (images/s) | not fused (images/s) | ratio |", "|---|---|---|---|---|"]
        for key in sorted(nofuse):
            f, u = kiln.get(key), nofuse[key]
            ratio = f"{f['images_per_s'] / u['images_per_s']:.3f}" if f and u.get("images_per_s") else "—"
            lines.append(f"| {key[0]} | {key[1]} | {f['images_per_s']:.0f} | {u['images_per_s']:.0f} | {ratio} |"
                         if f else f"| {key[0]} | {key[1]} | — | {u['images_per_s']:.0f} | — |")

    same = read(os.path.join(log, "resident_identical.log")).strip()
    if same:
        lines += ["", "## Training set resident on the GPU (--resident-data) vs staged batches (model B, 1 epoch)", ""]
        for mode in ("staged", "resident"):
            t = [ln for ln in read(os.path.join(log, f"train_{mode}.log")).splitlines()
                 if ln.startswith("training:") or "resident" in ln]
            lines += [f"- {mode}: {ln}" for ln in t[-2:]]
        lines.append(f"- checkpoints: {same.splitlines()[-1]}")

    prof = read(os.path.join(log, "kiln_profile.log")).strip()
    if prof:
        lines += ["", "## Where the time goes (kiln bench --device cuda --profile, model_b batch 512)", "", "```"]
        lines += prof.splitlines()[-60:] + ["```"]

    bad = [s for s in steps if not read(os.path.join(log, s + ".status")).startswith("rc=0")]
    for s in bad:
        tail = read(os.path.join(log, s + ".log")).splitlines()[-30:]
        lines += ["", f"## Log tail: {s}", "", "```"] + tail + ["```"]
    lines += ["", "Raw measurements (JSON lines):", "", "```"] + [json.dumps(r) for r in rows] + ["```", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
