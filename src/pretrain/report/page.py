"""The run report (``metrics/report.md`` and ``metrics/report.html``, linking the PNG figures)
and the offline page template for ``dvc plots show``.

``dvc plots show`` writes an HTML page whose Vega scripts load from a CDN (dvc-render's
``VegaRenderer.SCRIPTS``), so offline it renders blank. ``write_plots_template`` writes a page
template (dvc-render's ``{plot_divs}`` placeholder, without ``{scripts}``, where the CDN tags
go) with Vega, Vega-Lite and vega-embed inlined from vl-convert-python's
``javascript_bundle()``; ``.dvc/config`` points ``plots.html_template`` at it, so ``dvc plots
show`` draws with no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pretrain.errors import ConfigError
from pretrain.io import atomic_path


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def summary_rows(metrics: dict[str, Path]) -> list[tuple[str, str]]:
    """(what, value) rows of the run's headline figures, from the stages' metrics files (by
    the names of pretrain.report.figures.INPUTS)."""
    rows = []
    clean, dedup = _read(metrics["clean"]), _read(metrics["dedup"])
    train, evaluation = _read(metrics["train"]), _read(metrics["eval"])
    if clean:
        rows.append(("documents kept by clean", f"{clean['documents_out']:,} of {clean['documents_in']:,}"))
    if dedup:
        rows.append(("documents kept by dedup", f"{dedup['documents_out']:,} of {dedup['documents_in']:,}"))
    if train:
        rows.append(("training loss", f"{train['first_loss']:.3f} -> {train['final_loss']:.3f} "
                                      f"in {train['steps']:,} steps ({train['tokens']:,} tokens)"))
        rows.append(("throughput", f"{train['tokens_per_second']:,.0f} tokens/s, {train['precision']} "
                                   f"on {train['device']}"))
        if train.get("mfu") is not None:
            rows.append(("MFU", f"{train['mfu']:.1%} of {train['peak_flops'] / 1e12:.3g} TFLOP/s, the "
                                f"{train['peak_source']}"))
        if train.get("mfu_measured") is not None:
            rows.append(("MFU (measured peak)", f"{train['mfu_measured']:.1%} of a matmul measured at "
                                                f"{train['peak_flops_measured'] / 1e12:.3g} TFLOP/s"))
    for model, scores in evaluation.get("val", {}).items():
        if isinstance(scores, dict) and "bits_per_byte" in scores:
            rows.append((f"held-out {model}", f"{scores['bits_per_byte']:.3f} bits/byte, "
                                              f"perplexity {scores['perplexity']:,.1f}"))
    return rows + finetune_rows(_read(metrics["finetune"]) if "finetune" in metrics else {})


def finetune_rows(finetune: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows of the fine-tune: each backbone's test accuracy and macro F1
    (classify) or validation loss (sft)."""
    rows = []
    for name, entry in (finetune.get("backbones") or {}).items():
        test = entry.get("test")
        if test:
            rows.append((f"fine-tuned from {name} ({finetune['task']})",
                         f"test accuracy {test['accuracy']:.3f}, macro F1 {test['f1_macro']:.3f}"))
        elif entry.get("val_loss") is not None:
            rows.append((f"fine-tuned from {name} ({finetune['task']})",
                         f"validation loss {entry['val_loss']:.3f}"))
    return rows


def sweep_table(evaluation: dict[str, Any]) -> list[list[str]]:
    """The merge sweep (evaluate's ``merge.sweep``) as a header row and one row per model, or []
    when nothing was merged; the final model is marked."""
    merge = evaluation.get("merge")
    if not merge:
        return []
    table = [["weight of trained", "model", "held-out", "general text"]]
    for row in merge["sweep"]:
        general = row["general_bits_per_byte"]
        mark = " (final)" if row["model"] == merge["final"] else ""
        table.append([f"{row['weight']:g}", row["model"] + mark, f"{row['val_bits_per_byte']:.4f}",
                      "-" if general is None else f"{general:.4f}"])
    return table


def write_report(metrics: dict[str, Path], figures: dict[str, str], skipped: dict[str, str], figure_dir: Path,
                 markdown: Path, page: Path) -> None:
    """Write the report as Markdown (``markdown``) and HTML (``page``), each linking the PNG
    figures of ``figure_dir`` (``figures``: stem -> caption) by relative path and listing the
    ``skipped`` ones (caption -> why)."""
    rel = figure_dir.relative_to(markdown.parent).as_posix()
    rows = summary_rows(metrics)
    md = ["# Run report", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    sweep = sweep_table(_read(metrics["eval"]))
    if sweep:
        md += ["## Merge sweep (bits per byte)", "", "| " + " | ".join(sweep[0]) + " |",
               "|" + "---|" * len(sweep[0]), *["| " + " | ".join(r) + " |" for r in sweep[1:]], ""]
    for stem, caption in figures.items():
        md += [f"## {caption}", "", f"![{caption}]({rel}/{stem}.png)", ""]
    if skipped:
        md += ["## Not drawn", "", *[f"- {caption}: {why}" for caption, why in skipped.items()], ""]
    generations = markdown.parent / "generations.md"  # the evaluate stage's, linked, not read
    if generations.is_file():
        md += ["## Generations", "", "See [generations.md](generations.md).", ""]
    with atomic_path(markdown) as tmp:
        tmp.write_text("\n".join(md), encoding="utf-8")

    e = html.escape
    body = ["<h1>Run report</h1>", "<table>",
            *[f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows], "</table>"]
    if sweep:
        body += ["<h2>Merge sweep (bits per byte)</h2>", "<table>",
                 "<tr>" + "".join(f"<th>{e(c)}</th>" for c in sweep[0]) + "</tr>",
                 *["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in sweep[1:]], "</table>"]
    for stem, caption in figures.items():
        body += [f"<h2>{e(caption)}</h2>", f'<img src="{e(rel)}/{stem}.png" alt="{e(caption)}">']
    if skipped:
        body += ["<h2>Not drawn</h2>", "<ul>",
                 *[f"<li>{e(caption)}: {e(why)}</li>" for caption, why in skipped.items()], "</ul>"]
    text = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Run report</title>"
            "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
            "th{text-align:left;padding-right:1em}img{max-width:100%}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    with atomic_path(page) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_plots_template(path: Path) -> None:
    """Write the offline page template for ``dvc plots show --html-template`` (or the
    ``plots.html_template`` setting) to ``path``: dvc-render's ``{plot_divs}`` placeholder and
    the Vega libraries inlined. Raises ConfigError when vl-convert-python is missing."""
    try:
        import vl_convert
    except ImportError:
        raise ConfigError("the offline plots page needs vl-convert-python (pip install vl-convert-python)") from None
    # dvc-render fills the placeholders with str.replace (dvc_render/html.py), so the scripts'
    # braces stay as they are; a "</script" inside them would end the tag early.
    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    text = ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>DVC plots (offline)</title>\n"
            f"<!-- Vega {vl_convert.get_vega_version()}, vega-embed {vl_convert.get_vega_embed_version()}, "
            "from vl-convert-python's javascript_bundle() -->\n"
            f"<script type=\"text/javascript\">\n{bundle}\n</script>\n"
            "<style>table {border-spacing: 15px;}</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
