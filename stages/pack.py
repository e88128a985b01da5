"""pack: tokenize documents and pack them into fixed-length rows, with a held-out split."""

from pretrain.io import write_json
from pretrain.stage import run_stage
from pretrain.tokens.pack import pack


def main(args, params):
    report = pack(params["pack"], params["executor"], args.tokenizer, args.input, args.out, args.work,
                  args.tokens)
    write_json(args.metrics, report)
    print(f"pack: {report['train']['rows']} train rows, {report['val']['rows']} validation rows "
          f"of {report['seq_len']} tokens")


if __name__ == "__main__":
    run_stage(__doc__, ["input", "tokenizer", "out", "tokens", "work", "metrics"], main)
