"""tokenizer: train a byte-level BPE tokenizer on the corpus, or take the one params name."""

from pretrain.io import write_json
from pretrain.stage import run_stage
from pretrain.tokens.tokenizer import build_tokenizer


def main(args, params):
    model = params["model"]
    base = model.base if model.init != "random" else None
    report = build_tokenizer(params["tokenizer"], args.input / "documents.parquet", args.out, base)
    write_json(args.metrics, report)
    print(f"tokenizer: {report['origin']}, vocabulary of {report['vocab_size']}")


if __name__ == "__main__":
    run_stage(__doc__, ["input", "out", "metrics"], main, optional=("bases",))
