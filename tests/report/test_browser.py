"""The pictures are seen offline in a real browser: headless Chromium (Debian's ``chromium``,
installed by .ci/run) with every host name unresolvable opens the report page and the page of
``dvc plots show``, and the screenshots show drawn charts, not a blank page."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrain.report.figures import draw_all
from pretrain.report.page import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"  # no host name resolves: no CDN, no network


def chromium(url: str, *args: str) -> str:
    """Run headless Chromium offline on ``url`` with ``args``; its stdout."""
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", OFFLINE,
                             "--virtual-time-budget=15000", *args, url],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path, height: int) -> np.ndarray:
    chromium(url, f"--screenshot={path}", f"--window-size=1000,{height}")
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def coloured(rgb: np.ndarray) -> int:
    """Pixels of a saturated colour: chart lines, bars and marks (text and grids are grey)."""
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())


def test_the_report_page_shows_its_figures_offline(run_dir, inputs, tmp_path):
    metrics = run_dir / "metrics"
    drawn, skipped = draw_all(inputs, run_dir / "dvclive" / "train", metrics / "figures")
    write_report(inputs, drawn, skipped, metrics / "figures", metrics / "report.md", metrics / "report.html")
    rgb = screenshot((metrics / "report.html").as_uri(), tmp_path / "report.png", 9000)
    # Each of the 12 figures has hundreds of coloured pixels at least; a page whose images did
    # not load shows only text and broken-image icons.
    assert coloured(rgb) > 12 * 300
    shutil.rmtree(metrics / "figures")  # the same page without its pictures: what failing looks like
    assert coloured(screenshot((metrics / "report.html").as_uri(), tmp_path / "broken.png", 9000)) < 500


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_dvc_plots_show_draws_offline_with_the_projects_template(run_dir, tmp_path):
    """The project's .dvc/config and its plots: the page `dvc plots show` writes, opened offline,
    has an SVG chart per plot and coloured curves; DVC's own template (Vega from a CDN) draws
    nothing, which is what this test would see if the template were not used."""
    root = Path(__file__).resolve().parents[2]
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    shutil.copy(root / ".dvc" / "config", repo / ".dvc" / "config")
    subprocess.run([sys.executable, "-m", "pretrain.cli", "plots-template"], cwd=repo, check=True)  # as setup.sh
    shutil.copytree(run_dir / "dvclive", repo / "dvclive")
    plots = [line for line in (root / "dvc.yaml").read_text().split("\nplots:\n")[1].splitlines()
             if line.startswith("  - ")]
    (repo / "dvc.yaml").write_text("vars:\n  - paths:\n      live: dvclive/train\nplots:\n" + "\n".join(plots) + "\n")
    dvc(repo, "plots", "show", "-o", "page")
    dom = chromium((repo / "page" / "index.html").as_uri(), "--dump-dom")
    assert dom.count('class="marks"') == len(plots)  # vega-embed drew every chart
    assert coloured(screenshot((repo / "page" / "index.html").as_uri(), tmp_path / "plots.png", 4000)) > 500
    dvc(repo, "config", "--unset", "plots.html_template")
    dvc(repo, "plots", "show", "-o", "cdn")
    assert 'class="marks"' not in chromium((repo / "cdn" / "index.html").as_uri(), "--dump-dom")
