"""The report stage draws every figure it has data for, names the ones it cannot draw, and links
them from metrics/report.md and report.html; the dvc plots page template loads nothing remotely."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from pretrain.dedup.minhash import detection_probability
from pretrain.report.figures import bits_per_byte_figure, draw_all, forgetting_figure, s_curve_figure
from pretrain.report.page import write_plots_template, write_report

ALL = {"loss", "learning_rate", "grad_norm", "tokens_per_second", "mfu", "memory", "language_score",
       "dropped", "length", "clusters", "s_curve", "bits_per_byte", "forgetting", "confusion"}


def coloured_pixels(path) -> int:
    """Pixels of a saturated colour (curves and bars, not text, grid or background)."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())


def test_every_figure_is_drawn_from_a_finished_run(run_dir, inputs):
    figures = run_dir / "metrics" / "figures"
    drawn, skipped = draw_all(inputs, run_dir / "dvclive" / "train", figures)
    assert set(drawn) == ALL and skipped == {}
    for stem in ALL:
        assert coloured_pixels(figures / f"{stem}.png") > 300, stem  # something was plotted
    assert not [p for p in figures.iterdir() if not p.name.endswith(".png")]  # no temporaries


def test_figures_without_their_data_are_named_not_drawn(run_dir, inputs):
    (run_dir / "metrics" / "eval.json").unlink()
    for path in (run_dir / "dvclive").rglob("memory_gb.tsv"):
        path.unlink()
    near = json.loads((run_dir / "metrics" / "dedup.json").read_text())
    near["near"].pop("cluster_sizes")
    (run_dir / "metrics" / "dedup.json").write_text(json.dumps(near))
    drawn, skipped = draw_all(inputs, run_dir / "dvclive" / "train", run_dir / "fig")
    assert set(drawn) == ALL - {"bits_per_byte", "memory", "clusters", "forgetting"}
    assert set(skipped) == {"Bits per byte: base, init, trained", "Peak memory", "Near-duplicate cluster sizes",
                            "Merge sweep: domain gain against forgetting"}
    assert "eval.json not found" in skipped["Bits per byte: base, init, trained"]


def test_s_curve_follows_the_banding_formula():
    fig = s_curve_figure({"near": {"bands": 20, "rows": 5, "implied_threshold": 0.5493}})
    x, y = fig.axes[0].lines[0].get_data()
    assert y[100] == pytest.approx(detection_probability(0.5, 20, 5)) == pytest.approx(1 - (1 - 0.5**5) ** 20)


def test_report_links_each_drawn_figure_and_states_the_mfu_peak(run_dir, inputs):
    metrics = run_dir / "metrics"
    drawn, skipped = draw_all(inputs, run_dir / "dvclive" / "train", metrics / "figures")
    write_report(inputs, drawn, {"Something": "why"}, metrics / "figures", metrics / "report.md",
                 metrics / "report.html")
    md, page = (metrics / "report.md").read_text(), (metrics / "report.html").read_text()
    linked = re.findall(r"\]\((figures/\w+\.png)\)", md)
    assert sorted(linked) == sorted(f"figures/{s}.png" for s in ALL)
    assert all((metrics / rel).is_file() for rel in linked)
    assert sorted(re.findall(r'src="(figures/\w+\.png)"', page)) == sorted(linked)
    assert "30.0% of 0.358 TFLOP/s, the nominal CPU peak" in md
    assert "- Something: why" in md


def test_plots_template_inlines_vega_and_loads_nothing_remotely(tmp_path):
    path = tmp_path / "t.html"
    write_plots_template(path)
    text = path.read_text()
    assert text.count("{plot_divs}") == 1 and "{scripts}" not in text
    assert "window.vegaEmbed" in text
    assert not re.search(r"<script[^>]+src=|https?://cdn", text)


def test_general_text_scores_are_drawn_beside_the_held_out_ones(run_dir):
    evaluation = json.loads((run_dir / "metrics" / "eval.json").read_text())
    ax = bits_per_byte_figure(evaluation).axes[0]
    assert [c.get_label() for c in ax.containers] == ["held-out split", "general text"]
    assert [b.get_height() for b in ax.containers[1]] == [1.20, 1.60]


def test_forgetting_curve_plots_domain_against_general_bits_per_byte(run_dir):
    evaluation = json.loads((run_dir / "metrics" / "eval.json").read_text())
    x, y = forgetting_figure(evaluation).axes[0].lines[0].get_data()
    assert list(x) == [1.2, 1.31, 1.6] and list(y) == [3.37, 1.95, 1.79]
    for row in evaluation["merge"]["sweep"]:
        row["general_bits_per_byte"] = None
    x, y = forgetting_figure(evaluation).axes[0].lines[0].get_data()  # no general text: against the weight
    assert list(x) == [0.0, 0.5, 1.0] and list(y) == [3.37, 1.95, 1.79]


def test_report_tables_the_merge_sweep(run_dir, inputs):
    metrics = run_dir / "metrics"
    write_report(inputs, {}, {}, metrics / "figures", metrics / "report.md", metrics / "report.html")
    md = (metrics / "report.md").read_text()
    assert "| 0.5 | merged_50 (final) | 1.9500 | 1.3100 |" in md
    assert "<td>merged_50 (final)</td>" in (metrics / "report.html").read_text()


def test_the_confusion_matrix_is_skipped_with_its_reason_when_nothing_was_classified(run_dir, inputs):
    (run_dir / "metrics" / "finetune.json").write_text(json.dumps({"task": "none"}))
    drawn, skipped = draw_all(inputs, run_dir / "dvclive" / "train", run_dir / "fig")
    assert "confusion" not in drawn
    assert skipped["Fine-tuned classifier: confusion matrix on the test split"] == \
        "finetune.task is none, not classify"


def test_the_summary_names_each_fine_tuned_backbone(inputs):
    from pretrain.report.page import summary_rows

    rows = dict(summary_rows(inputs))
    assert rows["fine-tuned from final (classify)"] == "test accuracy 0.900, macro F1 0.900"
    assert rows["fine-tuned from init (classify)"] == "test accuracy 0.600, macro F1 0.600"
