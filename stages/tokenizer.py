"""tokenizer: train a byte-level BPE tokenizer on a sample of the corpus, or take the one params name."""

from pretrain.errors import warn
from pretrain.io import write_json
from pretrain.stage import run_stage
from pretrain.tokens.tokenizer import build_tokenizer


def main(args, params):
    model = params["model"]
    base = model.base if model.init != "random" else None
    report = build_tokenizer(params["tokenizer"], args.input, args.out, base)
    write_json(args.metrics, report)
    sample = report.get("sample")
    trained_on = f", trained on {sample['documents']} documents ({sample['bytes'] / 1e6:,.1f} MB)" if sample else ""
    print(f"tokenizer: {report['origin']}, vocabulary of {report['vocab_size']}{trained_on}")
    for warning in report.get("warnings", []):
        warn(warning)


if __name__ == "__main__":
    run_stage(__doc__, ["input", "out", "metrics"], main, optional=("bases",))
