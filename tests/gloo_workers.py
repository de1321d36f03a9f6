"""Start N plain Python processes that join one gloo process group (a file rendezvous) and wait for them: for tests
of what torch.distributed code computes, without accelerate's launcher (two workers start in a few seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch


def run_gloo_workers(script: str, world_size: int, folder: Path, timeout: float = 180) -> list[dict]:
    """Run `script` (Python source; its argv is `rank world_size init_file folder`) once per rank and return what
    each rank saved to `folder/rank{r}.pt`. A worker that fails fails the test with the workers' output."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(rank), str(world_size), str(folder / "init"), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(world_size)
    ]
    outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(outputs)[-4000:]
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
