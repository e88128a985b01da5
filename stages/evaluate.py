"""evaluate: held-out perplexity of the initial and trained models, lm-eval tasks, generations."""

from pretrain.evaluate.runner import evaluate, sweep_lines
from pretrain.io import write_json, write_text
from pretrain.sources.records import describe_skipped
from pretrain.stage import run_stage


def main(args, params):
    report, generations = evaluate(params["evaluate"], args.init, args.trained, args.data,
                                   args.tokens, args.merged)
    write_json(args.metrics, report)
    write_text(args.generations, generations)
    val = report["val"]
    print(f"evaluate: validation perplexity {val['init']['perplexity']:,.1f} (init) -> "
          f"{val['trained']['perplexity']:,.1f} (trained)")
    for line in sweep_lines(report.get("merge")):
        print(line)
    for part, reason in report["skipped"].items():
        print(f"evaluate: nothing to score in {part}: {reason}")
    if "general_text" in report and describe_skipped(report["general_text"]):
        print(f"evaluate: general text: {report['general_text']['documents']} documents; "
              f"skipped: {describe_skipped(report['general_text'])}")


if __name__ == "__main__":
    run_stage(__doc__, ["init", "trained", "data", "tokens", "metrics", "generations"], main,
              optional=("merged", "sources", "bases"))
