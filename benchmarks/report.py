"""``python -m benchmarks report``: regenerate ``benchmarks/RESULTS.md`` from the newest JSON records.

    python -m benchmarks report [--results-dir benchmarks/results] [--output benchmarks/RESULTS.md]

For each suite it takes the newest valid record (``models``: the newest for each dtype and memory
format) and writes its machine, commit, date, the command that produced it, its table and the
targets with pass/fail.  The file is generated: edit this module, never the Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import RESULTS, check_record

OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"
MODEL_RATIO_TARGET, MODEL_RATIO_INVESTIGATE = 1.00, 1.05
DATA_RATIO_TARGET = 4.0
DATA_BOUND_TARGET = (
    0.9  # FFCV jpg images/s >= 0.9 x the libjpeg-turbo decode bound of its own JPEGs (issue 19)
)
GENERATED_MAX_SIDE = 500  # benchmarks.data_loading.make_tree
OVERHEAD_TARGET = {"cpu": 1.05, "cuda": 1.03}


def variant(record: dict) -> tuple:
    o = record.get("options", {})
    if record["suite"] == "models":
        return ("models", o.get("dtype"), o.get("memory_format"))
    if record["suite"] == "data":
        return ("data", o.get("max_resolution"))
    return (record["suite"],)


def newest(results_dir: Path) -> list[tuple[Path, dict]]:
    """The newest valid record of each suite variant, in suite order."""
    found: dict[tuple, tuple[tuple, Path, dict]] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if check_record(record):
            continue
        key = variant(record)
        stamp = (record["machine"].get("date", ""), path.name)
        if key not in found or stamp > found[key][0]:
            found[key] = (stamp, path, record)
    order = {
        s: i
        for i, s in enumerate(("models", "data", "overhead", "scaling", "gpu", "denormal", "e2e"))
    }

    def rank(key: tuple) -> tuple:  # fp32 / contiguous / the like-for-like data run first
        if key[0] == "models":
            return (order["models"], key[1] != "fp32", key[2] != "contiguous", str(key))
        if key[0] == "data":
            return (order["data"], -(key[1] or 10**9), "")
        return (order.get(key[0], 9), "")

    return [(p, r) for _, (_, p, r) in sorted(found.items(), key=lambda kv: rank(kv[0]))]


def _ok(passed: bool | None) -> str:
    return "n/a" if passed is None else ("**pass**" if passed else "**FAIL**")


def header(path: Path, r: dict) -> list[str]:
    m = r["machine"]
    gpu = m.get("gpu") or "none"
    dirty = " (with uncommitted changes)" if m.get("dirty") else ""
    return [
        f"Machine: `{m.get('host')}`, {m.get('cpu_model')}, {m.get('cores')} cores, torch threads "
        f"{m.get('torch_threads')}, GPU {gpu}; torch {m.get('torch')}, torchvision "
        f"{m.get('torchvision')}, "
        f"Python {m.get('python')}.  Commit `{m.get('commit')}`{dirty}, {m.get('date')}, load "
        "average "
        f"(1/5/15 min, at the end) {m.get('load_avg')}.  Clock: "
        f"{r['options'].get('clock', 'wall')} time.  "
        f"Record `{path.name}`.",
        "",
        f"```\n{r['command']}\n```",
        "",
    ]


def models_section(r: dict) -> list[str]:
    o = r["options"]
    lines = [
        f"Batch {o['batch']}, {o['resolution']} px, {o['dtype']}, {o['memory_format']}, median of "
        f"{o['reps']} interleaved repetitions after {o['warmup']} warm-up; ratio = step time ours "
        "/ "
        "torchvision (< 1: ours faster).  Peak memory: per contender in a fresh process (RSS on "
        "CPU), "
        "training.",
        "",
        "| model | dtype | format | train img/s ours | train img/s tv | train ratio | infer img/s "
        "ours "
        "| infer img/s tv | infer ratio | peak MB ours | peak MB tv | target train ≤ 1.00 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["rows"]:
        t, i, mem = row.get("train"), row.get("infer"), row.get("memory") or {}

        def cell(d, k, fmt="{:.1f}"):
            return fmt.format(d[k]) if d and d.get(k) is not None else "-"

        verdict = "n/a"
        if t:
            ratio = t["ratio"]
            verdict = (
                "**pass**"
                if ratio <= MODEL_RATIO_TARGET
                else "**miss** (≤ 1.05)"
                if ratio <= MODEL_RATIO_INVESTIGATE
                else "**FAIL** (> 1.05: investigate)"
            )
        lines.append(
            f"| {row['model']} | {row['dtype']} | {row['memory_format']} | "
            f"{cell(t, 'ours_images_per_s')} | {cell(t, 'torchvision_images_per_s')} | "
            f"{cell(t, 'ratio', '{:.3f}')} | {cell(i, 'ours_images_per_s')} | "
            f"{cell(i, 'torchvision_images_per_s')} | {cell(i, 'ratio', '{:.3f}')} | "
            f"{cell(mem.get('ours'), 'peak_mb', '{:.0f}')} | "
            f"{cell(mem.get('torchvision'), 'peak_mb', '{:.0f}')} "
            f"| {verdict} |"
        )
    return lines + [""]


def data_section(r: dict) -> list[str]:
    o = r["options"]
    like_for_like = not o.get("max_resolution") or o["max_resolution"] >= GENERATED_MAX_SIDE
    natural = r.get("images") == "natural"
    kind = (
        "natural-image JPEGs (crops/rescalings of the scikit-learn and scikit-image sample "
        "photos, 333-500 px a "
        f"side, quality {o.get('jpeg_quality', 90)})"
        if natural
        else "generated JPEGs (smooth random images, 333-500 x 375-500 px)"
    )
    lines = [
        f"{o['images']} {kind}, crop {o['resolution']} px, batch {o['batch']}, "
        f"{o['workers']} workers, cached (after a warm-up epoch), median of {o['epochs']} "
        "interleaved epochs; "
        f".beton longest side ≤ {o['max_resolution']} px.",
        "",
    ]
    if not like_for_like:
        lines += [
            "**Not like-for-like**: the .beton holds the images downscaled to ≤ "
            f"{o['max_resolution']} px, so "
            "FFCV crops from smaller images than torchvision decodes; the target is not judged on "
            "this run.",
            "",
        ]
    lines += [
        "| loader | storage | images/s | ratio vs torchvision | train set MB | target ≥ 4x at "
        "crop 160 |",
        "|---|---|---:|---:|---:|---|",
        f"| torchvision ImageFolder | JPEG files | {r['torchvision_images_per_s']:.1f} | 1.00 | "
        f"{r.get('tree_mb', 0):.0f} | |",
    ]
    for row in r["rows"]:
        applies = o["resolution"] == 160 and like_for_like
        lines.append(
            f"| FFCV | {row['storage']} | {row['images_per_s']:.1f} | {row['ratio']:.2f} | "
            f"{row['beton_mb']:.0f} | "
            f"{_ok(row['ratio'] >= DATA_RATIO_TARGET) if applies else 'n/a'} |"
        )
    lines.append("")
    bounds = r.get("bounds")
    if bounds:
        b = {k: v["images_per_s"] for k, v in bounds.items()}
        lines += [
            "The decode bound: every JPEG of the epoch decoded at full size by libjpeg-turbo "
            "through FFCV's own "
            f"binding (`ffcv.libffcv.imdecode`) in {o['workers']} threads, from memory, nothing "
            "else; `+crop` "
            "adds FFCV's crop-and-resize to the crop size.  Measured in the same run, interleaved "
            "with the "
            "loaders.",
            "",
            "| contender | images/s | FFCV jpg / it | torchvision / it |",
            "|---|---:|---:|---:|",
        ]
        jpg = next((row for row in r["rows"] if row["storage"] == "jpg"), None)
        for k, v in b.items():
            f_jpg = f"{jpg['images_per_s'] / v:.2f}" if jpg else "-"
            lines.append(f"| {k} | {v:.1f} | {f_jpg} | {r['torchvision_images_per_s'] / v:.2f} |")
        lines.append("")
        if jpg and "bound-beton" in b:
            frac = jpg["images_per_s"] / b["bound-beton"]
            lines += [
                f"FFCV jpg reaches **{frac:.2f}** of the decode bound of its own JPEGs (target ≥ "
                f"{DATA_BOUND_TARGET}: {_ok(frac >= DATA_BOUND_TARGET)}); torchvision ImageFolder "
                f"{r['torchvision_images_per_s'] / b['bound-tree']:.2f} of the bound of the "
                "tree's files.  "
                + (
                    f"Of the gap: decode + crop/resize alone runs at "
                    f"{b['bound-beton+crop'] / b['bound-beton']:.2f} of decode alone (the "
                    "resize's share); "
                    f"FFCV jpg at {jpg['images_per_s'] / b['bound-beton+crop']:.2f} of decode + "
                    "crop/resize "
                    "(the loader's own share: batching, thread scheduling, Python)."
                    if "bound-beton+crop" in b
                    else ""
                ),
                "",
            ]
    return lines


def overhead_section(r: dict) -> list[str]:
    o = r["options"]
    dev = "cuda" if str(r.get("device", "cpu")).startswith("cuda") else "cpu"
    target = OVERHEAD_TARGET[dev]
    lines = [
        f"{o['model']} at {o['resolution']} px, batch {o['batch']}, {o['precision']}"
        f"{', channels_last' if o.get('channels_last') else ''} on {dev}: "
        f"{o['steps'] - o['warmup_steps']} "
        f"timed steps per run, median of {o['reps']} interleaved runs.",
        "",
        "| contender | ms/step | images/s |",
        "|---|---:|---:|",
    ]
    for k, v in r["step_s"].items():
        lines.append(f"| {k} | {v * 1e3:.2f} | {o['batch'] / v:.1f} |")
    lines += [
        "",
        f"Lightning / plain loop (same work): **{r['ratio']:.3f}** (overhead "
        f"{r['overhead_pct']:+.1f}%; "
        f"target ≤ {100 * (target - 1):.0f}% on {dev}: {_ok(r['ratio'] <= target)}).  "
        f"Lightning / minimal loop (no metric updates): {r['ratio_vs_minimal']:.3f}.",
        "",
    ]
    return lines


def scaling_section(r: dict) -> list[str]:
    o = r["options"]
    b, s = r["batch_sweep"], r["resolution_sweep"]
    lines = [
        f"Training steps of our {r['model']} ({o['dtype']}); medians of {o['reps']} interleaved "
        "repetitions.",
        "",
        f"Time vs batch at {o['batch_resolution']} px:",
        "",
        "| batch | ms/step | ms/image | per-image cost vs largest batch |",
        "|---:|---:|---:|---:|",
    ]
    for row in b["rows"]:
        lines.append(
            f"| {row['batch']} | {row['step_s'] * 1e3:.1f} | {row['s_per_work'] * 1e3:.2f} | "
            f"{row['relative_to_largest']:.2f} |"
        )
    f = b["fit"]
    lines += [
        "",
        f"Fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.2f} ms/image, R² "
        f"{f['r2']:.4f}; "
        f"per-image cost within 10% of the largest batch's from batch {b['saturates_at']}.",
        "",
        f"Time vs resolution at batch {o['resolution_batch']}:",
        "",
        "| px | GMACs/step | ms/step | ms/GMAC | vs largest |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in s["rows"]:
        lines.append(
            f"| {row['resolution']} | {row['work']:.2f} | {row['step_s'] * 1e3:.1f} | "
            f"{row['s_per_work'] * 1e3:.1f} | {row['relative_to_largest']:.2f} |"
        )
    f = s["fit"]
    lines += [
        "",
        f"Fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.1f} ms/GMAC, R² "
        f"{f['r2']:.4f}.",
        "",
    ]
    if r["zoo"]:
        lines += [
            f"MACs vs time across the zoo at {o['zoo_resolution']} px, batch {o['zoo_batch']} "
            "(ms per forward GMAC of a training step; flagged above 1.5x the median):",
            "",
            "| model | family | GMACs/image | ms/step | ms/GMAC | x median | |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for row in sorted(r["zoo"], key=lambda x: x["ms_per_gmac"]):
            lines.append(
                f"| {row['model']} | {row['family']} | {row['macs'] / 1e9:.2f} | "
                f"{row['step_s'] * 1e3:.1f} | "
                f"{row['ms_per_gmac']:.1f} | {row['vs_median']:.2f} | "
                f"{'slower than its MACs suggest' if row['flagged'] else ''} |"
            )
        lines.append("")
    return lines


def gpu_section(r: dict) -> list[str]:
    if r.get("skipped"):
        out = [
            f"Not run: no GPU was available to this run ({r.get('reason') or 'no CUDA'}); the "
            "suite is "
            "ready (`python -m benchmarks gpu`, under 8 minutes on one GPU) and its logic is "
            "unit-tested on "
            "the CPU.",
            "",
        ]
        n = r.get("normalize")
        if n:
            a, f = n["alone"], n["with_forward"]
            out += [
                f"On the CPU instead (batch {a['batch']}, {a['resolution']} px, median of "
                "interleaved "
                "repetitions): `DeviceNormalize` to bf16 / to float32, time: alone "
                f"**{a['ratio']:.3f}**, "
                f"followed by a resnet18 forward under bf16 autocast **{f['ratio']:.3f}**.  (The "
                "datamodules "
                "keep float32 on the CPU; bf16 applies on CUDA with "
                "`trainer.precision=bf16-mixed`.)",
                "",
            ]
        return out
    peak = (
        f"measured bf16 matmul {r['measured_matmul_tflops']:.0f} TFLOP/s (datasheet "
        f"{r.get('datasheet_tflops')})"
        if r.get("measured_matmul_tflops")
        else f"peak {r['peak_tflops']} TFLOP/s bf16 dense"
    )
    lines = [
        f"{r['gpu']}, {peak}; MFU against {r['peak_tflops']:.0f} TFLOP/s.",
        "",
        "| model | impl | torch.compile | batch | images/s/GPU | MFU | ms/step | peak MB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        m = "-" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%"
        lines.append(
            f"| {row['model']} | {row.get('impl', 'ours')} | {row['compiled']} | "
            f"{row.get('batch', '-')} | "
            f"{row['images_per_s']:.0f} | {m} | {row['step_s'] * 1e3:.1f} | "
            f"{row['max_memory_allocated_mb']:.0f} |"
        )
    for q in r.get("ours_vs_torchvision") or []:
        lines.append(
            f"\nOurs / torchvision images/s, {q['model']}, compile={q['compiled']}: "
            f"**{q['ratio']:.3f}**"
        )
    n = r.get("normalize")
    if n:
        lines += [
            "",
            f"DeviceNormalize to bf16 / to float32, time: alone {n['alone']['ratio']:.3f}, "
            "followed by a "
            f"resnet50 forward under autocast {n['with_forward']['ratio']:.3f}.",
        ]
    ld = r.get("ffcv_loader")
    if ld:
        lines += [
            "",
            f"FFCV jpg loader at {ld['workers']} workers, crop {ld['resolution']} px: "
            f"{ld['images_per_s']:.0f} images/s.",
        ]
    lines += [
        "",
        "| model | compile | ours img/s/GPU | anchor | anchor img/s/GPU | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    for row in r["rows"]:
        for c in row.get("anchors", []):
            ref = "-" if c["images_per_s_per_gpu"] is None else f"{c['images_per_s_per_gpu']:.0f}"
            ratio = "-" if c.get("ratio") is None else f"{c['ratio']:.2f}"
            lines.append(
                f"| {row['model']} | {row['compiled']} | {row['images_per_s']:.0f} | "
                f"{c['source']} | "
                f"{ref} | {ratio} |"
            )
    if r.get("not_run"):
        lines += ["", f"Not run (time budget): {', '.join(r['not_run'])}."]
    return lines + [""]


def denormal_section(r: dict) -> list[str]:
    o = r["options"]
    if r.get("skipped"):
        return ["Not run: this CPU has no flush-to-zero mode.", ""]
    lines = [
        f"Training step on the CPU, batch {o['batch']}, digits at {o['resolution']} px, state "
        f"`{o['state']}` "
        f"(`vanished`: the loss × batch × {o.get('grad_scale')} before backward, so the gradients "
        "lie below "
        f"float32's smallest normal), median of {o['reps']} interleaved repetitions; ratio = step "
        "time with denormals / "
        "flushed (`torch.set_flush_denormal(True)`).",
        "",
        "| model | img/s with denormals | img/s flushed | ratio | denormal share of the gradients "
        "|",
        "|---|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {x['model']} | {x['images_per_s']['denormals']:.1f} | "
            f"{x['images_per_s']['flushed']:.1f} | "
            f"**{x['ratio']:.2f}** | {100 * x['denormal_grad_fraction']['denormals']:.0f}% |"
        )
    if r.get("platform_runs"):
        lines += [
            "",
            "The main job, alternating (`python -m platform.train ... trainer.max_epochs=1`, "
            "`trainer.flush_denormal=false` vs the default, on for the CPU):",
            "",
            "| flush_denormal | epoch 0 s | run s |",
            "|---|---:|---:|",
        ]
        for x in r["platform_runs"]:
            lines.append(
                f"| {x['flush_denormal']} | {x['epoch_time_s']:.1f} | {x['wall_time_s']:.1f} |"
            )
        lines += ["", f"Epoch 0, false / default: **{r['platform_epoch_ratio']:.3f}**."]
    return lines + [""]


def e2e_section(r: dict) -> list[str]:
    o = r["options"]
    threads = o.get("threads") or "torch's default"
    script = o.get("script", o.get("reference"))
    res, resize = o["resolution"], o.get("val_resize", o["resolution"])
    lines = [
        f"One training epoch on the CPU of the same generated ImageFolder tree ({o['images']} "
        f"natural-image JPEGs in train/, {o['classes']} classes), random-resized crop "
        f"{res} px + flip (validation: resize {resize}, centre crop {res}), batch "
        f"{o['batch']}, {o['workers']} DataLoader workers, SGD lr {o['lr']} momentum 0.9 "
        f"weight decay {o['weight_decay']}, fp32, {threads} torch thread(s), each run a "
        "fresh process, alternating ours / reference "
        f"{o['alternations']} times per model: `python -m platform.train` (data=imagenet "
        "data.backend=torchvision) vs torchvision's `references/classification/train.py` (not "
        f"vendored; `{script}` here).  images/s = training images / the training loop's time "
        "(loading + step + optimizer; start-up and validation excluded); ratio = ours / "
        "reference of the medians (> 1: ours faster).",
        "",
        "| model | ours img/s | reference img/s | ours / reference | same, reference's "
        "first-batch wait excluded |",
        "|---|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        bound = x.get("ratio_reference_first_batch_excluded")
        lines.append(
            f"| {x['model']} | {x['ours_images_per_s']:.2f} | "
            f"{x['reference_images_per_s']:.2f} | **{x['ratio']:.3f}** | "
            f"{'-' if bound is None else f'{bound:.3f}'} |"
        )
    lines += [
        "",
        "| model | run | ours s | reference s | load average before (ours / reference) |",
        "|---|---:|---:|---:|---|",
    ]
    for q in r["pairs"]:
        lines.append(
            f"| {q['model']} | {q.get('round', '-')} | {q['ours']['seconds']:.1f} | "
            f"{q['reference']['seconds']:.1f} | {q['ours'].get('load_before', '-')} / "
            f"{q['reference'].get('load_before', '-')} |"
        )
    spread = []
    for model in dict.fromkeys(q["model"] for q in r["pairs"]):
        for side in ("ours", "reference"):
            s = [q[side]["seconds"] for q in r["pairs"] if q["model"] == model]
            if len(s) > 1:
                spread.append(f"{model} {side} {max(s) / min(s):.2f}x")
    if spread:
        lines += [
            "",
            "Run-to-run spread of one tool's epoch time (slowest / fastest run; "
            "the machine's "
            "load is in the table): " + ", ".join(spread) + ".",
        ]
    if r.get("timing"):
        lines += ["", f"Timing: {r['timing']}."]
    return lines + [""]


SECTIONS = {
    "models": ("Model step throughput, ours vs torchvision", models_section),
    "data": ("Data loading: FFCV vs torchvision ImageFolder", data_section),
    "overhead": ("Framework overhead: Lightning vs a plain loop", overhead_section),
    "scaling": ("Scaling of cost with work", scaling_section),
    "gpu": ("GPU profile", gpu_section),
    "denormal": ("Denormals on the CPU: flush-to-zero before/after", denormal_section),
    "e2e": ("End to end: platform.train vs torchvision's reference script", e2e_section),
}


def previous_sections(path: Path) -> dict[str, str]:
    """The sections (by title) and target rows of an existing RESULTS.md, to keep those whose records are absent."""
    if not path.is_file():
        return {}
    out, title, body = {}, None, []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            if title:
                out[title] = "\n".join(body).strip()
            title, body = line[3:], []
        elif title:
            body.append(line)
    if title:
        out[title] = "\n".join(body).strip()
    return out


def summary(records: list[tuple[Path, dict]]) -> list[str]:
    """One line per target, from the records present."""
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for _, r in records:
        o = r["options"]
        if r["suite"] == "models":
            train = [(row["train"]["ratio"], row["model"]) for row in r["rows"] if row.get("train")]
            if train:
                worst, name = max(train)
                n_ok = sum(x <= MODEL_RATIO_TARGET for x, _ in train)
                verdict = (
                    "pass"
                    if worst <= MODEL_RATIO_TARGET
                    else "miss"
                    if worst <= MODEL_RATIO_INVESTIGATE
                    else "FAIL"
                )
                lines.append(
                    f"| models ({o['dtype']}, {o['memory_format']}): train ratio ours/torchvision "
                    "≤ 1.00 "
                    f"for every model | worst {worst:.3f} ({name}); {n_ok}/{len(train)} ≤ 1.00 | "
                    f"{verdict} |"
                )
        elif r["suite"] == "data" and r["rows"]:
            best = max(r["rows"], key=lambda x: x["ratio"])
            judged = (
                o["resolution"] == 160 and (o.get("max_resolution") or 10**9) >= GENERATED_MAX_SIDE
            )
            lines.append(
                f"| data: FFCV ≥ 4x torchvision at crop 160 (.beton ≤ {o.get('max_resolution')} "
                "px) | best "
                f"{best['ratio']:.2f}x ({best['storage']}) | "
                f"{('pass' if best['ratio'] >= DATA_RATIO_TARGET else 'FAIL') if judged else 'not judged'} |"
            )
            jpg = next((row for row in r["rows"] if row["storage"] == "jpg"), None)
            bound = (r.get("bounds") or {}).get("bound-beton")
            if jpg and bound:
                frac = jpg["images_per_s"] / bound["images_per_s"]
                lines.append(
                    f"| data: FFCV jpg ≥ {DATA_BOUND_TARGET} of the JPEG decode bound "
                    "(libjpeg-turbo, "
                    f"{o['workers']} threads) | {frac:.2f} (ImageFolder "
                    f"{r['torchvision_fraction_of_bound']:.2f}) | "
                    f"{'pass' if frac >= DATA_BOUND_TARGET else 'FAIL'} |"
                )
        elif r["suite"] == "denormal" and r["rows"]:
            worst = min(r["rows"], key=lambda x: x["ratio"])
            lines.append(
                "| denormal: flush-to-zero on CPU (the platform's default) | step with denormals "
                "/ flushed: "
                + ", ".join(f"{x['model']} {x['ratio']:.1f}x" for x in r["rows"])
                + (
                    f"; platform.train epoch 0 {r['platform_epoch_ratio']:.2f}x"
                    if r.get("platform_epoch_ratio")
                    else ""
                )
                + f" | {'on by default' if worst['ratio'] > 1 else 'no effect measured'} |"
            )
        elif r["suite"] == "e2e" and r["rows"]:
            lines.append(
                "| e2e: platform.train vs torchvision's reference train.py, one CPU epoch | "
                + ", ".join(f"{x['model']} {x['ratio']:.2f}x" for x in r["rows"])
                + " | n/a (finding) |"
            )
        elif r["suite"] == "overhead":
            dev = "cuda" if str(r.get("device", "cpu")).startswith("cuda") else "cpu"
            t = OVERHEAD_TARGET[dev]
            lines.append(
                f"| overhead on {dev} ({o['model']}): Lightning/plain ≤ {t:.2f} | "
                f"{r['ratio']:.3f} | "
                f"{'pass' if r['ratio'] <= t else 'FAIL'} |"
            )
        elif r["suite"] == "grad_stats":
            lines.append(
                f"| grad_stats ({o['model']}): step with/without ≤ {r['target']} | "
                f"{r['ratio']:.3f} (alone {100 * r['isolated_share']:.2f}%) | "
                f"{'pass' if r['ratio'] <= r['target'] else 'FAIL'} |"
            )
        elif r["suite"] == "jpeg_decode":
            from benchmarks.jpeg_decode import target_lines

            lines += target_lines(r)
        elif r["suite"] == "gpu":
            lines.append(
                "| gpu profile | "
                + ("not run (no CUDA)" if r.get("skipped") else "see below")
                + " | n/a |"
            )
    return lines + [""]


def stochastic_depth_section(r: dict) -> list[str]:
    s, d = r["single"], r["ddp"]
    lines = [
        f"{s['model']}, one training step (forward, backward, SGD), batch mode at rate {s['rate']} "
        f"(p_L = {1 - s['rate']:g}, Huang et al.'s rule) vs no stochastic depth, interleaved:",
        "",
        "| contender | median step (ms) |",
        "|---|---|",
        f"| batch-mode stochastic depth | {s['median_s']['sd'] * 1e3:.1f} |",
        f"| no stochastic depth | {s['median_s']['none'] * 1e3:.1f} |",
        "",
        f"ratio **{s['ratio']:.3f}** (expected share of residual blocks run: "
        f"{s['expected_block_share']:.3f}; Huang et al. Table 2: ~0.75).",
        "",
    ]
    if d:
        lines += [
            f"DDP, 2 gloo ranks, {d['model']} (batch {d['batch_per_rank']} per rank, no stochastic "
            f"depth): find_unused_parameters on / off = **{d['ratio_on_vs_off']:.3f}** "
            f"({d['median_s']['on'] * 1e3:.1f} / {d['median_s']['off'] * 1e3:.1f} ms, wall clock "
            "in "
            "rank 0); the platform "
            "turns it on only when batch-mode stochastic depth can skip blocks.",
            "",
        ]
    return lines


SECTIONS["stochastic_depth"] = (
    "Stochastic depth: skipping whole blocks (Huang et al.)",
    stochastic_depth_section,
)


def grad_stats_section(r: dict) -> list[str]:
    m, o = r["median_s"], r["options"]
    return [
        f"{r['model']} at {o['resolution']} px, batch {o['batch']}, one training step (forward, "
        f"backward, SGD) with and without `logging.grad_stats` (mean |g| and L2 norm of "
        f"{', '.join(r['layers'])} into on-device sums), median of {o['reps']} interleaved steps:",
        "",
        "| contender | median step (ms) |",
        "|---|---|",
        f"| with grad_stats | {m['with'] * 1e3:.2f} |",
        f"| without | {m['without'] * 1e3:.2f} |",
        "",
        f"ratio **{r['ratio']:.4f}** (target ≤ {r['target']}: {_ok(r['ratio'] <= r['target'])}); "
        f"the accumulation alone, timed apart from the noise of the step: "
        f"{r['isolated_s'] * 1e3:.3f} ms = **{100 * r['isolated_share']:.2f}%** of a step.",
        "",
    ]


SECTIONS["grad_stats"] = ("Gradient statistics: what logging.grad_stats costs", grad_stats_section)


def jpeg_decode_section(r: dict) -> list[str]:
    from benchmarks.jpeg_decode import section

    return section(r)


SECTIONS["jpeg_decode"] = (
    "JPEG decode: full size vs n/8-scaled (data.jpeg_decode)",
    jpeg_decode_section,
)


KEPT = (
    "*Kept from the previous RESULTS.md: the record behind this section is not in this checkout's "
    "`benchmarks/results/`.*"
)


def render(records: list[tuple[Path, dict]], previous: dict[str, str] | None = None) -> str:
    previous = previous or {}
    present = {r["suite"] for _, r in records}
    kept_targets = [
        row
        for row in previous.get("Targets", "").splitlines()[2:]
        if row.startswith("| ") and row.split()[1].rstrip(":") in set(SECTIONS) - present
    ]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks report` from the newest record of each suite in "
        "`benchmarks/results/` (models: of each dtype and memory format; data: of each .beton "
        "maximum "
        "resolution); never edited by hand.  What each suite measures and its targets: "
        "`benchmarks/README.md`.  The machine is shared (2 cores, several agents' jobs at once; "
        "each "
        "record's load average says how busy): absolute numbers are noisy, the ratios (same run, "
        "interleaved) are the result.",
        "",
        "## Targets",
        "",
    ]
    lines += summary(records)[:-1] + kept_targets + [""]
    for suite, (title, fn) in SECTIONS.items():
        lines += [f"## {title}", ""]
        if suite not in present:
            old = previous.get(title, "")
            if old and old != "No record." and not old.startswith("Not run on this machine"):
                lines += [KEPT, "", old.replace(KEPT, "").strip(), ""]
            else:
                lines += [
                    "No record." if suite != "gpu" else "Not run: no GPU was available (no CUDA).",
                    "",
                ]
            continue
        for path, r in records:
            if r["suite"] == suite:
                lines += header(path, r) + fn(r)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks report", description=__doc__.split("\n")[0]
    )
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--output", default=str(OUTPUT))
    a = p.parse_args(argv)
    records = newest(Path(a.results_dir))
    if not records:
        print(f"no benchmark records under {a.results_dir}")
        return 1
    out = Path(a.output)
    text = render(records, previous_sections(out))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out} from {len(records)} records: {', '.join(p.name for p, _ in records)}")
    return 0
