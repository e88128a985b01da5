"""init-model: build a freshly initialised Llama-family model sized for the tokenizer, or load
model.base (and downscale or upscale it)."""

from functools import partial

from pretrain.config import check_loaded_model
from pretrain.io import write_json
from pretrain.model.build import init_model
from pretrain.stage import run_stage
from pretrain.tokens.tokenizer import load_tokenizer


def main(args, params):
    # A hub base's sizes are known only once loaded: the cross-key checks run again on them.
    report = init_model(params["model"], load_tokenizer(args.tokenizer), args.out,
                        check=partial(check_loaded_model, params, where=str(args.params)))
    write_json(args.metrics, report)
    print(f"init-model: {report['init']} init, {report['num_layers']} layers, {report['parameters']:,} parameters")
    if report["init"] in ("downscale", "upscale"):  # pretrained keeps every layer: nothing to say
        # which base layer became which, e.g. "upscale 12 -> 16: new 0-7 <- base 0-7, new 8-15 <- base 4-11"
        print(f"init-model: layers {report['mapping']}")


if __name__ == "__main__":
    run_stage(__doc__, ["tokenizer", "out", "metrics"], main, optional=("bases",))
