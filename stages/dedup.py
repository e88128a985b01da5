"""dedup: remove exact and near-duplicate documents (MinHash LSH), keeping the first of each."""

from pretrain.dedup.minhash import swapped_warning
from pretrain.dedup.runner import dedup, lsh_summary
from pretrain.errors import warn
from pretrain.io import write_json
from pretrain.stage import run_stage


def main(args, params):
    cfg = params["dedup"]
    print("\n".join(lsh_summary(cfg)))
    warning = swapped_warning(cfg.bands, cfg.rows, cfg.threshold) if cfg.near else None
    if warning:
        warn(warning)
    report = dedup(cfg, params["executor"], args.input, args.out, args.work)
    write_json(args.metrics, report)
    removed = report["removed"]
    print(f"dedup: removed {removed['exact']} exact and {removed['near']} near duplicates "
          f"({report.get('near', {}).get('clusters', 0)} clusters), kept {report['documents_out']} documents")
    for warning in report.get("warnings", []):
        warn(warning)


if __name__ == "__main__":
    run_stage(__doc__, ["input", "out", "work", "metrics"], main)
