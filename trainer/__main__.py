"""Command line: a thin argparse shell over ``trainer.train.train`` and friends.

    python -m trainer train --dataset mnist --z-dim 20 --epochs 50 --out runs/mnist-z20.safetensors
    python -m trainer train --out runs/mnist-z20.safetensors --resume     # after Ctrl-C
    python -m trainer evaluate checkpoints/mnist-z20.safetensors --k 1000
    python -m trainer info checkpoints/mnist-z20.safetensors
    python -m trainer rebuild --data-dir ../shared/data                    # all shipped checkpoints
    python -m trainer directions checkpoints/*.safetensors --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing

from trainer.checkpoint import CheckpointError
from trainer.train import TrainConfig, TrainingDiverged


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        t = hints[f.name]
        default = f.default
        if t is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(t) is tuple:
            p.add_argument(flag, type=int, nargs="+", default=default, metavar="N")
        else:
            base = next((a for a in typing.get_args(t) if a is not type(None)), t)
            p.add_argument(flag, type=base, default=default)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train and evaluate VAEs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="train a VAE and write a checkpoint")
    _add_config_flags(p_train)
    p_train.add_argument("--resume", action="store_true", help="continue the run saved at --out")

    p_eval = sub.add_parser("evaluate", help="test ELBO and importance-weighted log p(x), as JSON")
    p_eval.add_argument("checkpoint")
    p_eval.add_argument("--k", type=int, default=1000, help="importance samples per example")
    p_eval.add_argument("--n", type=int, default=0, help="test examples (0 = all)")
    p_eval.add_argument("--data-dir", default=None)
    p_eval.add_argument("--seed", type=int, default=0)

    p_info = sub.add_parser("info", help="print a checkpoint's config and metadata as JSON")
    p_info.add_argument("checkpoint")
    p_info.add_argument("--history", action="store_true", help="include the training history")

    p_rebuild = sub.add_parser("rebuild", help="retrain the shipped checkpoints into checkpoints/")
    p_rebuild.add_argument("--data-dir", default=None)
    p_rebuild.add_argument("--out-dir", default="checkpoints")
    p_rebuild.add_argument("--only", nargs="+", default=None, help="preset names (default: all)")

    p_dirs = sub.add_parser("directions", help="compute the built-in latent directions and store them in checkpoints")
    p_dirs.add_argument("checkpoints", nargs="+")
    p_dirs.add_argument("--data-dir", default=None)

    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from trainer.train import train

            path = train(_config_from_args(args), resume=args.resume)
            print(path)
        elif args.command == "evaluate":
            from trainer.evaluate import evaluate

            print(json.dumps(evaluate(args.checkpoint, k=args.k, n=args.n, data_dir=args.data_dir,
                                      seed=args.seed, progress=True), indent=2))
        elif args.command == "info":
            from trainer.checkpoint import read_metadata

            config, meta = read_metadata(args.checkpoint)
            if not args.history:
                meta.pop("history", None)
            print(json.dumps({"model_config": config.to_dict(), **meta}, indent=2))
        elif args.command == "rebuild":
            from trainer.directions import build_directions
            from trainer.presets import PRESETS, preset_config
            from trainer.train import train

            names = args.only or list(PRESETS)
            for name in names:
                t0 = time.perf_counter()
                path = train(preset_config(name, data_dir=args.data_dir, out_dir=args.out_dir))
                build_directions(path, args.data_dir)
                print(f"{path}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        elif args.command == "directions":
            from trainer.directions import build_directions, summary_lines

            for path in args.checkpoints:
                t0 = time.perf_counter()
                meta = build_directions(path, args.data_dir)
                print(f"{path}: {time.perf_counter() - t0:.1f} s", *summary_lines(meta), sep="\n")
    except (CheckpointError, TrainingDiverged, ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
