"""The bench report: per-rank timings to images/s, the loader-vs-model verdict, the table.

Throughput of a timed region counts every rank: ``world * batch * steps`` images over the slowest
rank's time in that repeat (ranks start each repeat together), median over repeats. The verdict
compares what a loader can deliver with what the model can consume on synthetic data: below 0.9 the
run is loader-bound, above 1.1 model-bound, in between balanced. ``schemas/bench_report.schema.json``
declares the document.
"""

from __future__ import annotations

import statistics
from typing import Any

from imgnet_tools.bench.params import BenchParams
from imgnet_tools.manifest.schemas import format_version, validate_json

SCHEMA = "bench_report"
BALANCE = (0.9, 1.1)


def measurement(key: str, ranks: list[dict[str, Any]], params: BenchParams) -> dict[str, Any]:
    """One result row from the ranks' raw seconds for ``key`` (``mode`` or ``mode:loader``)."""
    mode, _, loader = key.partition(":")
    per_repeat = [max(r["timings"][key][i] for r in ranks) for i in range(params.repeats)]
    median = statistics.median(per_repeat)
    images = params.world * params.batch_size * params.steps
    total = images / median
    return {"mode": mode, "loader": loader or None, "images_per_s": round(total, 3),
            "images_per_s_per_device": round(total / params.world, 3),
            "step_ms": round(1000.0 * median / params.steps, 3), "repeats_s": [round(t, 5) for t in per_repeat]}


def _verdict(loader: str, rate: float, model: float, e2e: float | None) -> dict[str, Any]:
    ratio = rate / model if model else float("inf")
    if ratio < BALANCE[0]:
        verdict = "loader-bound"
        text = f"the {loader} loader delivers {ratio:.0%} of the images/s the model can train on; speed up loading"
    elif ratio > BALANCE[1]:
        verdict = "model-bound"
        text = f"the {loader} loader delivers {ratio:.1f}x what the model consumes; the model step is the limit"
    else:
        verdict, text = "balanced", f"the {loader} loader and the model run at about the same rate ({ratio:.2f}x)"
    efficiency = None
    if e2e is not None:
        efficiency = round(e2e / min(rate, model), 3)
        text += f"; end to end reaches {efficiency:.0%} of the slower of the two"
        if efficiency < 0.8:
            text += " (loading and training compete for the same cores or copies)"
    return {"loader": loader, "loader_images_per_s": rate, "model_images_per_s": model,
            "loader_vs_model": round(ratio, 3), "e2e_images_per_s": e2e, "e2e_efficiency": efficiency,
            "verdict": verdict, "explanation": text + "."}


def analysis(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A verdict per loader, when both the loader and the model were timed."""
    by = {(r["mode"], r["loader"]): r["images_per_s"] for r in results}
    model = by.get(("model", None))
    if model is None:
        return []
    return [_verdict(loader, rate, model, by.get(("e2e", loader)))
            for (mode, loader), rate in by.items() if mode == "loader"]


def build_report(params: BenchParams, ranks: list[dict[str, Any]], context: dict[str, Any]) -> dict[str, Any]:
    """The whole report document, validated against its schema."""
    ranks = sorted(ranks, key=lambda r: r["rank"])
    first = ranks[0]
    results = [measurement(key, ranks, params) for key in first["timings"]]
    allreduce = [statistics.median(r["allreduce_ms"]) for r in ranks if r["allreduce_ms"]]
    doc = {
        "format_version": format_version(SCHEMA),
        **context,
        "devices": {"type": first["device_type"], "count": params.world, "backend": first["backend"],
                    "names": [r["device_name"] for r in ranks]},
        "model": {"name": params.model, "parameters": first["parameters"], "num_classes": first["num_classes"],
                  "image_size": params.image_size,
                  "train_gflop_per_image": round(first["train_flops_per_image"] / 1e9, 4)},
        "results": results,
        "allreduce": {"ms_per_step": round(max(allreduce), 3) if allreduce else None, "numel": first["parameters"],
                      "dtype": "fp32"},
        "analysis": analysis(results),
    }
    validate_json(doc, SCHEMA, "bench report")
    return doc


def format_table(doc: dict[str, Any]) -> str:
    """The people-facing summary: one row per measurement, then the verdicts."""
    dev = doc["devices"]
    family = "LeNet-5" if doc["model"]["name"] == "lenet5" else "AlexNet"
    title = (f"{family} bench: {doc['model']['name']} ({doc['model']['parameters']:,} params) at "
             f"{doc['model']['image_size']}px, batch {doc['params']['batch_size']}/device, "
             f"{dev['count']} x {dev['names'][0]} ({dev['type']}, {dev['backend']})")
    lines = [title, f"{'mode':<8} {'loader':<9} {'images/s':>11} {'per device':>11} {'step ms':>9}"]
    for r in doc["results"]:
        lines.append(f"{r['mode']:<8} {r['loader'] or '-':<9} {r['images_per_s']:>11,.1f} "
                     f"{r['images_per_s_per_device']:>11,.1f} {r['step_ms']:>9.2f}")
    if doc["allreduce"]["ms_per_step"] is not None:
        lines.append(f"all-reduce of all gradients: {doc['allreduce']['ms_per_step']:.2f} ms per step")
    for a in doc["analysis"]:
        lines.append(f"{a['loader']}: {a['verdict']}: {a['explanation']}")
    return "\n".join(lines)
