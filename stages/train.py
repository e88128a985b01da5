"""train: causal-LM training of the initial model on the packed training rows, resumable from
the checkpoints it writes (run under train.launcher: python, or accelerate launch)."""

from pretrain.io import write_json
from pretrain.stage import run_stage
from pretrain.train.loop import leave, train


def main(args, params):
    report = train(params["train"], args.model, args.data, args.out, args.live, args.checkpoints)
    if report is not None:  # the main process (of one, or of a multi-process run)
        write_json(args.metrics, report)
        print(f"train: loss {report['first_loss']:.3f} -> {report['final_loss']:.3f} "
              f"in {report['steps']} steps, {report['tokens_per_second']:,.0f} tokens/s, "
              f"MFU {'unknown' if report['mfu'] is None else format(report['mfu'], '.1%')} "
              f"({report['peak_source']})")
    leave()


if __name__ == "__main__":
    run_stage(__doc__, ["model", "data", "out", "live", "checkpoints", "metrics"], main)
