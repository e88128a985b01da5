"""clean: apply the configured rules and report documents dropped by reason."""

from pretrain.clean.runner import clean
from pretrain.errors import warn
from pretrain.io import write_json
from pretrain.stage import run_stage


def main(args, params):
    report = clean(params["clean"], params["executor"], args.input, args.out, args.work, args.scores)
    write_json(args.metrics, report)
    print(f"clean: kept {report['documents_out']} of {report['documents_in']} documents")
    for warning in report.get("warnings", []):
        warn(warning)


if __name__ == "__main__":
    run_stage(__doc__, ["input", "out", "work", "metrics"], main, optional=("scores",))
