"""The pipeline's pictures as static PNG files, drawn with matplotlib (no browser, no network).

Each ``*_figure`` function takes the data a stage wrote (its metrics JSON, DVCLive's TSV
curves) and returns a matplotlib Figure, or raises ``Missing`` naming what it needs when that
data is absent (e.g. no validation loss logged). ``draw_all`` saves every figure it can and
says, for each one it cannot, why.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pretrain.dedup.minhash import detection_probability  # noqa: E402
from pretrain.io import atomic_path  # noqa: E402

SIZE = (7.0, 3.6)  # inches; at DPI 100 a 700 x 360 pixel PNG
DPI = 100


class Missing(Exception):
    """The data a figure needs is not there (the message says which)."""


def read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a DVCLive metric file ``path`` (columns timestamp?, step, <name>),
    as float64 arrays; Missing when the file does not exist."""
    if not path.is_file():
        raise Missing(f"{path} not found")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    step, value = header.index("step"), len(header) - 1
    return (np.array([float(r[step]) for r in body]), np.array([float(r[value]) for r in body]))


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; Missing when the file does not exist."""
    if not path.is_file():
        raise Missing(f"{path} not found")
    return json.loads(path.read_text(encoding="utf-8"))


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def curve_figure(live: Path, names: dict[str, str], title: str, ylabel: str,
                 log: bool = False) -> Figure:
    """Curves of DVCLive metrics against the optimizer step: ``names`` maps a metric path under
    ``live/plots/metrics`` (e.g. ``train/loss``) to its legend label. Missing when none exists."""
    fig, ax = _figure(title, "optimizer step", ylabel)
    drawn = 0
    for name, label in names.items():
        try:
            steps, values = read_tsv(live / "plots" / "metrics" / f"{name}.tsv")
        except Missing:
            continue
        ax.plot(steps, values, label=label, marker="o" if len(steps) < 20 else None)
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise Missing(f"no {', '.join(names)} curve under {live}")
    if log:
        ax.set_yscale("log")
    if drawn > 1:
        ax.legend()
    return fig


def language_score_figure(scores: list[dict[str, Any]]) -> Figure:
    """Histogram of each document's fastText language score, one series per document kind."""
    fig, ax = _figure("fastText lid.176 score of each document's top language", "score", "documents")
    kinds = sorted({row["kind"] for row in scores})
    ax.hist([[row["language_score"] for row in scores if row["kind"] == kind] for kind in kinds],
            bins=20, range=(0, 1), label=kinds, stacked=True)
    ax.legend()
    return fig


def dropped_figure(clean: dict[str, Any]) -> Figure:
    """Documents dropped per rule and reason (horizontal bars, the largest at the top)."""
    dropped = sorted(clean.get("dropped", {}).items(), key=lambda item: item[1])
    if not dropped:
        raise Missing("the clean stage dropped no document")
    fig, ax = plt.subplots(figsize=(SIZE[0], max(2.0, 0.28 * len(dropped) + 1)), dpi=DPI,
                           layout="constrained")
    ax.barh([name for name, _ in dropped], [count for _, count in dropped])
    # Over the figure, not the axes: the rule names push the axes to the right.
    fig.suptitle(f"Documents dropped per rule ({clean['documents_in'] - clean['documents_out']:,} "
                 f"of {clean['documents_in']:,})")
    ax.set_xlabel("documents")
    ax.grid(alpha=0.3, axis="x")
    return fig


def length_figure(scores: list[dict[str, Any]]) -> Figure:
    """Document length in characters before cleaning (all documents) and after (kept ones)."""
    if "chars_in" not in (scores[0] if scores else {}):
        raise Missing("the clean scores have no document lengths (rerun clean)")
    before = np.array([row["chars_in"] for row in scores if row["chars_in"] > 0])
    after = np.array([row["chars_out"] for row in scores if row["kept"] and row["chars_out"] > 0])
    fig, ax = _figure("Document length before and after cleaning", "characters (log scale)", "documents")
    bins = np.logspace(0, np.log10(max(before.max(initial=1), after.max(initial=1)) + 1), 30)
    ax.hist(before, bins=bins, alpha=0.6, label=f"before ({len(before):,} documents)")
    ax.hist(after, bins=bins, alpha=0.6, label=f"after ({len(after):,} kept)")
    ax.set_xscale("log")
    ax.legend()
    return fig


def cluster_figure(dedup: dict[str, Any]) -> Figure:
    """Near-duplicate clusters by size (documents per cluster, the kept one included)."""
    sizes = dedup.get("near", {}).get("cluster_sizes")
    if not sizes:
        raise Missing("no near-duplicate clusters in the dedup metrics")
    fig, ax = _figure(f"Near-duplicate clusters by size ({dedup['near']['clusters']:,} clusters)",
                      "documents in the cluster", "clusters")
    ax.bar([int(s) for s in sizes], list(sizes.values()))
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def s_curve_figure(dedup: dict[str, Any]) -> Figure:
    """LSH's S-curve: the probability that a pair of Jaccard similarity s shares a bucket in at
    least one of b bands of r rows, 1 - (1 - s^r)^b (Leskovec et al., Mining of Massive
    Datasets, 3.4.2), with its implied threshold (1/b)^(1/r)."""
    near = dedup.get("near", {})
    if "bands" not in near:
        raise Missing("the dedup metrics have no LSH bands and rows (near dedup off, or rerun dedup)")
    bands, rows = near["bands"], near["rows"]
    s = np.linspace(0, 1, 201)
    fig, ax = _figure(f"LSH S-curve: {bands} bands x {rows} rows", "Jaccard similarity of a pair",
                      "probability of becoming a candidate")
    ax.plot(s, [detection_probability(x, bands, rows) for x in s])
    ax.axvline(near["implied_threshold"], linestyle="--", color="gray",
               label=f"implied threshold (1/b)^(1/r) = {near['implied_threshold']:.3f}")
    ax.legend()
    return fig


def bits_per_byte_figure(evaluation: dict[str, Any]) -> Figure:
    """Bits per byte of each scored model (base, init, trained) on the held-out split and, when
    evaluated, on the general text (lower is better)."""
    sets = {"held-out split": evaluation.get("val", {})}
    if evaluation.get("general"):  # the evaluate stage's key for evaluate.general_text's scores
        sets["general text"] = evaluation["general"]
    models = [m for m in ("base", "init", "trained") if any(m in scores for scores in sets.values())]
    if not models:
        raise Missing("no bits per byte in the evaluation metrics")
    fig, ax = _figure("Bits per byte by model (lower is better)", "", "bits per byte")
    width = 0.8 / len(sets)
    for i, (name, scores) in enumerate(sets.items()):
        values = [scores.get(m, {}).get("bits_per_byte", np.nan) for m in models]
        bars = ax.bar(np.arange(len(models)) + i * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f")
    ax.set_xticks(np.arange(len(models)) + width * (len(sets) - 1) / 2, models)
    ax.legend()
    return fig


def forgetting_figure(evaluation: dict[str, Any]) -> Figure:
    """The merge sweep's forgetting curve: held-out (domain) bits per byte against general-text
    bits per byte of each model from the other one (weight 0) to the trained one (weight 1),
    each point labelled with its weight; against the weight when no general text was scored."""
    merge = evaluation.get("merge")
    if not merge:
        raise Missing("no merge sweep in the evaluation metrics (merge.method: none)")
    rows = merge["sweep"]
    domain = [r["val_bits_per_byte"] for r in rows]
    general = [r["general_bits_per_byte"] for r in rows]
    title = f"Forgetting curve: {merge['method']} merge of the trained model with {merge['other']}"
    if all(g is not None for g in general):
        fig, ax = _figure(title, "general-text bits per byte (lower: less forgetting)",
                          "held-out (domain) bits per byte")
        ax.plot(general, domain, marker="o")
        ax.margins(0.12)  # room for the labels of the end points
        for row, x, y in zip(rows, general, domain):
            ax.annotate(f"w={row['weight']:g}", (x, y), textcoords="offset points", xytext=(5, 5))
    else:
        fig, ax = _figure(title + " (no evaluate.general_text)", "weight of the trained model",
                          "held-out bits per byte")
        ax.plot([r["weight"] for r in rows], domain, marker="o")
    return fig


def confusion_figure(finetune: dict[str, Any]) -> Figure:
    """The fine-tuned classifier's confusion matrix on the test split (rows: true class,
    columns: predicted), each compared backbone's beside it."""
    if finetune.get("task") != "classify":
        raise Missing(f"finetune.task is {finetune.get('task', 'none')}, not classify")
    scored = {name: entry["test"] for name, entry in finetune["backbones"].items() if entry.get("test")}
    if not scored:
        raise Missing("no test split (finetune.test_fraction: 0)")
    names = finetune["labels"]
    fig, axes = plt.subplots(1, len(scored), figsize=(3.4 * len(scored) + 0.6, 3.6), dpi=DPI, squeeze=False)
    for ax, (backbone, scores) in zip(axes[0], scored.items()):
        matrix = np.asarray(scores["confusion_matrix"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > matrix.max() / 2 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"from {backbone}: accuracy {scores['accuracy']:.3f}", fontsize=9)
    fig.tight_layout()
    return fig


INPUTS = ("clean", "scores", "dedup", "train", "eval", "finetune")
"""The metrics files the report reads: clean.json, clean_scores.json, dedup.json, train.json,
eval.json, finetune.json, by these names."""


def figures(metrics: dict[str, Path], live: Path) -> dict[str, tuple[str, Callable[[], Figure]]]:
    """Every figure: file stem -> (caption, function drawing it from the ``metrics`` files (by
    the names of ``INPUTS``) and the DVCLive folder ``live``)."""
    def scores() -> list[dict[str, Any]]:
        return read_json(metrics["scores"])

    return {
        "loss": ("Training and validation loss", lambda: curve_figure(
            live, {"train/loss": "training", "val/loss": "validation"}, "Loss", "cross-entropy (nats)")),
        "learning_rate": ("Learning rate", lambda: curve_figure(
            live, {"train/learning_rate": "learning rate"}, "Learning rate", "learning rate")),
        "grad_norm": ("Gradient norm", lambda: curve_figure(
            live, {"train/grad_norm": "gradient norm"}, "Gradient norm (before clipping)", "L2 norm")),
        "tokens_per_second": ("Throughput", lambda: curve_figure(
            live, {"train/tokens_per_second": "tokens/s"}, "Throughput", "tokens/s")),
        "mfu": ("Model FLOPs utilisation", lambda: curve_figure(
            live, {"train/mfu": "of the nominal peak", "train/mfu_measured": "of the measured matmul peak"},
            "Model FLOPs utilisation", "MFU (fraction)")),
        "memory": ("Peak memory", lambda: curve_figure(
            live, {"train/memory_gb": "peak memory"}, "Peak memory", "GiB")),
        "language_score": ("Language score by document kind", lambda: language_score_figure(scores())),
        "dropped": ("Documents dropped per rule", lambda: dropped_figure(read_json(metrics["clean"]))),
        "length": ("Document length before and after cleaning", lambda: length_figure(scores())),
        "clusters": ("Near-duplicate cluster sizes", lambda: cluster_figure(read_json(metrics["dedup"]))),
        "s_curve": ("LSH S-curve", lambda: s_curve_figure(read_json(metrics["dedup"]))),
        "bits_per_byte": ("Bits per byte: base, init, trained",
                          lambda: bits_per_byte_figure(read_json(metrics["eval"]))),
        "forgetting": ("Merge sweep: domain gain against forgetting",
                       lambda: forgetting_figure(read_json(metrics["eval"]))),
        "confusion": ("Fine-tuned classifier: confusion matrix on the test split",
                      lambda: confusion_figure(read_json(metrics["finetune"]))),
    }


def draw_all(metrics: dict[str, Path], live: Path, out: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Save every figure as ``out/<stem>.png`` (each written atomically). Returns the figures
    drawn (stem -> caption) and those skipped (caption -> why)."""
    out.mkdir(parents=True, exist_ok=True)
    drawn, skipped = {}, {}
    for stem, (caption, draw) in figures(metrics, live).items():
        try:
            fig = draw()
        except Missing as exc:
            skipped[caption] = str(exc)
            continue
        with atomic_path(out / f"{stem}.png") as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})  # no version: stable bytes
        plt.close(fig)
        drawn[stem] = caption
    return drawn, skipped
