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
    order = {s: i for i, s in enumerate(("models", "data", "overhead", "scaling", "gpu"))}

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
    return [f"Machine: `{m.get('host')}`, {m.get('cpu_model')}, {m.get('cores')} cores, torch threads "
            f"{m.get('torch_threads')}, GPU {gpu}; torch {m.get('torch')}, torchvision {m.get('torchvision')}, "
            f"Python {m.get('python')}.  Commit `{m.get('commit')}`{dirty}, {m.get('date')}, load average "
            f"(1/5/15 min, at the end) {m.get('load_avg')}.  Clock: {r['options'].get('clock', 'wall')} time.  "
            f"Record `{path.name}`.", "",
            f"```\n{r['command']}\n```", ""]


def models_section(r: dict) -> list[str]:
    o = r["options"]
    lines = [f"Batch {o['batch']}, {o['resolution']} px, {o['dtype']}, {o['memory_format']}, median of "
             f"{o['reps']} interleaved repetitions after {o['warmup']} warm-up; ratio = step time ours / "
             "torchvision (< 1: ours faster).  Peak memory: per contender in a fresh process (RSS on CPU), "
             "training.", "",
             "| model | dtype | format | train img/s ours | train img/s tv | train ratio | infer img/s ours "
             "| infer img/s tv | infer ratio | peak MB ours | peak MB tv | target train ≤ 1.00 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in r["rows"]:
        t, i, mem = row.get("train"), row.get("infer"), row.get("memory") or {}

        def cell(d, k, fmt="{:.1f}"):
            return fmt.format(d[k]) if d and d.get(k) is not None else "-"
        verdict = "n/a"
        if t:
            ratio = t["ratio"]
            verdict = ("**pass**" if ratio <= MODEL_RATIO_TARGET else
                       "**miss** (≤ 1.05)" if ratio <= MODEL_RATIO_INVESTIGATE else
                       "**FAIL** (> 1.05: investigate)")
        lines.append(f"| {row['model']} | {row['dtype']} | {row['memory_format']} | "
                     f"{cell(t, 'ours_images_per_s')} | {cell(t, 'torchvision_images_per_s')} | "
                     f"{cell(t, 'ratio', '{:.3f}')} | {cell(i, 'ours_images_per_s')} | "
                     f"{cell(i, 'torchvision_images_per_s')} | {cell(i, 'ratio', '{:.3f}')} | "
                     f"{cell(mem.get('ours'), 'peak_mb', '{:.0f}')} | {cell(mem.get('torchvision'), 'peak_mb', '{:.0f}')} "
                     f"| {verdict} |")
    return lines + [""]


def data_section(r: dict) -> list[str]:
    o = r["options"]
    like_for_like = not o.get("max_resolution") or o["max_resolution"] >= GENERATED_MAX_SIDE
    lines = [f"{o['images']} generated JPEGs (333-500 x 375-500 px), crop {o['resolution']} px, batch {o['batch']}, "
             f"{o['workers']} workers, cached (after a warm-up epoch), median of {o['epochs']} epochs; "
             f".beton longest side ≤ {o['max_resolution']} px.", ""]
    if not like_for_like:
        lines += [f"**Not like-for-like**: the .beton holds the images downscaled to ≤ {o['max_resolution']} px, so "
                  "FFCV crops from smaller images than torchvision decodes; the target is not judged on this run.",
                  ""]
    lines += [
             "| loader | storage | images/s | ratio vs torchvision | train set MB | target ≥ 4x at crop 160 |",
             "|---|---|---:|---:|---:|---|",
             f"| torchvision ImageFolder | JPEG files | {r['torchvision_images_per_s']:.1f} | 1.00 | "
             f"{r.get('tree_mb', 0):.0f} | |"]
    for row in r["rows"]:
        applies = o["resolution"] == 160 and like_for_like
        lines.append(f"| FFCV | {row['storage']} | {row['images_per_s']:.1f} | {row['ratio']:.2f} | "
                     f"{row['beton_mb']:.0f} | {_ok(row['ratio'] >= DATA_RATIO_TARGET) if applies else 'n/a'} |")
    return lines + [""]


def overhead_section(r: dict) -> list[str]:
    o = r["options"]
    dev = "cuda" if str(r.get("device", "cpu")).startswith("cuda") else "cpu"
    target = OVERHEAD_TARGET[dev]
    lines = [f"{o['model']} at {o['resolution']} px, batch {o['batch']}, {o['precision']}"
             f"{', channels_last' if o.get('channels_last') else ''} on {dev}: {o['steps'] - o['warmup_steps']} "
             f"timed steps per run, median of {o['reps']} interleaved runs.", "",
             "| contender | ms/step | images/s |", "|---|---:|---:|"]
    for k, v in r["step_s"].items():
        lines.append(f"| {k} | {v * 1e3:.2f} | {o['batch'] / v:.1f} |")
    lines += ["", f"Lightning / plain loop (same work): **{r['ratio']:.3f}** (overhead {r['overhead_pct']:+.1f}%; "
              f"target ≤ {100 * (target - 1):.0f}% on {dev}: {_ok(r['ratio'] <= target)}).  "
              f"Lightning / minimal loop (no metric updates): {r['ratio_vs_minimal']:.3f}.", ""]
    return lines


def scaling_section(r: dict) -> list[str]:
    o = r["options"]
    b, s = r["batch_sweep"], r["resolution_sweep"]
    lines = [f"Training steps of our {r['model']} ({o['dtype']}); medians of {o['reps']} interleaved repetitions.",
             "", f"Time vs batch at {o['batch_resolution']} px:", "",
             "| batch | ms/step | ms/image | per-image cost vs largest batch |", "|---:|---:|---:|---:|"]
    for row in b["rows"]:
        lines.append(f"| {row['batch']} | {row['step_s'] * 1e3:.1f} | {row['s_per_work'] * 1e3:.2f} | "
                     f"{row['relative_to_largest']:.2f} |")
    f = b["fit"]
    lines += ["", f"Fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.2f} ms/image, R² {f['r2']:.4f}; "
              f"per-image cost within 10% of the largest batch's from batch {b['saturates_at']}.", "",
              f"Time vs resolution at batch {o['resolution_batch']}:", "",
              "| px | GMACs/step | ms/step | ms/GMAC | vs largest |", "|---:|---:|---:|---:|---:|"]
    for row in s["rows"]:
        lines.append(f"| {row['resolution']} | {row['work']:.2f} | {row['step_s'] * 1e3:.1f} | "
                     f"{row['s_per_work'] * 1e3:.1f} | {row['relative_to_largest']:.2f} |")
    f = s["fit"]
    lines += ["", f"Fit: {f['intercept'] * 1e3:.1f} ms fixed + {f['slope'] * 1e3:.1f} ms/GMAC, R² {f['r2']:.4f}.", ""]
    if r["zoo"]:
        lines += [f"MACs vs time across the zoo at {o['zoo_resolution']} px, batch {o['zoo_batch']} "
                  "(ms per forward GMAC of a training step; flagged above 1.5x the median):", "",
                  "| model | family | GMACs/image | ms/step | ms/GMAC | x median | |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for row in sorted(r["zoo"], key=lambda x: x["ms_per_gmac"]):
            lines.append(f"| {row['model']} | {row['family']} | {row['macs'] / 1e9:.2f} | {row['step_s'] * 1e3:.1f} | "
                         f"{row['ms_per_gmac']:.1f} | {row['vs_median']:.2f} | "
                         f"{'slower than its MACs suggest' if row['flagged'] else ''} |")
        lines.append("")
    return lines


def gpu_section(r: dict) -> list[str]:
    if r.get("skipped"):
        return [f"Not run on this machine ({r.get('reason') or 'no CUDA'}).", ""]
    lines = [f"{r['gpu']}, peak {r['peak_tflops']} TFLOP/s bf16 dense.", "",
             "| model | torch.compile | images/s/GPU | MFU | ms/step | peak MB |", "|---|---|---:|---:|---:|---:|"]
    for row in r["rows"]:
        m = "-" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%"
        lines.append(f"| {row['model']} | {row['compiled']} | {row['images_per_s']:.0f} | {m} | "
                     f"{row['step_s'] * 1e3:.1f} | {row['max_memory_allocated_mb']:.0f} |")
    lines += ["", "| model | compile | ours img/s/GPU | anchor | anchor img/s/GPU | ratio |", "|---|---|---:|---|---:|---:|"]
    for row in r["rows"]:
        for c in row.get("anchors", []):
            lines.append(f"| {row['model']} | {row['compiled']} | {row['images_per_s']:.0f} | {c['source']} | "
                         f"{c['images_per_s_per_gpu']:.0f} | {c['ratio']:.2f} |")
    return lines + [""]


SECTIONS = {"models": ("Model step throughput, ours vs torchvision", models_section),
            "data": ("Data loading: FFCV vs torchvision ImageFolder", data_section),
            "overhead": ("Framework overhead: Lightning vs a plain loop", overhead_section),
            "scaling": ("Scaling of cost with work", scaling_section),
            "gpu": ("GPU profile", gpu_section)}


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
                verdict = ("pass" if worst <= MODEL_RATIO_TARGET else
                           "miss" if worst <= MODEL_RATIO_INVESTIGATE else "FAIL")
                lines.append(f"| models ({o['dtype']}, {o['memory_format']}): train ratio ours/torchvision ≤ 1.00 "
                             f"for every model | worst {worst:.3f} ({name}); {n_ok}/{len(train)} ≤ 1.00 | {verdict} |")
        elif r["suite"] == "data" and r["rows"]:
            best = max(r["rows"], key=lambda x: x["ratio"])
            judged = o["resolution"] == 160 and (o.get("max_resolution") or 10**9) >= GENERATED_MAX_SIDE
            lines.append(f"| data: FFCV ≥ 4x torchvision at crop 160 (.beton ≤ {o.get('max_resolution')} px) | best "
                         f"{best['ratio']:.2f}x ({best['storage']}) | "
                         f"{('pass' if best['ratio'] >= DATA_RATIO_TARGET else 'FAIL') if judged else 'not judged'} |")
        elif r["suite"] == "overhead":
            dev = "cuda" if str(r.get("device", "cpu")).startswith("cuda") else "cpu"
            t = OVERHEAD_TARGET[dev]
            lines.append(f"| overhead on {dev} ({o['model']}): Lightning/plain ≤ {t:.2f} | {r['ratio']:.3f} | "
                         f"{'pass' if r['ratio'] <= t else 'FAIL'} |")
        elif r["suite"] == "gpu":
            lines.append("| gpu profile | " + ("not run (no CUDA)" if r.get("skipped") else "see below")
                         + " | n/a |")
    return lines + [""]



def stochastic_depth_section(r: dict) -> list[str]:
    s, d = r["single"], r["ddp"]
    lines = [f"{s['model']}, one training step (forward, backward, SGD), batch mode at rate {s['rate']} "
             f"(p_L = {1 - s['rate']:g}, Huang et al.'s rule) vs no stochastic depth, interleaved:", "",
             "| contender | median step (ms) |", "|---|---|",
             f"| batch-mode stochastic depth | {s['median_s']['sd'] * 1e3:.1f} |",
             f"| no stochastic depth | {s['median_s']['none'] * 1e3:.1f} |", "",
             f"ratio **{s['ratio']:.3f}** (expected share of residual blocks run: "
             f"{s['expected_block_share']:.3f}; Huang et al. Table 2: ~0.75).", ""]
    if d:
        lines += [f"DDP, 2 gloo ranks, {d['model']} (batch {d['batch_per_rank']} per rank, no stochastic "
                  f"depth): find_unused_parameters on / off = **{d['ratio_on_vs_off']:.3f}** "
                  f"({d['median_s']['on'] * 1e3:.1f} / {d['median_s']['off'] * 1e3:.1f} ms, wall clock in "
                  "rank 0); the platform "
                  "turns it on only when batch-mode stochastic depth can skip blocks.", ""]
    return lines


SECTIONS["stochastic_depth"] = ("Stochastic depth: skipping whole blocks (Huang et al.)",
                                stochastic_depth_section)

def render(records: list[tuple[Path, dict]]) -> str:
    lines = ["# Benchmark results", "",
             "Generated by `python -m benchmarks report` from the newest record of each suite in "
             "`benchmarks/results/` (models: of each dtype and memory format; data: of each .beton maximum "
             "resolution); never edited by hand.  What each suite measures and its targets: "
             "`benchmarks/README.md`.", "", "## Targets", ""] + summary(records)
    present = {r["suite"] for _, r in records}
    for suite, (title, fn) in SECTIONS.items():
        lines += [f"## {title}", ""]
        if suite not in present:
            lines += ["No record." if suite != "gpu" else "Not run on this machine (no CUDA).", ""]
            continue
        for path, r in records:
            if r["suite"] == suite:
                lines += header(path, r) + fn(r)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks report", description=__doc__.split("\n")[0])
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--output", default=str(OUTPUT))
    a = p.parse_args(argv)
    records = newest(Path(a.results_dir))
    if not records:
        print(f"no benchmark records under {a.results_dir}")
        return 1
    out = Path(a.output)
    out.write_text(render(records))
    print(f"wrote {out} from {len(records)} records: {', '.join(p.name for p, _ in records)}")
    return 0
