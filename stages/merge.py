"""merge: the trained model merged with the model it started from (or another model of the same
shapes) at each of merge.weights, through mergekit; a pass-through when merge.method is none."""

from pretrain.io import write_json
from pretrain.merge.runner import init_kind, merge
from pretrain.stage import run_stage


def main(args, params):
    cfg = params["merge"]
    if cfg.method != "none" and cfg.other == "init" and init_kind(args.init) == "random":
        print("merge: warning: model.init is random, so the init is noise: merging moves the trained "
              "model toward it (merging is for continued pretraining, or for two trained models)")
    manifest = merge(cfg, args.trained, args.init, args.out)
    write_json(args.metrics, manifest)
    if cfg.method == "none":
        print("merge: nothing to merge (merge.method: none): the trained model is final")
        return
    print(f"merge: {cfg.method} of the trained model with {cfg.other} at weights "
          f"{', '.join(f'{w:g}' for w in cfg.weights)} in {args.out}; final: {manifest['final']}")


if __name__ == "__main__":
    run_stage(__doc__, ["trained", "init", "out", "metrics"], main, optional=("bases",))
