"""What a checkpoint with absurd metadata costs before it is refused: CPU time and peak memory.

    python -m bench.checkpoint_refusal [--rounds 3] [--code OTHER_CHECKOUT] [--out FILE]

Each case is a valid checkpoint of the shipped MNIST architecture (784-512-256-2, 2.1 MB) whose ``model_config``
header claims another size (issue 9: z_dim = 10**6 cost 9.4 s and 3.2 GB before refusal,
hidden = [10**6, 256] 18.8 s and 5.2 GB). Each load runs in a fresh child process that
measures itself: CPU seconds of ``load_checkpoint`` (``time.process_time``, the import of torch
excluded) and the process's peak RSS (``ru_maxrss``; torch's import alone is most of the
baseline). The "good" case, the untouched file loaded, is the baseline. Medians over the rounds;
CPU time rather than wall time, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
t0 = time.process_time()
from trainer.checkpoint import CheckpointError, load_checkpoint
t1 = time.process_time()
try:
    load_checkpoint(sys.argv[1])
    outcome = "loaded"
except CheckpointError as e:
    outcome = "CheckpointError: " + str(e)
except BaseException as e:
    outcome = "ESCAPED " + type(e).__name__ + ": " + str(e)
t2 = time.process_time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_cpu": t1 - t0, "load_cpu": t2 - t1, "peak_mb": peak, "outcome": outcome}))
"""

CASES = {"good": None, "z_dim=10**6": {"z_dim": 10**6}, "hidden=[10**6, 256]": {"hidden": [10**6, 256]},
         # within the config's bounds: refused by the shape check, which no longer needs the memory
         "hidden=[65536, 256]": {"hidden": [65536, 256]}}


def make_files(folder: Path) -> dict[str, Path]:
    """The untouched tiny checkpoint and one copy per case with its ``model_config`` rewritten."""
    import torch
    from safetensors.torch import save as st_save

    from trainer.model import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(28, 28), hidden=(512, 256), z_dim=2))
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    out = {}
    for name, change in CASES.items():
        config = dict(model.config.to_dict(), **(change or {}))
        md = {"format": "vae-latent-explorer", "format_version": "1", "model_config": json.dumps(config),
              "meta": json.dumps({"name": "bench", "dataset": "mnist"})}
        p = folder / f"case{len(out)}.safetensors"
        p.write_bytes(st_save(tensors, metadata=md))
        out[name] = p
    return out


def run_child(path: Path, code: Path) -> dict:
    """The child's own measurements of loading ``path``: CPU seconds of the import and of the
    load (``time.process_time``), its peak RSS in MB (``ru_maxrss``) and the outcome."""
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=code, capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        return {"import_cpu": 0.0, "load_cpu": 0.0, "peak_mb": 0.0, "outcome": f"child died: {r.stderr[-200:]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    ap.add_argument("--code", type=Path, default=ROOT,
                    help="the checkout whose trainer/ loads the files (e.g. an older one, for a before/after)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        results: dict[str, list[dict]] = {k: [] for k in files}
        for _ in range(args.rounds):
            for name, path in files.items():
                results[name].append(run_child(path, args.code))
    lines = [f"{'case':<22} {'load CPU s':>10} {'peak RSS MB':>12}  outcome (median of {args.rounds}; "
             f"import CPU {statistics.median(r['import_cpu'] for rs in results.values() for r in rs):.2f} s)"]
    for name, rs in results.items():
        cpu = statistics.median(r["load_cpu"] for r in rs)
        rss = statistics.median(r["peak_mb"] for r in rs)
        lines.append(f"{name:<22} {cpu:>10.3f} {rss:>12.0f}  {rs[-1]['outcome'][:110]}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
