"""A torchrun worker for tests/test_ddp.py: ``python -m trainer`` with one injected failure.

    torchrun ... tests/ddp_fault.py RANK STEP MODE train --data-dir ... --out ...

Process RANK fails when it computes the loss of optimizer step STEP: MODE ``raise`` raises a
RuntimeError (a bug or a bad batch), ``kill`` sends itself SIGKILL (the OOM killer). Every other
process runs the real trainer unchanged.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainer.train as tt  # noqa: E402
from trainer.__main__ import main  # noqa: E402

RANK, STEP, MODE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
_loss = tt._Run._loss


def failing_loss(self, xb, step):
    if step == STEP and self.place.rank == RANK:
        if MODE == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure at step {step}")
    return _loss(self, xb, step)


tt._Run._loss = failing_loss
sys.exit(main(sys.argv[4:]))
