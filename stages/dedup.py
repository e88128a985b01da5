"""dedup: remove exact duplicate documents."""

from pretrain.dedup import dedup
from pretrain.io import write_json
from pretrain.stage import run_stage


def main(args, params):
    report = dedup(params["dedup"], args.input / "documents.parquet", args.out)
    write_json(args.metrics, report)
    print(f"dedup: removed {report['duplicates_removed']} duplicates, "
          f"kept {report['documents_out']} documents")


if __name__ == "__main__":
    run_stage(__doc__, ["input", "out", "metrics"], main)
