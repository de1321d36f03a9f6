"""`MAMLTrainer`: the outer loop of MAML, on one or several processes through `accelerate`.

Each meta-iteration takes the next `meta_batch_size` episodes (episode ids step * B .. step * B + B - 1,
so the task sequence does not depend on the process count). Process p handles tasks p, p + P, ...;
each task's query loss, divided by B, is back-propagated right away (one task's graph alive at a time);
the summed gradients are then all-reduced across processes, so every process takes the same optimizer
step as a single process would. Meta-validation runs on a fixed set of episodes at every checkpoint;
the best checkpoint by meta-validation accuracy is restored at the end.

Checkpoints (`checkpoint-N/`, through `Accelerator.save_state`) are `checkpoints.py`'s; metrics go to accelerate's
trackers (`tracking.py`).

`TrainingArguments` flags honoured: `output_dir`, `learning_rate`, `weight_decay`, `adam_beta1/2`,
`adam_epsilon`, `max_grad_norm`, `max_steps` (meta-iterations), `lr_scheduler_type`, `warmup_steps`,
`logging_steps`, `save_steps` (checkpoint and meta-validation interval), `save_strategy` (`no`: keep the
best weights in memory only), `save_total_limit`, `seed`, `disable_tqdm`, `use_cpu`.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import TrainingArguments, get_scheduler

from ..errors import ConfigError
from .checkpoints import checkpoint_dir, load_checkpoint, load_checkpoint_weights, save_checkpoint
from .episodes import EpisodeDataset
from .evaluation import episode_accuracies, episode_results, mean_confidence_interval, probe_accuracies
from .model import MAML
from .tracking import accelerate_trackers, finish_trackers, tracked_settings, tracking_dir

__all__ = ["MAMLTrainer"]

logger = logging.getLogger(__name__)


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
        # Checkpointed by their state dicts, not prepared: see checkpoints.py.
        self._stateful = {"optimizer": self.optimizer, "scheduler": self.scheduler}
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
        self.maml.eval()
        local = self._local_episodes(num_episodes or self.num_eval_episodes)
        accuracies = episode_accuracies(
            self.maml, episodes or self.eval_episodes, local, device=self.device, desc=desc, disable_tqdm=self._quiet
        )
        return gather_object(accuracies)

    def _local_episodes(self, num_episodes: int) -> list[int]:
        """This process's share of episodes 0..n-1, a contiguous one: `gather_object` of per-episode results (every
        process's list, in process order) is then in episode order."""
        with self.accelerator.split_between_processes(list(range(num_episodes))) as local:
            return local

    @property
    def _quiet(self) -> bool:
        """No progress bars: `--disable_tqdm`, or not the main process."""
        return self.args.disable_tqdm or not self.accelerator.is_main_process

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
        start = time.time()
        self.maml.eval()
        on_device = dict(device=self.device, disable_tqdm=self._quiet)
        local = self._local_episodes(num_episodes)
        maml_results = episode_results(self.maml, test_episodes, local, desc="Meta-test: MAML", **on_device)
        per_episode = {"maml": gather_object([r.accuracy for r in maml_results])}
        query_losses = gather_object([r.query_loss for r in maml_results])
        results: dict = {"meta_test_query_loss": float(np.mean(query_losses))}
        if baseline is not None:
            baseline.to(self.device).eval()
            per_episode["finetune"] = gather_object(
                episode_accuracies(baseline, test_episodes, local, desc="Meta-test: fine-tune baseline", **on_device)
            )
        if baseline is not None and probe_l2_grid:
            sweep = probe_accuracies(
                baseline,
                self.eval_episodes,
                self._local_episodes(num_probe_selection_episodes or self.num_eval_episodes),
                probe_l2_grid,
                max_iter=probe_max_iter,
                desc="Probe L2 on meta-validation",
                **on_device,
            )
            scores = {l2: mean_confidence_interval(gather_object(accs))[0] for l2, accs in sweep.items()}
            l2 = max(scores, key=lambda k: (scores[k], k))  # ties: the stronger regulariser
            logger.info(f"Probe L2 chosen on meta-validation: {l2:g} (accuracy {scores[l2]:.4f}; sweep {scores})")
            results["probe_l2"] = l2
            probe = probe_accuracies(
                baseline,
                test_episodes,
                local,
                [l2],
                max_iter=probe_max_iter,
                desc="Meta-test: probe baseline",
                **on_device,
            )
            per_episode["probe"] = gather_object(probe[l2])
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

    def load_best(self) -> None:
        """Put the best meta-validation weights back into the wrapper."""
        if self._best_weights is not None:
            self.maml.load_state_dict(self._best_weights)
        elif self.state.get("best_checkpoint"):
            load_checkpoint_weights(self.maml, self.state["best_checkpoint"])
        else:
            return
        logger.info(
            f"Restored the best meta-validation weights (step {self.state['best_step']}, "
            f"accuracy {self.state['best_metric']:.4f})"
        )

    # ----------------------------------------------------------------------------------------------
    # The loop

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
            settings = tracked_settings(self.maml.config, self.meta_batch_size, args)
            self.accelerator.init_trackers(args.run_name or "maml", config=settings)
        if resume_from_checkpoint:
            self.state = load_checkpoint(self.accelerator, self.maml, resume_from_checkpoint, self._stateful)
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
                        self.state["best_checkpoint"] = str(checkpoint_dir(args.output_dir, step + 1))
                self.state["meta_train_runtime"] = runtime_before + time.time() - start
                if args.save_strategy != "no":
                    save_checkpoint(
                        self.accelerator,
                        self.maml,
                        args.output_dir,
                        step + 1,
                        self.state,
                        args.save_total_limit,
                        self._stateful,
                    )
        progress.close()
        if self.trackers:
            finish_trackers(self.accelerator)
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
