"""The pretrain command: `pretrain estimate` prints what a run of params.yaml will cost;
`pretrain plots-template` writes the page `dvc plots show` uses offline;
`pretrain builtin-manifest` writes the built-in corpus's manifest for this Python.

    pretrain estimate [--params params.yaml] [--gpu h100-sxm] [--gpus N] [--measure-steps 5] [--json]
    pretrain plots-template [--out .dvc/tmp/plots_offline.html]
    pretrain builtin-manifest [--lock requirements/core.lock] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from pretrain.config import load_all
from pretrain.cost.estimate import estimate
from pretrain.cost.formulas import (
    ASSUMED_GPU_MFU,
    CHINCHILLA_TOKENS_PER_PARAMETER,
    GPUS,
    gpu,
)
from pretrain.errors import PretrainError
from pretrain.report.page import write_plots_template
from pretrain.sources.download import build_manifest
from pretrain.sources.manifest import MANIFESTS

PLOTS_TEMPLATE = Path(".dvc/tmp/plots_offline.html")
"""Where .dvc/config's plots.html_template points (relative to .dvc: tmp/plots_offline.html)."""


def add_estimate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="the params file (default: params.yaml in the working directory)")
    parser.add_argument("--gpu", default="h100-sxm",
                        help=f"project the time on this GPU (one of: {', '.join(sorted(GPUS))})")
    parser.add_argument("--gpus", type=int, default=None,
                        help="project the time and memory per GPU on this many GPUs (default: "
                             "--num_processes of train.launcher, else 1)")
    parser.add_argument("--gpu-mfu", type=float, default=ASSUMED_GPU_MFU,
                        help="model FLOPs utilisation assumed on the GPU (default: %(default)s)")
    parser.add_argument("--measure-steps", type=int, default=5,
                        help="timed optimizer steps on this machine, after one warm-up (0: skip)")
    parser.add_argument("--measure-compile", action="store_true",
                        help="measure with torch.compile when params set it (compilation is not "
                             "timed, but takes a minute on a small CPU)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")


def run_estimate(args: argparse.Namespace) -> None:
    gpu(args.gpu)  # an unknown name fails before any work
    if args.measure_steps < 0 or not 0 < args.gpu_mfu <= 1 or (args.gpus is not None and args.gpus < 1):
        raise PretrainError("--measure-steps must be >= 0, --gpus >= 1 and --gpu-mfu in (0, 1]")
    configs = load_all(args.params)
    compile = args.measure_compile and configs["train"].compile
    report = estimate(configs, args.gpu, args.measure_steps, compile, args.gpu_mfu, args.gpus)
    print(json.dumps(report, indent=2) if args.json else render(report, configs, args.params))


def add_plots_template(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=PLOTS_TEMPLATE,
                        help="where to write it (default: %(default)s, where .dvc/config's "
                             "plots.html_template points)")


def run_plots_template(args: argparse.Namespace) -> None:
    write_plots_template(args.out)
    print(f"pretrain: wrote {args.out} (dvc plots show draws offline with it)")


def add_builtin_manifest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock", type=Path, default=Path("requirements/core.lock"),
                        help="the lock whose distributions give package descriptions "
                             "(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=MANIFESTS,
                        help="the folder of manifests (default: the package's own)")


def run_builtin_manifest(args: argparse.Namespace) -> None:
    path, count = build_manifest(args.lock, args.out)
    print(f"pretrain: wrote {path} ({count} documents)")


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "estimate": ("parameters, tokens, FLOPs, memory and time of a run of params.yaml",
                 add_estimate, run_estimate),
    "plots-template": ("write the page template with which `dvc plots show` draws offline",
                       add_plots_template, run_plots_template),
    "builtin-manifest": ("write the manifest of the built-in corpus for this Python "
                         "(docs/reproducibility.md)", add_builtin_manifest, run_builtin_manifest),
}
"""Subcommand name -> (help, add its arguments, run it)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pretrain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (PretrainError, OSError) as exc:
        print("error: " + " ".join(str(exc).splitlines()), file=sys.stderr)  # one line, always
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# The readable table
# ---------------------------------------------------------------------------------------------


def render(r: dict[str, Any], configs: dict[str, Any], params: Path) -> str:
    """The estimate as aligned ``label  value`` lines, in sections."""
    m, t, model = r["model"], configs["train"], configs["model"]
    source = f"preset {model.preset}" if model.init == "random" else f"base {model.base}"
    lines = [f"pretrain estimate: {params} (model.init {model.init}, {source})",
             row("model", f"{m['model_type']}: {m['layers']} layers, hidden {m['hidden_size']}, "
                 f"{m['heads']} heads ({m['kv_heads']} key/value), FFN {m['intermediate_size']}, "
                 f"vocab {m['vocab_size']:,}"),
             row("parameters", f"{r['parameters']:,} ({r['matmul_parameters']:,} in matmuls, "
                 f"{r['embedding_parameters']:,} in embeddings)"),
             row("tokens", f"{r['tokens']:,} = {r['steps']:,} steps x {t.micro_batch_size} sequences "
                 f"x {t.grad_accum_steps} accumulation x {r['seq_len']} tokens"),
             row("FLOPs per token", f"{si(r['flops_per_token'])} = 6N {si(6 * r['matmul_parameters'])}"
                 f" + attention 12*L*H*Q*T {si(r['attention_flops_per_token'])} (PaLM, appendix B)"),
             row("training FLOPs", f"{r['training_flops']:.3g}"),
             row("Chinchilla tokens", f"{r['chinchilla_tokens']:,} ({CHINCHILLA_TOKENS_PER_PARAMETER} "
                 f"per parameter); this run trains {r['tokens'] / r['chinchilla_tokens']:.2%} of that")]
    return "\n".join(lines + memory_lines(r) + time_lines(r) + rule_lines(r))


def memory_lines(r: dict[str, Any]) -> list[str]:
    mem = r["memory"]
    title = f"memory (micro-batch {r['micro_batch_size']} x {r['seq_len']} tokens)"
    lines = ["", f"{title:<42}{'fp32':>16}{'bf16 autocast':>16}"]
    for label, key in (("weights (+ 16-bit copies)", "weights"), ("gradients", "grads"),
                       (f"{r['optimizer']} state", "optimizer"), ("activations", "activations"), ("total", "total")):
        lines.append(f"  {label:<40}" + "".join(f"{size(mem[p]['plain'][key]):>16}" for p in ("fp32", "bf16")))
    lines.append(f"  {'  with gradient checkpointing':<40}"
                 + "".join(f"{size(mem[p]['checkpointed']['total']):>16}" for p in ("fp32", "bf16")))
    lines.append(f"  {'bytes per parameter':<40}"
                 + "".join(f"{mem[p]['plain']['per_parameter']:>16.1f}" for p in ("fp32", "bf16")))
    return lines


def mfu_text(here: dict[str, Any]) -> str:
    """MFU against the nominal peak, with the peak and its source."""
    if here["mfu"] is None:
        return "unknown (no nominal peak for this device: set train.peak_tflops)"
    return f"{here['mfu']:.1%} of {si(here['peak_flops'])}FLOP/s, the {here['peak_source']}"


def time_lines(r: dict[str, Any]) -> list[str]:
    lines = ["", "time"]
    here = r["this_machine"]
    if here:
        how = "compiled" if here["compiled"] else "eager; torch.compile not measured"
        lines.append(row("this machine", f"{duration(here['seconds'])} at {here['tokens_per_second']:,.0f} "
                         f"tokens/s (median of {here['steps']} {here['precision']} steps on {here['device']}, {how}); "
                         f"MFU {mfu_text(here)}; {here['mfu_measured']:.1%} of a {here['precision']} "
                         f"matmul measured now, {si(here['peak_flops_measured'])}FLOP/s"))
        spread = max(here["step_seconds"]) / min(here["step_seconds"])
        if spread > 1.5:
            lines.append(row("", f"warning: step times varied {spread:.1f}x: other processes are using "
                             "this machine, so the projection reflects them"))
    else:
        lines.append(row("this machine", "not measured (--measure-steps 0)"))
    g = r["gpu"]
    fits = "fits" if g["fits"] else "does NOT fit"
    several = g["gpus"] > 1
    name = f"{g['gpus']} x {g['name']}" if several else g["name"]
    lines.append(row(name, f"{duration(g['seconds'])} at an assumed {g['assumed_mfu']:.0%} MFU of "
                     f"{si(g['peak_flops'])}FLOP/s dense {g['peak_dtype']}"
                     f"{' per GPU' if several else ''}; {size(g['memory_bytes'])}"
                     f"{' per GPU' if several else ''} {fits} in {g['memory_gb']:g} GB"))
    if several:
        parts = [name for key, name in (("weights", "weights"), ("grads", "gradients"),
                                        ("optimizer", "optimizer state")) if key in g["split"]]
        how = (f"{g['sharding']}: {', '.join(parts)} split among the GPUs"
               if g["sharding"] != "none" else "DDP: every GPU holds the whole training state")
        if g["offload"]:
            how += " (optimizer state offloaded to CPU memory, not counted)"
        lines.append(row("", f"{how}; time assumes perfect scaling"))
    return lines


def rule_lines(r: dict[str, Any]) -> list[str]:
    lines = ["", f"the \"20x parameters in bytes\" rule ({r['precision']}, micro-batch "
             f"{r['micro_batch_size']} x {r['seq_len']} tokens)",
             f"  {'model':<16}{'parameters':>12}{'weights+grads+AdamW':>21}{'activations':>13}"
             f"{'total':>11}{'bytes/param':>13}{'checkpointed':>14}  20x rule"]
    for x in r["rule_of_20"]:
        ratio = x["per_parameter"] / 20
        verdict = "holds" if 0.75 <= ratio <= 1.33 else (f"understates {ratio:.1f}x" if ratio > 1
                                                          else f"overstates {1 / ratio:.1f}x")
        lines.append(f"  {x['model']:<16}{si(x['parameters']):>12}{size(x['states']):>21}"
                     f"{size(x['activations']):>13}{size(x['total']):>11}{x['per_parameter']:>13.1f}"
                     f"{x['per_parameter_checkpointed']:>14.1f}  {verdict}")
    return lines


def row(label: str, value: str) -> str:
    return f"  {label:<20}{value}"


def si(x: float) -> str:
    """1234567 -> '1.23 M'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}"
    return f"{x:.3g} "


def size(n: float | None) -> str:
    """Bytes in MB or GB (decimal, as GPU memory is quoted)."""
    if n is None:
        return "n/a"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def duration(seconds: float) -> str:
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= length:
            return f"{seconds / length:.1f} {unit}"
    milliseconds = seconds * 1000
    return f"{milliseconds:.0f} ms" if milliseconds >= 10 else f"{milliseconds:.2g} ms"


if __name__ == "__main__":
    main()
