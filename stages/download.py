"""download: documents from the configured source (or mix of sources) into Parquet shards."""

from pretrain.errors import warn
from pretrain.io import write_json
from pretrain.sources.download import describe_skipped, download
from pretrain.stage import run_stage


def main(args, params):
    report = download(params["download"], args.out, url_cache=args.url_cache, lock=args.lock,
                      executor=params["executor"], work_root=args.work)
    write_json(args.metrics, report)
    lost = describe_skipped(report)
    repaired = report.get("lines_repaired", 0)
    inputs = report["inputs"]
    read = (f" from {inputs['files']:,} file{'' if inputs['files'] == 1 else 's'} in "
            f"{inputs['tasks']:,} task{'' if inputs['tasks'] == 1 else 's'}") if inputs["files"] else ""
    print(f"download: {report['documents']} documents, {report['chars']:,} characters{read}"
          + (f"; repaired: {repaired:,} line{'' if repaired == 1 else 's'}, lines_repaired" if repaired else "")
          + (f"; skipped: {lost}" if lost else ""))
    for warning in report.get("warnings", []):
        warn(warning)


if __name__ == "__main__":
    run_stage(__doc__, ["out", "metrics"], main, optional=("url_cache", "sources", "lock", "work"))
