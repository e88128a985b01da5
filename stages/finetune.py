"""finetune: the final model fine-tuned into a classifier (finetune.task: classify) or a chat
model (sft), and the same fine-tune from the compared backbones (finetune.compare), scored side
by side; a pass-through when finetune.task is none."""

from pretrain.finetune.runner import finetune
from pretrain.io import write_json
from pretrain.merge.manifest import final_model
from pretrain.stage import run_stage


def main(args, params):
    cfg = params["finetune"]
    final, _ = final_model(args.merged, args.trained)
    report = finetune(cfg, params["train"], final, args.init, args.out, args.live, args.checkpoints)
    write_json(args.metrics, report)
    if cfg.task == "none":
        print("finetune: nothing to fine-tune (finetune.task: none)")
        return
    for name, entry in report["backbones"].items():
        scores = entry.get("test") or {}
        shown = ", ".join(f"test {k} {scores[k]:.3f}" for k in ("accuracy", "f1_macro") if k in scores)
        if entry.get("val_loss") is not None:
            shown = f"validation loss {entry['val_loss']:.3f}"
        print(f"finetune: {name}: {entry['steps']} steps" + (f", {shown}" if shown else ""))


if __name__ == "__main__":
    run_stage(__doc__, ["trained", "merged", "init", "out", "live", "checkpoints", "metrics"], main,
              optional=("tuning", "bases"))
