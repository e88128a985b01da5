"""train: causal-LM training of the initial model on the packed training rows."""

from dvclive import Live

from pretrain.io import write_json
from pretrain.stage import run_stage
from pretrain.train import train


def main(args, params):
    # dvcyaml=None: DVCLive must not rewrite the project's dvc.yaml; the plots are declared there.
    with Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None) as live:
        report = train(params["train"], args.model, args.data, args.out, live)
    write_json(args.metrics, report)
    print(f"train: loss {report['first_loss']:.3f} -> {report['final_loss']:.3f} "
          f"in {report['steps']} steps, {report['tokens_per_second']:,.0f} tokens/s")


if __name__ == "__main__":
    run_stage(__doc__, ["model", "data", "out", "live", "metrics"], main)
