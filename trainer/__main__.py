"""Command line: a thin argparse shell over ``trainer.train.train`` and friends.

    python -m trainer train --dataset mnist --z-dim 20 --epochs 50 --out runs/mnist-z20.safetensors
    python -m trainer train --out runs/mnist-z20.safetensors --resume     # after Ctrl-C or SIGTERM
    torchrun --nproc-per-node 2 -m trainer train ...                       # data-parallel (README: Scaling up)
    python -m trainer evaluate checkpoints/mnist-z20.safetensors --k 1000
    python -m trainer info checkpoints/mnist-z20.safetensors
    python -m trainer rebuild --data-dir ../shared/data                    # all shipped checkpoints
    python -m trainer directions checkpoints/*.safetensors --data-dir ../shared/data

``train``'s flags are generated from :class:`trainer.config.TrainConfig`: one per field, its help
text from the field's metadata, choices from its ``Literal`` type, a fixed number of values for a
fixed-size tuple. Every error is one line on stderr: exit 2 for a bad argument (checked before any
data is loaded), 1 for a failure, 130 for an abort or an interrupted ``rebuild``. Under torchrun
each failing process prints one line prefixed with its rank (any exception, tracebacks included,
as one line), and torchrun stops the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import types
import typing

from trainer.checkpoint import CheckpointError
from trainer.config import ConfigError, TrainConfig, flag
from trainer.distributed import is_main_process, rank_label
from trainer.presets import PRESETS
from trainer.train import TrainingDiverged


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the train subcommand's usage alone is a screenful)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (see the module docstring)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        t, d = hints[f.name], f.default
        shown = (flag(f.name) if d else "--no-" + flag(f.name)[2:]) if t is bool else (
            " ".join(map(str, d)) if isinstance(d, tuple) else d)
        help_text = f.metadata["help"] + ("" if d is None else f" (default: {shown})")
        kw: dict = {"default": d, "help": help_text.replace("%", "%%")}
        if t is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(t) is tuple:
            args = typing.get_args(t)
            n = "+" if args[-1] is Ellipsis else len(args)
            kw.update(type=int, nargs=n, metavar=f.metadata.get("metavar", "N"))
        else:
            base = t
            if typing.get_origin(t) in (typing.Union, types.UnionType):  # X | None -> X
                base = next(a for a in typing.get_args(t) if a is not type(None))
            if typing.get_origin(base) is typing.Literal:
                kw["choices"] = typing.get_args(base)
            else:
                kw["type"] = base
        p.add_argument(flag(f.name), **kw)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed flags; raises ConfigError for a value out of range."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


# --- one function per subcommand; each returns the exit status -----------------------------------

def _cmd_train(args: argparse.Namespace) -> int:
    from trainer.train import train

    path = train(_config_from_args(args), resume=args.resume)
    if is_main_process():
        print(path)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate

    print(json.dumps(evaluate(args.checkpoint, k=args.k, n=args.n, data_dir=args.data_dir,
                              seed=args.seed, progress=True), indent=2))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from trainer.checkpoint import read_metadata

    config, meta = read_metadata(args.checkpoint)
    if not args.history:
        meta.pop("history", None)
    print(json.dumps({"model_config": config.to_dict(), **meta}, indent=2))
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from trainer.builtin_directions import build_directions
    from trainer.checkpoint import read_metadata
    from trainer.presets import preset_config
    from trainer.train import train

    if rank_label():
        print("error: rebuild runs in one process (python -m trainer rebuild); use torchrun with train",
              file=sys.stderr)
        return 2
    configs = [preset_config(name, data_dir=args.data_dir, out_dir=args.out_dir) for name in args.only or PRESETS]
    for cfg in configs:  # all made (and so validated) before the first run starts
        t0 = time.perf_counter()
        path = train(cfg)
        if "metrics" not in read_metadata(path)[1]:  # stopped by Ctrl-C / SIGTERM: resumable, not final
            print(f"rebuild interrupted: {path} is resumable with python -m trainer train ... --resume",
                  file=sys.stderr)
            return 130
        build_directions(path, args.data_dir)
        print(f"{path}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def _cmd_directions(args: argparse.Namespace) -> int:
    from trainer.builtin_directions import build_directions, summary_lines

    for path in args.checkpoints:
        t0 = time.perf_counter()
        meta = build_directions(path, args.data_dir)
        print(f"{path}: {time.perf_counter() - t0:.1f} s", *summary_lines(meta), sep="\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m trainer", description="Train and evaluate VAEs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a VAE and write a checkpoint")
    _add_config_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run saved at --out (same flags)")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser("evaluate", help="test ELBO and importance-weighted log p(x), as JSON")
    p.add_argument("checkpoint")
    p.add_argument("--k", type=_non_negative_int, default=1000, help="importance samples per example (0 = skip)")
    p.add_argument("--n", type=_non_negative_int, default=0, help="test examples (0 = all)")
    p.add_argument("--data-dir", default=None,
                   help="datasets folder, or the image folder of a folder-trained model (default: as trained)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the evaluation's draws")
    p.set_defaults(run=_cmd_evaluate)

    p = sub.add_parser("info", help="print a checkpoint's config and metadata as JSON")
    p.add_argument("checkpoint")
    p.add_argument("--history", action="store_true", help="include the training history")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("rebuild", help="retrain the shipped checkpoints into checkpoints/")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: as for train)")
    p.add_argument("--out-dir", default="checkpoints", help="where the checkpoints go (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, choices=list(PRESETS), metavar="PRESET",
                   help=f"presets to rebuild (default: all of {', '.join(PRESETS)})")
    p.set_defaults(run=_cmd_rebuild)

    p = sub.add_parser("directions", help="compute the built-in latent directions and store them in checkpoints")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: as for train)")
    p.set_defaults(run=_cmd_directions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    who = rank_label()  # "rank R/W: " under torchrun
    try:
        return args.run(args)
    except ConfigError as e:  # a flag's value, refused before any data is loaded
        print(f"error: {who}{flag(e.field)}: {e.problem}, got {e.shown}", file=sys.stderr)
        return 2
    except (CheckpointError, TrainingDiverged, ValueError, KeyError, OSError) as e:
        print(f"error: {who}{e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{who}aborted", file=sys.stderr)
        return 130
    except Exception as e:  # under torchrun: one line per failing process; torchrun stops the others
        if not who:
            raise
        print(f"error: {who}{_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: Exception) -> str:
    """An unexpected exception in one line; a broken connection to the other processes says so."""
    import torch.distributed as dist

    first = (str(e).strip().splitlines() or [""])[0][:300]
    lost = ("Connection closed by peer", "Connection reset by peer", "NCCL")  # gloo's and nccl's words for it
    if isinstance(e, dist.DistError) or any(w in first for w in lost):
        detail = first.split("] ", 1)[-1].split(". ")[0]  # gloo: "[pair.cc:537] Read error ...: reset by peer."
        return f"lost contact with the other processes (one failed or was stopped; see its message): {detail}"
    return f"{type(e).__name__}: {first}"


if __name__ == "__main__":
    sys.exit(main())
