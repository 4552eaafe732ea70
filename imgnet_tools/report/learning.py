"""Report sections for learning: the training curve, the evaluation, and class names matched to WordNet.

Sources (found by :mod:`.collect` in the run directory and its sub-directories):

* ``*.train.json`` (schema ``train_record``, beside an ``imgnet train`` checkpoint): loss and
  top-1/top-5 accuracy per epoch, training and validation;
* an ``imgnet eval --out`` report (schema ``eval_report``, a JSON file whose name contains
  ``eval``): the headline numbers, per-class accuracy and the most-confused pairs;
* ``caltech_classes.json`` (schema ``caltech_classes``, written by ``imgnet scan`` on a Caltech-101
  layout): which category names matched a WordNet lemma, to which wnid, and which did not.

Each draws one figure and one table; with nothing found it says so, like every other section.
"""

from __future__ import annotations

from typing import Any

from imgnet_tools.report.collect import RunData
from imgnet_tools.report.curves import Line, line_chart
from imgnet_tools.report.figures import Series, bar_chart, empty_figure

MAX_CLASS_BARS = 60


def _table(rows: list[list[Any]], head: list[str]) -> str:
    from imgnet_tools.report.sections import _table as table

    return table(rows, head)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}%"


# ----------------------------------------------------------------------------------------------
# training curve


def _history(data: RunData) -> list[dict[str, Any]]:
    return list(((data.train or {}).get("meta") or {}).get("history", []))


def draw_training(data: RunData, _: int) -> tuple[Any, str]:
    """Loss (train, val) and accuracy (train top-1, val top-1 and top-5) per epoch, stacked."""
    from PIL import Image

    title = "Training curve"
    history = _history(data)
    if not history:
        return empty_figure(title, "no training record (*.train.json) found"), \
            "No training record found: run imgnet train (it writes CKPT.train.json beside the checkpoint)."
    epochs = [e["epoch"] for e in history]
    model = data.train["meta"]["model"] if data.train else {}
    loss = line_chart(f"{title}: {model.get('name', '')} loss per epoch", epochs,
                      [Line("train loss", [e["loss"] for e in history]),
                       Line("val loss", [e["val_loss"] for e in history])], "cross-entropy")
    acc = line_chart("Accuracy per epoch (%)", epochs,
                     [Line("train top-1", [_scaled(e["train_top1"]) for e in history]),
                      Line("val top-1", [_scaled(e["val_top1"]) for e in history]),
                      Line("val top-5", [_scaled(e["val_top5"]) for e in history])], "percent", y_range=(0.0, 100.0))
    img = Image.new("RGB", (loss.width, loss.height + acc.height), "#ffffff")
    img.paste(loss, (0, 0))
    img.paste(acc, (0, loss.height))
    return img, ""


def _scaled(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


def table_training(data: RunData) -> str:
    rec = data.train or {}
    meta = rec.get("meta", {})
    model = meta.get("model", {})
    head = (f"<p>Checkpoint <code>{rec.get('checkpoint', '')}</code> ({rec.get('status', '')}, {rec.get('device', '')}): "
            f"{model.get('name', '')}, {model.get('parameters', 0):,} parameters, {model.get('num_classes', 0)} classes, "
            f"{model.get('image_size', '')} px.</p>")
    rows = [[e["epoch"], e["steps"], e["images"], "" if e["loss"] is None else round(e["loss"], 4), _pct(e["train_top1"]),
             "" if e["val_loss"] is None else round(e["val_loss"], 4), _pct(e["val_top1"]), _pct(e["val_top5"]),
             e["images_per_s"] or "", f"{e['lr']:.4g}"] for e in _history(data)]
    return head + _table(rows, ["epoch", "steps", "images", "loss", "train top-1", "val loss", "val top-1", "val top-5",
                                "img/s", "lr"])


# ----------------------------------------------------------------------------------------------
# evaluation


def draw_evaluation(data: RunData, _: int) -> tuple[Any, str]:
    """Per-class top-1 accuracy, the worst classes first (at most 60 bars)."""
    title = "Evaluation: top-1 accuracy per class (%), lowest first"
    doc = data.evaluation
    if doc is None:
        return empty_figure("Evaluation", "no evaluation report found"), \
            "No evaluation report found: run imgnet eval ... --out eval.json in this directory."
    rows = sorted(doc["per_class"], key=lambda r: (r["top1"], r["index"]))[:MAX_CLASS_BARS]
    labels = [f"{r['wnid'] or '#' + str(r['index'])} {r['name'] or ''}".strip() for r in rows]
    m = doc["metrics"]
    title += f" (top-1 {100 * m['top1_accuracy']:.1f}%, top-5 {100 * m['top5_accuracy']:.1f}%)"
    return bar_chart(title, labels, [Series("top-1 %", [100 * r["top1"] for r in rows])], unit="%"), ""


def table_evaluation(data: RunData) -> str:
    doc = data.evaluation or {}
    m, c = doc.get("metrics", {}), doc.get("counts", {})
    headline = [["top-1", _pct(m.get("top1_accuracy")), _pct(m.get("top1_error"))],
                ["top-5", _pct(m.get("top5_accuracy")), _pct(m.get("top5_error"))]]
    if m.get("hierarchical_error") is not None:
        headline.append(["hierarchical (mean LCA height, top-5 / top-1)", "",
                         f"{m['hierarchical_error']:.3f} / {m['hierarchical_error_top1']:.3f}"])
    if m.get("real_top1_accuracy") is not None:
        headline.append([f"ReaL top-1 ({m['real_images']:,} images)", _pct(m["real_top1_accuracy"]), ""])
    counts = [[k, v] for k, v in c.items() if k != "excluded"] + [[f"excluded: {k}", v] for k, v in c.get("excluded", {}).items()]
    confused = [[p["true_label"], p["guess_label"], p["images"]] for p in doc.get("confused", [])]
    src = doc.get("predictions", {}).get("path", "")
    return (f"<p>Predictions <code>{src}</code> against <code>{doc.get('truth', {}).get('source', '')}</code>.</p>"
            + _table(headline, ["measure", "accuracy", "error"]) + _table(counts, ["count", "rows"])
            + _table(confused, ["true class", "top-1 guess", "images"]))


# ----------------------------------------------------------------------------------------------
# class names matched to WordNet (Caltech-101)


def draw_matches(data: RunData, _: int) -> tuple[Any, str]:
    title = "Category names matched to WordNet"
    doc = data.caltech
    if doc is None:
        return empty_figure(title, "no caltech_classes.json found"), \
            "No name-to-wnid table found: imgnet scan writes caltech_classes.json for a Caltech-101 layout."
    counts: dict[str, int] = {}
    for row in doc["classes"]:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    names = sorted(counts)
    return bar_chart(f"{title} ({doc['dataset']})", names, [Series("categories", [counts[n] for n in names])]), ""


def table_matches(data: RunData) -> str:
    doc = data.caltech or {}
    note = f"<p>{doc.get('note', '')}</p>" if doc.get("note") else ""
    rows = [[r["category"], r["images"], r["status"], r["wnid"] or "", r["lemma"] or "", r["lexname"] or "",
             r["candidates"]] for r in doc.get("classes", [])]
    return note + _table(rows, ["category", "images", "status", "wnid", "lemma", "lexname", "senses"])


SECTIONS: tuple[tuple[str, str, Any, Any], ...] = (
    ("training-curve", "Training curve", draw_training, table_training),
    ("evaluation", "Evaluation", draw_evaluation, table_evaluation),
    ("wordnet-matches", "Category names matched to WordNet", draw_matches, table_matches),
)
