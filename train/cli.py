"""The ``fundus-train`` command: its parser (described from :class:`TrainConfig`'s fields) and entry point.

Parsing needs neither torch nor PyYAML, so ``--help`` and ``--version`` work without the train extra;
training itself (:mod:`fundus_vessels.train.run`) says which extra is missing, in one sentence.
"""

from __future__ import annotations

import argparse
import sys

from fundus_vessels.runtime.cli_common import OLD_OUTPUT_SPELLINGS, new_parser
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import run_with_extra
from fundus_vessels.train.config import FIELD_DEFAULTS, FIELD_HELP, FIELD_TYPES, PRESETS

PROG = "fundus-train"
EXAMPLES = [
    "fundus-train --preset improved --data drive --data-root ../shared/data --epochs 1 --max-steps 20 -o runs/smoke",
    "fundus-train --preset compact --data drive,chase --width 0.25 --ema 0.999 -o runs/x",
    "fundus-train --config recipe.yaml -o runs/x --resume        # continue a killed run from runs/x/last.pt",
    "torchrun --nproc-per-node 2 -m fundus_vessels.train.run --preset compact -o runs/ddp",
]
EXIT_CODES = {
    ExitStatus.OK: "trained",
    ExitStatus.USAGE: "bad setting, dataset or checkpoint (refused before training), or the 'train' extra missing",
}
# each setting's flag; the run folder also answers to -o/--output, the convention's output flag
FLAGS = {"out": ("-o", "--output", *OLD_OUTPUT_SPELLINGS)}


def shown(value: object) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else (repr(value) if value == "" else str(value))


def setting_help(name: str) -> str:
    """The field's description, its default and what each preset sets it to."""
    by_preset = [f"{preset}: {shown(values[name])}" for preset, values in PRESETS.items() if name in values]
    presets = f"; {', '.join(by_preset)}" if by_preset else ""
    return f"{FIELD_HELP[name]} ({FIELD_TYPES[name]}; default: {shown(FIELD_DEFAULTS[name])}{presets})".replace(
        "%", "%%"
    )


def get_args_parser() -> argparse.ArgumentParser:
    """Defaults ← ``--preset`` ← ``--config`` YAML ← one flag per :class:`TrainConfig` field."""
    parser = new_parser(PROG, "Train a fundus vessel segmentation model.", EXAMPLES, EXIT_CODES)
    parser.add_argument("--preset", default="improved", choices=sorted(PRESETS), help=FIELD_HELP["preset"])
    parser.add_argument(
        "--config", metavar="YAML", help="YAML file of settings, applied after the preset, before flags (default: none)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    for name in FIELD_TYPES:
        if name == "preset":
            continue
        flags = FLAGS.get(name, ("--" + name.replace("_", "-"),))
        metavar = "true|false" if FIELD_TYPES[name] == "bool" else name.upper()
        parser.add_argument(*flags, dest=name, default=None, metavar=metavar, help=setting_help(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help and --version
        return int(exc.code or 0)

    def run() -> int:
        from fundus_vessels.train.run import run_args

        return run_args(args)

    return run_with_extra(PROG, "train", run)


if __name__ == "__main__":
    sys.exit(main())
