"""`MAMLTrainer`: the outer loop of MAML, on one or several processes through `accelerate`.

Each meta-iteration takes the next `meta_batch_size` episodes (episode ids step * B .. step * B + B - 1,
so the task sequence does not depend on the process count). Process p handles tasks p, p + P, ...;
each task's query loss, divided by B, is back-propagated right away (one task's graph alive at a time);
the summed gradients are then all-reduced across processes, so every process takes the same optimizer
step as a single process would. Meta-validation runs on a fixed set of episodes at every checkpoint;
the best checkpoint by meta-validation accuracy is restored at the end.

Checkpoints (`checkpoint-N/`) hold the wrapper's state (safetensors), optimizer, scheduler and RNG
state, and `trainer_state.json`, which is written last: `hf_transfer.outputs.find_last_checkpoint`
takes a checkpoint only once that file parses, so a killed run resumes from the last complete one.

`TrainingArguments` flags honoured: `output_dir`, `learning_rate`, `weight_decay`, `adam_beta1/2`,
`adam_epsilon`, `max_grad_norm`, `max_steps` (meta-iterations), `lr_scheduler_type`, `warmup_steps`,
`logging_steps`, `save_steps` (checkpoint and meta-validation interval), `save_strategy` (`no`: keep the
best weights in memory only), `save_total_limit`, `seed`, `disable_tqdm`, `use_cpu`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm
from transformers import TrainingArguments, get_scheduler

from ..errors import ConfigError
from ..outputs import publish_directory, write_json_atomic
from .episodes import EpisodeDataset
from .evaluation import episode_accuracies, episode_results, mean_confidence_interval, probe_accuracies
from .model import MAML

__all__ = ["MAMLTrainer", "TRAINER_STATE_NAME"]

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
_WEIGHTS_NAME = "maml.safetensors"


def tracking_dir(output_dir: str) -> str:
    """Where trackers write, as transformers' TensorBoard callback decides it: `$TENSORBOARD_LOGGING_DIR`, else
    `<output_dir>/runs` (a run named by `--run_name`, default `maml`, in a folder of its own)."""
    return os.path.expanduser(os.environ.get("TENSORBOARD_LOGGING_DIR") or os.path.join(output_dir, "runs"))


def accelerate_trackers(report_to: Optional[Sequence[str] | str]) -> list[str]:
    """`--report_to` as accelerate tracker names (tensorboard, trackio, wandb, mlflow, ...): the outer loop logs
    through `Accelerator.log`, so the names `Trainer` recipes take work here too; one it does not know stops."""
    from accelerate.utils import LoggerType

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n != "none"]
    known = {t.value for t in LoggerType}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"--report_to {' '.join(unknown)}: maml logs through accelerate's trackers ({', '.join(sorted(known))}); "
            "choose among those."
        )
    return names


class MAMLTrainer:
    """Meta-train a `MAML` wrapper on episodes, choose the best checkpoint on meta-validation episodes.

    Args:
        maml: the wrapper; every trainable parameter of it is meta-trained.
        args: `TrainingArguments` (see the module docstring for the flags used).
        train_episodes: meta-train episodes (the dataset's length is ignored: episode ids keep growing).
        eval_episodes: meta-validation episodes; the first `num_eval_episodes` are scored.
        meta_batch_size: tasks per outer update, across all processes.
        num_eval_episodes: meta-validation episodes per check.
        accelerator: an `accelerate.Accelerator` (default: a new one on `args`' device).
    """

    def __init__(
        self,
        maml: MAML,
        args: TrainingArguments,
        train_episodes: EpisodeDataset,
        eval_episodes: EpisodeDataset,
        meta_batch_size: int,
        num_eval_episodes: int,
        accelerator: Optional[Accelerator] = None,
    ):
        if args.max_steps is None or args.max_steps <= 0:
            raise ConfigError(f"--max_steps (meta-iterations) must be positive; got {args.max_steps}.")
        if args.fp16 or args.bf16:
            raise ConfigError("MAML runs in float32 here; drop --fp16 / --bf16.")
        self.args = args
        self.trackers = accelerate_trackers(args.report_to)
        self.accelerator = accelerator or Accelerator(
            cpu=args.use_cpu, log_with=self.trackers or None, project_dir=tracking_dir(args.output_dir)
        )
        self.maml = maml.to(self.accelerator.device)
        self.train_episodes, self.eval_episodes = train_episodes, eval_episodes
        self.meta_batch_size, self.num_eval_episodes = meta_batch_size, num_eval_episodes
        self.params = [p for p in self.maml.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=args.learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
            weight_decay=args.weight_decay,
        )
        self.scheduler = get_scheduler(
            args.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=args.get_warmup_steps(args.max_steps),
            num_training_steps=args.max_steps,
        )
        self.state: dict = {
            "global_step": 0,
            "best_metric": None,
            "best_step": None,
            "best_checkpoint": None,
            "log_history": [],
        }
        self._best_weights: Optional[dict[str, torch.Tensor]] = None
        self._sync_initial_weights()

    # ----------------------------------------------------------------------------------------------
    # Distribution

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def _sync_initial_weights(self) -> None:
        """Every process starts from rank 0's weights (random heads or LoRA initialisations could differ)."""
        if self.accelerator.num_processes > 1 and torch.distributed.is_initialized():
            with torch.no_grad():
                for tensor in self.maml.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)

    def _all_reduce_gradients(self) -> None:
        if self.accelerator.num_processes == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="sum")
        offset = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    # ----------------------------------------------------------------------------------------------
    # One outer update

    def meta_step(self, step: int) -> dict[str, float]:
        """Tasks step * B ... step * B + B - 1 (this process: every P-th), one optimizer step."""
        self.maml.train()
        self.optimizer.zero_grad(set_to_none=True)
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        loss_sum, acc_sum, count = 0.0, 0.0, 0
        for j in range(rank, self.meta_batch_size, world):
            task = self.train_episodes[step * self.meta_batch_size + j].to(self.device)
            out = self.maml(task.support, task.support_labels, task.query, task.query_labels)
            (out.loss / self.meta_batch_size).backward()  # frees this task's graph before the next task
            loss_sum, acc_sum, count = loss_sum + float(out.loss.detach()), acc_sum + out.accuracy, count + 1
        self._all_reduce_gradients()
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        stats = torch.tensor([loss_sum, acc_sum, count], dtype=torch.float64, device=self.device)
        if world > 1:
            stats = self.accelerator.reduce(stats, reduction="sum")
        return {"meta_loss": float(stats[0] / stats[2]), "meta_train_accuracy": float(stats[1] / stats[2])}

    # ----------------------------------------------------------------------------------------------
    # Meta-validation

    def evaluate(
        self,
        episodes: Optional[EpisodeDataset] = None,
        num_episodes: Optional[int] = None,
        desc: str = "Meta-validation",
    ) -> list[float]:
        """Per-episode query accuracies after adaptation (the same episodes 0..n-1 every time)."""
        episodes = episodes or self.eval_episodes
        indices = list(range(num_episodes or self.num_eval_episodes))
        self.maml.eval()
        local = indices[self.accelerator.process_index :: self.accelerator.num_processes]
        accuracies = episode_accuracies(
            self.maml,
            episodes,
            local,
            device=self.device,
            desc=desc,
            disable_tqdm=self.args.disable_tqdm or not self.accelerator.is_main_process,
        )
        return self._gather(local, accuracies)

    def _gather(self, local: list[int], values: list) -> list:
        from accelerate.utils import gather_object

        if self.accelerator.num_processes == 1:
            return values
        gathered = dict(gather_object(list(zip(local, values))))
        return [gathered[i] for i in sorted(gathered)]

    def meta_test(
        self,
        test_episodes: EpisodeDataset,
        num_episodes: int,
        baseline: Optional[MAML] = None,
        probe_l2_grid: Optional[list[float]] = None,
        probe_max_iter: int = 100,
        num_probe_selection_episodes: Optional[int] = None,
    ) -> dict:
        """Meta-test accuracy (mean and 95% interval over `num_episodes` episodes) of the meta-learned model
        and, on the very same episodes, of two baselines from the non-meta-learned weights in `baseline`:
        `finetune` (the same inner loop: steps, learning rate, adapted parameters) and `probe` (a linear probe
        fitted on the support set's frozen head-input features, its L2 strength chosen on meta-validation
        episodes). Also paired differences (MAML minus baseline, per episode) with their intervals.
        """
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        disable = self.args.disable_tqdm or not self.accelerator.is_main_process
        indices = list(range(num_episodes))
        local = indices[rank::world]
        start = time.time()
        self.maml.eval()
        maml_results = episode_results(
            self.maml, test_episodes, local, device=self.device, desc="Meta-test: MAML", disable_tqdm=disable
        )
        per_episode = {"maml": self._gather(local, [r.accuracy for r in maml_results])}
        query_losses = self._gather(local, [r.query_loss for r in maml_results])
        results: dict = {"meta_test_query_loss": float(np.mean(query_losses))}
        if baseline is not None:
            baseline.to(self.device).eval()
            per_episode["finetune"] = self._gather(
                local,
                episode_accuracies(
                    baseline,
                    test_episodes,
                    local,
                    device=self.device,
                    desc="Meta-test: fine-tune baseline",
                    disable_tqdm=disable,
                ),
            )
            if probe_l2_grid:
                val_indices = list(range(num_probe_selection_episodes or self.num_eval_episodes))
                val_local = val_indices[rank::world]
                sweep = probe_accuracies(
                    baseline,
                    self.eval_episodes,
                    val_local,
                    probe_l2_grid,
                    max_iter=probe_max_iter,
                    device=self.device,
                    desc="Probe L2 on meta-validation",
                    disable_tqdm=disable,
                )
                scores = {l2: mean_confidence_interval(self._gather(val_local, accs))[0] for l2, accs in sweep.items()}
                l2 = max(scores, key=lambda k: (scores[k], k))  # ties: the stronger regulariser
                logger.info(f"Probe L2 chosen on meta-validation: {l2:g} (accuracy {scores[l2]:.4f}; sweep {scores})")
                results["probe_l2"] = l2
                per_episode["probe"] = self._gather(
                    local,
                    probe_accuracies(
                        baseline,
                        test_episodes,
                        local,
                        [l2],
                        max_iter=probe_max_iter,
                        device=self.device,
                        desc="Meta-test: probe baseline",
                        disable_tqdm=disable,
                    )[l2],
                )
        for method, accuracies in per_episode.items():
            mean, ci = mean_confidence_interval(accuracies)
            prefix = "meta_test" if method == "maml" else f"{method}_baseline"
            results[f"{prefix}_accuracy"], results[f"{prefix}_ci95"] = mean, ci
            if method != "maml":
                diff = [a - b for a, b in zip(per_episode["maml"], accuracies)]
                results[f"maml_minus_{method}"], results[f"maml_minus_{method}_ci95"] = mean_confidence_interval(diff)
        results["num_episodes"] = num_episodes
        results["meta_test_runtime"] = time.time() - start
        results["per_episode_accuracy"] = per_episode
        results["per_episode_query_loss"] = {"maml": query_losses}
        return results

    # ----------------------------------------------------------------------------------------------
    # Checkpoints

    def _checkpoint_dir(self, step: int) -> Path:
        return Path(self.args.output_dir) / f"checkpoint-{step}"

    def _save_checkpoint(self, step: int) -> None:
        if self.args.save_strategy == "no":
            return
        path = self._checkpoint_dir(step)
        if self.args.should_save:

            def write(tmp: str) -> None:
                save_model(self.maml, os.path.join(tmp, _WEIGHTS_NAME))
                torch.save(self.optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
                torch.save(self.scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
                torch.save({"torch": torch.get_rng_state()}, os.path.join(tmp, "rng_state.pt"))

            publish_directory(path, write)
            write_json_atomic(path / TRAINER_STATE_NAME, self.state)  # last: marks the checkpoint complete
            self._rotate_checkpoints()
        self.accelerator.wait_for_everyone()

    def _rotate_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        root = Path(self.args.output_dir)
        steps = sorted(int(p.name.split("-")[1]) for p in root.glob("checkpoint-*") if p.name.split("-")[1].isdigit())
        keep = set(steps[-limit:]) | ({self.state["best_step"]} if self.state["best_step"] is not None else set())
        for step in steps:
            if step not in keep:
                shutil.rmtree(root / f"checkpoint-{step}", ignore_errors=True)

    def _load_checkpoint(self, path: str | os.PathLike) -> None:
        import json

        path = Path(path)
        load_model(self.maml, str(path / _WEIGHTS_NAME), device="cpu")  # copied into the parameters' devices
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng = torch.load(path / "rng_state.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        self.state = json.loads((path / TRAINER_STATE_NAME).read_text())

    def load_best(self) -> None:
        """Put the best meta-validation weights back into the wrapper."""
        if self._best_weights is not None:
            self.maml.load_state_dict(self._best_weights)
        elif self.state.get("best_checkpoint"):
            load_model(self.maml, os.path.join(self.state["best_checkpoint"], _WEIGHTS_NAME), device="cpu")
        else:
            return
        logger.info(
            f"Restored the best meta-validation weights (step {self.state['best_step']}, "
            f"accuracy {self.state['best_metric']:.4f})"
        )

    # ----------------------------------------------------------------------------------------------
    # The loop

    def _tracked_settings(self) -> dict:
        """The outer and inner loop's settings, as the trackers' run configuration."""
        config = self.maml.config
        return {
            "inner_steps": config.inner_steps,
            "eval_inner_steps": config.eval_inner_steps or config.inner_steps,
            "inner_lr": config.inner_lr,
            "first_order": config.first_order,
            "learn_inner_lr": config.learn_inner_lr,
            "meta_batch_size": self.meta_batch_size,
            "learning_rate": self.args.learning_rate,
            "max_steps": self.args.max_steps,
        }

    def _track(self, values: dict[str, float], step: int) -> None:
        if self.trackers:
            self.accelerator.log(values, step=step)

    def _validate(self, step: int) -> float:
        mean, ci = mean_confidence_interval(self.evaluate())
        entry = {"step": step, "meta_validation_accuracy": mean, "meta_validation_ci95": ci}
        self.state["log_history"].append(entry)
        self._track({"meta_validation/accuracy": mean, "meta_validation/ci95": ci}, step)
        logger.info(f"step {step}: meta-validation accuracy {mean:.4f} ± {ci:.4f}")
        return mean

    def train(self, resume_from_checkpoint: Optional[str] = None) -> dict:
        """Meta-train for `max_steps` outer updates; returns the training metrics. Restores the best weights."""
        args = self.args
        if self.trackers:
            self.accelerator.init_trackers(args.run_name or "maml", config=self._tracked_settings())
        if resume_from_checkpoint:
            self._load_checkpoint(resume_from_checkpoint)
            logger.info(
                f"Resuming meta-training from {resume_from_checkpoint} at meta-iteration {self.state['global_step']}"
            )
        elif "meta_validation_accuracy_at_init" not in self.state:
            self.state["meta_validation_accuracy_at_init"] = self._validate(0)
        save_every = max(1, args.save_steps if args.save_steps and args.save_steps >= 1 else args.max_steps)
        start_step, start = self.state["global_step"], time.time()
        runtime_before = float(self.state.get("meta_train_runtime", 0.0))  # earlier sessions of a resumed run
        if resume_from_checkpoint and start_step >= args.max_steps:
            logger.warning(
                f"The run in this --output_dir had already finished (meta-iteration {start_step}): nothing "
                "was trained now. Raise --max_steps to train further."
            )
        progress = tqdm(
            total=args.max_steps,
            initial=start_step,
            desc="Meta-training",
            unit="it",
            disable=args.disable_tqdm or not self.accelerator.is_main_process,
        )
        running: list[dict[str, float]] = []
        for step in range(start_step, args.max_steps):
            metrics = self.meta_step(step)
            running.append(metrics)
            self.state["global_step"] = step + 1
            progress.update(1)
            progress.set_postfix(loss=f"{metrics['meta_loss']:.3f}", acc=f"{metrics['meta_train_accuracy']:.3f}")
            if (step + 1) % max(1, int(args.logging_steps)) == 0 or step + 1 == args.max_steps:
                entry = {
                    "step": step + 1,
                    "learning_rate": self.scheduler.get_last_lr()[0],
                    **{k: sum(m[k] for m in running) / len(running) for k in running[0]},
                }
                self.state["log_history"].append(entry)
                tracked = {"meta_train/loss": entry["meta_loss"], "meta_train/accuracy": entry["meta_train_accuracy"]}
                self._track({**tracked, "meta_train/learning_rate": entry["learning_rate"]}, step + 1)
                logger.info(
                    f"step {step + 1}: meta-loss {entry['meta_loss']:.4f}, "
                    f"meta-train accuracy {entry['meta_train_accuracy']:.4f}"
                )
                running = []
            if (step + 1) % save_every == 0 or step + 1 == args.max_steps:
                accuracy = self._validate(step + 1)
                if self.state["best_metric"] is None or accuracy > self.state["best_metric"]:
                    self.state.update(best_metric=accuracy, best_step=step + 1)
                    if args.save_strategy == "no":
                        self._best_weights = {k: v.detach().clone() for k, v in self.maml.state_dict().items()}
                    else:
                        self.state["best_checkpoint"] = str(self._checkpoint_dir(step + 1))
                self.state["meta_train_runtime"] = runtime_before + time.time() - start
                self._save_checkpoint(step + 1)
        progress.close()
        if self.trackers:
            self.accelerator.end_training()
        self.load_best()
        return {
            # The whole run, across resumes: the time recorded with the last meta-iteration's checkpoint (what a resume
            # continues from), so every session adds its own steps and nothing else (saving, restoring the best).
            "meta_train_runtime": float(self.state.get("meta_train_runtime", runtime_before + time.time() - start)),
            **({"resumed_from_step": start_step} if resume_from_checkpoint else {}),
            "meta_iterations": self.state["global_step"],
            "best_meta_validation_accuracy": self.state["best_metric"],
            "best_step": self.state["best_step"],
            "meta_validation_accuracy_at_init": self.state.get("meta_validation_accuracy_at_init"),
        }
