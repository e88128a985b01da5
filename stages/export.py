"""export: the final model (trained, or merged when merge.method is set; or the sft model of
finetune when export.model is finetuned) as GGUF files for
llama.cpp and Ollama (export.types), each read back by transformers and, when installed,
llama.cpp; no files when export.types is empty."""

from pretrain.export.runner import export, summary_lines
from pretrain.io import write_json
from pretrain.stage import run_stage


def main(args, params):
    report = export(params["export"], params["evaluate"].prompts, args.trained, args.merged,
                    args.tokens, args.out, args.finetuned)
    write_json(args.metrics, report)
    if not report["types"]:
        print("export: nothing to export (export.types: [])")
    for line in summary_lines(report):
        print(line)


if __name__ == "__main__":
    run_stage(__doc__, ["trained", "merged", "finetuned", "tokens", "out", "metrics"], main)
