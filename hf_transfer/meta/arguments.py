"""What the user sets for meta-learning: the inner loop (`MAMLConfig`) and the episodes (`EpisodeArguments`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional, get_args

from ..errors import ConfigError

__all__ = ["ADAPT_CHOICES", "MAMLConfig", "EpisodeArguments"]

AdaptChoice = Literal["all", "head", "lora", "lora_and_head"]
ADAPT_CHOICES: tuple[str, ...] = get_args(AdaptChoice)
_GRANULARITIES = ("element", "tensor")
_BATCH_NORM_MODES = ("batch", "running")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"--{name} {value!r} is not one of {', '.join(choices)}; pass one of them.")


@dataclass
class MAMLConfig:
    """How a task is adapted in the inner loop, and how its meta-gradient is taken.

    MAML (Finn et al. 2017, https://arxiv.org/abs/1703.03400) learns an initialisation theta0 such that
    `inner_steps` SGD steps on a task's support set give a low loss on its query set: the meta-loss is
    sum_i L_query_i(U(theta0, support_i)), differentiated through U (second order) or not (first order).

    Args:
        inner_steps (`int`, defaults to 5): SGD steps on the support set per task during meta-training.
        eval_inner_steps (`int`, *optional*): steps at meta-validation / meta-test time; default `inner_steps`.
        inner_lr (`float`, defaults to 0.01): inner SGD learning rate (and the start value of Meta-SGD's).
        first_order (`bool`, defaults to False): drop the second-order terms (FOMAML, Finn et al. 2017 sec. 5.2):
            the meta-gradient is the query gradient at the adapted weights. Cheaper, often nearly as good.
        adapt (`Literal["all", "head", "lora", "lora_and_head"]`, defaults to `"all"`): parameters changed by the
            inner loop. `all`: every trainable parameter (MAML). `head`: only the final classification layer
            (ANIL, Raghu et al. 2020, https://arxiv.org/abs/1909.09157); the body is still meta-trained by the outer
            loop. `lora`: only peft LoRA weights (names containing `lora_`): a meta-learned LoRA initialisation.
            `lora_and_head`: LoRA weights and the head. The LoRA choices need a peft model.
        learn_inner_lr (`bool`, defaults to False): Meta-SGD (Li et al. 2017, https://arxiv.org/abs/1707.09835):
            learn one inner learning rate per adapted weight (or per tensor) with the outer optimizer.
        inner_lr_granularity (`Literal["element", "tensor"]`, defaults to `"element"`): Meta-SGD learning rates per
            element (the paper's; doubles the adapted parameters) or one per tensor.
        batch_norm (`Literal["batch", "running"]`, defaults to `"batch"`): batch-norm layers in episodes. `batch`:
            normalise with the statistics of the batch at hand (the support batch in inner steps, the query batch for
            the query loss), as in Finn et al.'s code; running statistics are never updated by episodes. `running`:
            eval-mode batch norm with the frozen (pretrained) running statistics: no dependence between examples.
        dropout (`bool`, defaults to False): keep dropout (and stochastic depth) active in episodes. Off by default:
            a 5-example inner loop is noisy enough, and deterministic adaptation makes meta-gradients exact.
        head_module (`str`, *optional*): module path of the final classification layer, for `adapt` = `head` or
            `lora_and_head`. Default: found by `hf_transfer.models.get_classifier_name` (`classifier`, ...).
    """

    inner_steps: int = field(
        default=5, metadata={"help": "Inner-loop SGD steps on each task's support set during meta-training (>= 1)."}
    )
    eval_inner_steps: Optional[int] = field(
        default=None,
        metadata={"help": "Inner-loop steps at meta-validation and meta-test time (>= 1). Default: --inner_steps."},
    )
    inner_lr: float = field(
        default=0.01,
        metadata={
            "help": "Inner-loop SGD learning rate (> 0); with --learn_inner_lr, the start value of the learned "
            "rates. Default 0.01."
        },
    )
    first_order: bool = field(
        default=False,
        metadata={
            "help": "First-order MAML (FOMAML): no gradient through the inner-loop gradients. Cheaper in time "
            "and memory. Default: second order (exact MAML)."
        },
    )
    adapt: AdaptChoice = field(
        default="all",
        metadata={
            "help": "Parameters adapted in the inner loop: all (MAML; every trainable parameter), head (ANIL: "
            "the final classification layer only), lora (only peft LoRA weights), lora_and_head. The body is "
            "meta-trained by the outer loop in every case."
        },
    )
    learn_inner_lr: bool = field(
        default=False,
        metadata={
            "help": "Meta-SGD: learn the inner learning rates (initialised to --inner_lr) with the outer "
            "optimizer. https://arxiv.org/abs/1707.09835"
        },
    )
    inner_lr_granularity: Literal["element", "tensor"] = field(
        default="element",
        metadata={
            "help": "Meta-SGD learning rates: element (one per adapted weight, as in the paper) or tensor (one "
            "per parameter tensor). Only with --learn_inner_lr."
        },
    )
    batch_norm: Literal["batch", "running"] = field(
        default="batch",
        metadata={
            "help": "Batch norm in episodes: batch (statistics of the support / query batch at hand, running "
            "statistics never updated; Finn et al.'s protocol) or running (eval mode, frozen pretrained "
            "statistics; no dependence between examples). Models without batch norm ignore it."
        },
    )
    dropout: bool = field(
        default=False,
        metadata={
            "help": "Keep dropout / stochastic depth active in episodes. Default off: deterministic inner loops "
            "and exact meta-gradients."
        },
    )
    head_module: Optional[str] = field(
        default=None,
        metadata={
            "help": "Module path of the final classification Linear (for --adapt head / lora_and_head), e.g. "
            "'classifier'. Default: found automatically for transformers and timm models."
        },
    )

    def __post_init__(self) -> None:
        _check_choice("adapt", self.adapt, ADAPT_CHOICES)
        _check_choice("inner_lr_granularity", self.inner_lr_granularity, _GRANULARITIES)
        _check_choice("batch_norm", self.batch_norm, _BATCH_NORM_MODES)
        if isinstance(self.inner_steps, bool) or not isinstance(self.inner_steps, int) or self.inner_steps < 1:
            raise ConfigError(
                f"--inner_steps must be a positive integer; got {self.inner_steps!r}. MAML needs at least one "
                "inner step (use 1 to 10)."
            )
        if self.eval_inner_steps is not None and (
            isinstance(self.eval_inner_steps, bool)
            or not isinstance(self.eval_inner_steps, int)
            or self.eval_inner_steps < 1
        ):
            raise ConfigError(
                f"--eval_inner_steps must be a positive integer; got {self.eval_inner_steps!r}. Omit it to use "
                "--inner_steps."
            )
        if not self.inner_lr > 0:
            raise ConfigError(f"--inner_lr must be positive; got {self.inner_lr}. Typical values: 0.001 to 0.5.")
        if self.learn_inner_lr and self.first_order:
            warnings.warn(
                "--learn_inner_lr with --first_order: the learned rates get first-order gradients only "
                "(d loss / d lr = -g_support . g_query); this works but drops Meta-SGD's second-order terms.",
                stacklevel=2,
            )

    @property
    def num_eval_inner_steps(self) -> int:
        return self.eval_inner_steps or self.inner_steps


@dataclass
class EpisodeArguments:
    """N-way K-shot episodes, class splits and meta-batches.

    Classes are split into disjoint meta-train / meta-validation / meta-test sets; each episode draws
    `n_way` classes of its split, `k_shot` support and `q_queries` query examples of each, and relabels
    the classes 0..n_way-1 in a random order.

    Args:
        n_way (`int`, defaults to 5): classes per episode (the head has this many outputs).
        k_shot (`int`, defaults to 1): support examples per class.
        q_queries (`int`, defaults to 15): query examples per class.
        meta_train_classes, meta_validation_classes, meta_test_classes (`list[str]`, *optional*): class names of
            each split. Given any of them, classes not named are unused; no validation classes means
            meta-validation uses held-out rows of the meta-train classes (`meta_validation_fraction`).
        class_split (`list[int]`, *optional*): sizes (train, validation, test) of a seeded random class split;
            validation may be 0. Default when no names are given: validation = test = max(n_way, classes // 4).
        meta_validation_fraction (`float`, defaults to 0.2): share of the meta-train classes' rows held out for
            meta-validation when there are no meta-validation classes.
        max_samples_per_class (`int`, *optional*): keep a seeded subset of this many rows per class (faster
            meta-test feature extraction on large data sets). Default: all rows.
        episode_seed (`int`, defaults to 0): seed of the class split and of every episode; episode i of a split is
            the same in every run, process count and resume.
        meta_batch_size (`int`, defaults to 4): tasks per outer update, split across processes.
        num_validation_episodes (`int`, defaults to 100): meta-validation episodes (the same ones at every check).
        num_test_episodes (`int`, defaults to 600): meta-test episodes, for the mean and its 95% interval.
    """

    n_way: int = field(default=5, metadata={"help": "Classes per episode (N); the head has N outputs. Default 5."})
    k_shot: int = field(default=1, metadata={"help": "Support examples per class (K). Default 1."})
    q_queries: int = field(default=15, metadata={"help": "Query examples per class (Q). Default 15."})
    meta_train_classes: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Class names used for meta-training. With any of the --meta_*_classes flags, classes not "
            "named are unused. Default: a seeded random split (see --class_split)."
        },
    )
    meta_validation_classes: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Class names for meta-validation (checkpoint choice). When no split has validation classes, "
            "held-out rows of the meta-train classes are used (--meta_validation_fraction)."
        },
    )
    meta_test_classes: Optional[list[str]] = field(
        default=None, metadata={"help": "Class names for meta-test episodes (never seen in meta-training)."}
    )
    class_split: Optional[list[int]] = field(
        default=None,
        metadata={
            "help": "Sizes 'TRAIN VALIDATION TEST' of a seeded random class split (VALIDATION may be 0). "
            "Default: validation = test = max(n_way, classes // 4), the rest meta-train."
        },
    )
    meta_validation_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Share (0 < f < 1) of the meta-train classes' rows held out for meta-validation when "
            "there are no meta-validation classes. Default 0.2."
        },
    )
    max_samples_per_class: Optional[int] = field(
        default=None,
        metadata={"help": "Keep a seeded subset of this many rows of every class (positive). Default: all rows."},
    )
    episode_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the class split and of the episodes: episode i of a split is the same in every "
            "run, whatever the number of processes. Default 0."
        },
    )
    meta_batch_size: int = field(
        default=4, metadata={"help": "Tasks per outer (meta) update, split across processes. Default 4."}
    )
    num_validation_episodes: int = field(
        default=100,
        metadata={"help": "Meta-validation episodes scored at every checkpoint (the same episodes each time)."},
    )
    num_test_episodes: int = field(
        default=600,
        metadata={
            "help": "Meta-test episodes (default 600, the usual protocol); the mean and a 95%% confidence "
            "interval over them are reported."
        },
    )

    def __post_init__(self) -> None:
        for name in ("n_way", "k_shot", "q_queries", "meta_batch_size", "num_validation_episodes", "num_test_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name} must be a positive integer; got {value!r}.")
        if self.n_way < 2:
            raise ConfigError(f"--n_way must be at least 2 (a classifier needs two classes); got {self.n_way}.")
        if self.class_split is not None:
            if len(self.class_split) != 3 or any(s < 0 for s in self.class_split):
                raise ConfigError(
                    f"--class_split takes three non-negative sizes 'TRAIN VALIDATION TEST'; got {self.class_split}. "
                    "Example: --class_split 4 3 3."
                )
            if any((self.meta_train_classes, self.meta_validation_classes, self.meta_test_classes)):
                raise ConfigError(
                    "Pass either --class_split or the --meta_*_classes names, not both: the names already fix the "
                    "split."
                )
        if not 0.0 < self.meta_validation_fraction < 1.0:
            raise ConfigError(
                f"--meta_validation_fraction must be strictly between 0 and 1; got {self.meta_validation_fraction}."
            )
        if self.max_samples_per_class is not None and self.max_samples_per_class < self.k_shot + self.q_queries:
            raise ConfigError(
                f"--max_samples_per_class {self.max_samples_per_class} is below K + Q = {self.k_shot} + "
                f"{self.q_queries}: no episode could be drawn. Raise it or omit it."
            )
