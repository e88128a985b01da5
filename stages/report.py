"""report: the run's figures as PNG files and a report page linking them (metrics/report.md,
metrics/report.html), drawn from the stages' metrics and the training curves, with no network."""

from pretrain.report.figures import INPUTS, draw_all
from pretrain.report.page import write_report
from pretrain.stage import run_stage


def main(args, params):
    metrics = {name: getattr(args, name) for name in INPUTS}
    drawn, skipped = draw_all(metrics, args.live, args.figures)
    write_report(metrics, drawn, skipped, args.figures, args.markdown, args.html)
    print(f"report: {len(drawn)} figures in {args.figures}, {args.markdown}, {args.html}"
          + (f" (not drawn: {', '.join(skipped)})" if skipped else ""))


if __name__ == "__main__":
    run_stage(__doc__, [*INPUTS, "live", "figures", "markdown", "html"], main)
