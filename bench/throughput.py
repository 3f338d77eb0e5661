"""Training throughput: this project's loop against the pytorch/examples VAE recipe, side by side.

    python -m bench.throughput --data-dir ../shared/data [--rounds 3]

Model: the paper-size 784-400-20 MLP VAE, batch 128, Adam 1e-3, one epoch of MNIST (60000 images).
- baseline: a faithful reimplementation of pytorch/examples `vae/main.py`: a torch DataLoader
  (shuffle=True) over a per-item Dataset that turns each uint8 image into a PIL image and then a
  float tensor (what torchvision's ToTensor does), sigmoid outputs with `binary_cross_entropy`.
- ours: `trainer.train.train` itself for one epoch with its defaults (data held as tensors, one
  gather per batch, dynamic binarisation, logits, fused Adam, float32 weights with "medium"
  matmul precision: bf16 products, float32 accumulation), timed by the trainer's own
  per-epoch training-loop clock. Variants: ours_grey (no binarisation: the same objective as the
  baseline, which trains on grey levels; the like-for-like loop comparison), ours_exact (matmul
  precision "highest", i.e. exact float32 matmuls) and ours_autocast (bf16 autocast).
- floor: the pure fp32 GEMMs of one training step of the same model (forward and the two
  backward products per layer), i.e. what no loop can beat on this machine in fp32.
Rounds alternate between the variants; medians are reported, as ratios to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from trainer.data import default_data_dir, load_dataset
from trainer.train import TrainConfig, train


class ExamplesVAE(nn.Module):
    """The pytorch/examples VAE (784-400-20), as written there."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


class PerItemMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST(transform=ToTensor()) does per item, step by step: the
    images are one uint8 torch tensor; an item is indexed out, turned into a PIL image, then
    ToTensor copies it into a new tensor, adds the channel axis (HWC -> CHW) and scales to floats."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.data, self.targets = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img, target = self.data[i], int(self.targets[i])
        pic = Image.fromarray(img.numpy(), mode="L")
        t = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        t = t.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
        return t.to(dtype=torch.get_default_dtype()).div(255), target


def baseline_epoch(images: np.ndarray, labels: np.ndarray, log=None) -> float:
    """pytorch/examples vae/main.py's train(): sum-reduced BCE + KLD, loss.item() every batch,
    a progress line every 10 batches (sent to ``log``, a throwaway buffer, not the terminal)."""
    import io

    log = log or io.StringIO()
    torch.manual_seed(0)
    model = ExamplesVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(PerItemMNIST(images, labels), batch_size=128, shuffle=True)
    model.train()
    train_loss = 0.0
    t0 = time.perf_counter()
    for batch_idx, (x, _) in enumerate(loader):
        opt.zero_grad()
        recon, mu, logvar = model(x)
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        train_loss += loss.item()
        opt.step()
        if batch_idx % 10 == 0:
            print(f"Train Epoch: 1 [{batch_idx * len(x)}/{len(loader.dataset)}]\tLoss: {loss.item() / len(x):.6f}",
                  file=log)
    return len(images) / (time.perf_counter() - t0)


def ours_epoch(data_dir: str, bf16: bool = False, precision: str = "medium", binarize: bool = True) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(dataset="mnist", data_dir=data_dir, out=f"{tmp}/b.safetensors", hidden=(400,),
                          z_dim=20, epochs=1, batch_size=128, bf16=bf16, matmul_precision=precision, binarize=binarize,
                          iwae_k=0, umap=False,
                          progress=False)
        path = train(cfg)
        from trainer.checkpoint import read_metadata

        _, meta = read_metadata(path)
        return meta["n_train"] / meta["history"][0]["seconds"]


def gemm_floor(batch: int = 128, iters: int = 300) -> float:
    """Samples/s of just the fp32 GEMMs of one step of 784-400-20(x2)-400-784."""
    shapes = [(784, 400), (400, 40), (20, 400), (400, 784)]
    ws = [torch.randn(a, b) for a, b in shapes]
    xs = [torch.randn(batch, a) for a, _ in shapes]
    gs = [torch.randn(batch, b) for _, b in shapes]
    for _ in range(20):
        for x, w, g in zip(xs, ws, gs):
            x @ w, g @ w.T, x.T @ g
    t0 = time.perf_counter()
    for _ in range(iters):
        for x, w, g in zip(xs, ws, gs):
            x @ w, g @ w.T, x.T @ g
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data_dir = args.data_dir or str(default_data_dir())
    ds = load_dataset("mnist", data_dir)
    images, labels = ds.train_x.numpy(), ds.train_y.numpy()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(images)} images/epoch")
    results: dict[str, list[float]] = {"baseline": [], "ours": [], "ours_grey": [], "ours_exact": [],
                                       "ours_autocast": [], "gemm_floor": []}
    for r in range(args.rounds):
        results["baseline"].append(baseline_epoch(images, labels))
        results["ours"].append(ours_epoch(data_dir))
        results["ours_grey"].append(ours_epoch(data_dir, binarize=False))
        results["ours_exact"].append(ours_epoch(data_dir, precision="highest"))
        results["ours_autocast"].append(ours_epoch(data_dir, bf16=True, precision="highest"))
        results["gemm_floor"].append(gemm_floor())
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
    for k in ("ours", "ours_grey"):
        ratios = [o / b for o, b in zip(results[k], results["baseline"])]
        print(f"{k} / baseline per round (measured back to back): "
              + ", ".join(f"{r:.2f}" for r in ratios) + f"; median {statistics.median(ratios):.2f}")
    base = statistics.median(results["baseline"])
    floor = statistics.median(results["gemm_floor"])
    print(f"\n{'loop':<14} {'median samples/s':>18} {'x baseline':>11} {'of 40k floor':>13} "
          f"{'of measured fp32 GEMM floor':>28}")
    for k, v in results.items():
        m = statistics.median(v)
        print(f"{k:<14} {m:>18,.0f} {m / base:>11.2f} {m / 40000:>13.0%} {m / floor:>28.0%}")


if __name__ == "__main__":
    main()
