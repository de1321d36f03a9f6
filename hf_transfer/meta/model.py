"""`MAML`: model-agnostic meta-learning around any `nn.Module` (transformers, timm, peft LoRA models).

The inner loop is functional: the adapted ("fast") weights are a dict of tensors passed to
`torch.func.functional_call`, so no module is ever copied per task and the meta-gradient reaches the
module's own parameters (and Meta-SGD's learning rates) through ordinary autograd.

Tasks are processed one at a time: `forward` returns one task's query loss and the caller calls
`backward()` on it before the next task, so only one task's unrolled graph is alive at a time. A
batched `torch.func.vmap` over tasks was not used: on a BatchNorm network it has been seen to give
wrong second-order meta-gradients, and on CPU it needed several times the memory of this loop.
`tests/test_meta.py` checks this loop against explicit `torch.autograd.grad(..., create_graph=True)`
unrolling, with and without BatchNorm, to 1e-5 in float64.

Batch norm and dropout in episodes (`MAMLConfig.batch_norm`, `MAMLConfig.dropout`), whatever mode the
module was in (it is restored afterwards):
- `batch_norm="batch"`: BN layers normalise with the statistics of the batch they see: the support
  batch in every inner step, the query batch for the query loss (Finn et al.'s transductive protocol,
  and the only choice for a network trained from scratch). Running statistics are never updated by
  episodes (BN runs with `track_running_stats` off), so inner steps leave no trace in buffers and the
  meta-gradient depends on the weights only.
- `batch_norm="running"`: BN in eval mode with the frozen running statistics, i.e. a fixed affine map
  per channel; each example is processed independently (no transduction), the pretrained statistics
  of a backbone are kept.
- dropout (and timm's stochastic depth) is off unless `dropout=True`, so the inner loop is
  deterministic and the meta-gradient exact.
- second order: `scaled_dot_product_attention` runs its math kernel inside episodes, because the fused
  CPU / CUDA kernels have no double backward.

ANIL (`adapt="head"`) takes a fast path: the body runs once on the support set and once on the query
set, and the inner loop works on the head's input features (the generic path would re-run the unchanged
body every inner step). Both give the same numbers; the first call checks that the head's output is the
model's logits and falls back to the generic path otherwise.

References:
    Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks".
    Li, Zhou, Chen, Li 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning".
    Raghu, Raghu, Bengio, Vinyals 2020, "Rapid Learning or Feature Reuse? Towards Understanding the
    Effectiveness of MAML" (ANIL).
    Antoniou, Edwards, Storkey 2019, "How to train your MAML" (batch-norm pitfalls).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import ConfigError
from .config import MAMLConfig

__all__ = ["MAML", "MAMLOutput", "zero_init_head", "INNER_LRS_NAME", "MAML_CONFIG_NAME"]

logger = logging.getLogger(__name__)

INNER_LRS_NAME = "meta_sgd_inner_lrs.safetensors"
MAML_CONFIG_NAME = "maml_config.json"
LORA_PREFIX = "lora_"


@dataclass
class MAMLOutput:
    """One task: the query loss at the adapted weights (differentiable w.r.t. theta0 when grad is on),
    the query logits (N * Q, N), and the query accuracy."""

    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: float


def _logits_of(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is not None:
        return logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}.")


def zero_init_head(model: nn.Module, head_module: Optional[str] = None) -> nn.Linear:
    """Set the final classification layer to zero, so every episode starts with uniform predictions.

    With labels re-shuffled in every episode, a random head starts each task with arbitrary class
    preferences that the inner loop must first undo; a zero head does not (Triantafillou et al. 2020,
    "Meta-Dataset", sec. 3; Kao et al. 2022, "MAML is a noisy contrastive learner").
    """
    from ..models import get_classifier_name

    head = model.get_submodule(head_module or get_classifier_name(model))
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return head


class MAML(nn.Module):
    """Wrap a classification model for MAML / FOMAML / ANIL / Meta-SGD / meta-learned LoRA.

    The wrapped model maps keyword inputs (`input_ids`, `pixel_values`, ...) to logits (a tensor, or an
    output with `.logits`). The outer loop is any optimizer over `maml.parameters()` (the model's trainable
    weights plus, with Meta-SGD, the inner learning rates): call `maml(...)` per task, `backward()` its
    loss, then step.

    Args:
        model: the classifier; its trainable parameters (`requires_grad`) are theta0.
        config: the inner-loop settings (`MAMLConfig`).

    Raises:
        ConfigError: `adapt` selects no parameter (e.g. `lora` on a model without LoRA layers), or the
            head cannot be found for `head` / `lora_and_head`.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> maml = MAML(model, MAMLConfig(inner_steps=2, inner_lr=0.1))
        >>> optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
        >>> out = maml({"input": torch.randn(4, 4)}, torch.tensor([0, 0, 1, 1]),
        ...            {"input": torch.randn(6, 4)}, torch.tensor([0, 0, 0, 1, 1, 1]))
        >>> out.loss.backward(); optimizer.step()
    """

    def __init__(self, model: nn.Module, config: Optional[MAMLConfig] = None):
        super().__init__()
        self.model = model
        self.config = config or MAMLConfig()
        named = dict(model.named_parameters())
        self.head_name: Optional[str] = None
        if self.config.adapt in ("head", "lora_and_head") or self.config.head_module is not None:
            self.head_name = self._resolve_head_name()
        self.adapted_names: tuple[str, ...] = self._select_adapted(named)
        if self.config.learn_inner_lr:
            per_element = self.config.inner_lr_granularity == "element"
            self.inner_lrs: Optional[nn.ParameterList] = nn.ParameterList(
                nn.Parameter(
                    torch.full(
                        named[n].shape if per_element else (),
                        self.config.inner_lr,
                        dtype=named[n].dtype,
                        device=named[n].device,
                    )
                )
                for n in self.adapted_names
            )
        else:
            self.inner_lrs = None
        self._feature_path_checked = False
        self._feature_path_ok = self.config.adapt == "head"
        logger.info(
            "MAML: %d parameter tensors adapted in the inner loop (%s, %s order%s), %d meta-trained",
            len(self.adapted_names),
            self.config.adapt,
            "first" if self.config.first_order else "second",
            ", Meta-SGD" if self.inner_lrs is not None else "",
            sum(1 for p in self.parameters() if p.requires_grad),
        )

    # ----------------------------------------------------------------------------------------------
    # Which parameters adapt

    def _resolve_head_name(self) -> str:
        from ..models import get_classifier_name

        name = self.config.head_module
        try:
            head = self.model.get_submodule(name) if name else self.model.get_submodule(get_classifier_name(self.model))
        except Exception as err:
            raise ConfigError(
                f"Cannot find the classification head of {type(self.model).__name__}"
                + (f" at --head_module {name!r}" if name else "")
                + f" ({err}). Pass --head_module with the module path of its final nn.Linear."
            ) from err
        if not isinstance(head, nn.Linear):
            raise ConfigError(
                f"--head_module {name!r} is a {type(head).__name__}, not the final nn.Linear; pass the path of "
                "the Linear layer that outputs the logits."
            )
        # The path relative to this model (peft wrappers forward attribute lookups to the base model).
        for full_name, module in self.model.named_modules():
            if module is head:
                return full_name
        raise ConfigError(f"The head {name!r} is not a submodule of {type(self.model).__name__}.")

    def _head_param_names(self) -> list[str]:
        assert self.head_name is not None
        head = self.model.get_submodule(self.head_name)
        return [f"{self.head_name}.{n}" for n, _ in head.named_parameters()]

    def _select_adapted(self, named: Mapping[str, nn.Parameter]) -> tuple[str, ...]:
        adapt = self.config.adapt
        trainable = [n for n, p in named.items() if p.requires_grad]
        head = set(self._head_param_names()) if self.head_name is not None else set()
        if adapt == "all":
            chosen = trainable
        elif adapt == "head":
            chosen = [n for n in trainable if n in head]
        elif adapt == "lora":
            chosen = [n for n in trainable if LORA_PREFIX in n]
        else:
            chosen = [n for n in trainable if LORA_PREFIX in n or n in head]
        if adapt in ("lora", "lora_and_head") and not any(LORA_PREFIX in n for n in chosen):
            raise ConfigError(
                f"--adapt {adapt} found no trainable LoRA parameter (names containing '{LORA_PREFIX}') in "
                f"{type(self.model).__name__}. Wrap the model with peft first "
                "(hf_transfer.finetuning.create_lora_model or peft.get_peft_model), or use --adapt all / head."
            )
        if not chosen:
            frozen = f" The head parameters {sorted(head)} are frozen (requires_grad=False)." if head else ""
            raise ConfigError(
                f"--adapt {adapt} selects no trainable parameter of {type(self.model).__name__}.{frozen} "
                "Unfreeze them or choose another --adapt."
            )
        return tuple(chosen)

    def meta_parameters(self) -> dict[str, nn.Parameter]:
        """theta0: the model's trainable parameters by name (what the outer optimizer updates, with the lrs)."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def inner_lr(self, index: int) -> torch.Tensor | float:
        return self.config.inner_lr if self.inner_lrs is None else self.inner_lrs[index]

    def named_inner_lrs(self) -> dict[str, torch.Tensor]:
        """Meta-SGD's learned learning rates by parameter name (empty without `learn_inner_lr`)."""
        if self.inner_lrs is None:
            return {}
        return {n: lr for n, lr in zip(self.adapted_names, self.inner_lrs)}

    # ----------------------------------------------------------------------------------------------
    # Episode mode: batch norm and dropout

    @property
    def has_batch_norm(self) -> bool:
        return any(isinstance(m, _BatchNorm) for m in self.model.modules())

    @property
    def examples_are_independent(self) -> bool:
        """True when, in episodes, each example's output depends on that example only (no batch statistics)."""
        return not self.config.dropout and (self.config.batch_norm == "running" or not self.has_batch_norm)

    @contextlib.contextmanager
    def episode_mode(self) -> Iterator[None]:
        """Dropout off (unless `dropout`), batch norm per `batch_norm` with running statistics untouched."""
        modes = [(m, m.training) for m in self.model.modules()]
        tracking = [(m, m.track_running_stats) for m in self.model.modules() if isinstance(m, _BatchNorm)]
        self.model.train(self.config.dropout)
        batch_stats = self.config.batch_norm == "batch"
        for m, _ in tracking:
            m.train(batch_stats)
            if batch_stats:
                m.track_running_stats = False  # batch statistics, running buffers neither read nor updated
        with contextlib.ExitStack() as stack:
            if not self.config.first_order:
                # Fused attention kernels (flash / memory-efficient) have no double backward; the math kernel
                # is made of differentiable ops, so second-order meta-gradients go through attention too.
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            try:
                yield
            finally:
                for m, mode in modes:
                    m.training = mode
                for m, track in tracking:
                    m.track_running_stats = track

    # ----------------------------------------------------------------------------------------------
    # Functional forward and the inner loop

    def functional_forward(
        self, params: Mapping[str, torch.Tensor], inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits of the model with `params` in place of its own (others: the module's current ones)."""
        return _logits_of(functional_call(self.model, dict(params), args=(), kwargs=dict(inputs)))

    def _sgd_step(
        self, fast: dict[str, torch.Tensor], grads: tuple[Optional[torch.Tensor], ...], track: bool
    ) -> dict[str, torch.Tensor]:
        """w - lr * g for every fast weight, as one fused (`_foreach`) update: one dispatch, not two per tensor."""
        names = [n for n, g in zip(fast, grads) if g is not None]  # None: the weight does not reach the loss
        if not names:
            return fast
        weights = [fast[n] for n in names]
        steps = [g for g in grads if g is not None]
        index = {n: i for i, n in enumerate(fast)}
        with contextlib.nullcontext() if track else torch.no_grad():
            if self.inner_lrs is None:
                updated = torch._foreach_add(weights, steps, alpha=-self.config.inner_lr)
            else:  # Meta-SGD: per-weight rates; first order keeps the graph to the rates (and theta0)
                lrs = [self.inner_lrs[index[n]] if track else self.inner_lrs[index[n]].detach() for n in names]
                updated = torch._foreach_sub(weights, torch._foreach_mul(steps, lrs))
        return {**fast, **dict(zip(names, updated))}

    def _inner_loop(self, fast: dict[str, torch.Tensor], loss_fn, steps: int) -> dict[str, torch.Tensor]:
        track = torch.is_grad_enabled()
        create_graph = track and not self.config.first_order
        with torch.enable_grad():
            for _ in range(steps):
                if not track:
                    fast = {n: w.detach().requires_grad_(True) for n, w in fast.items()}
                loss = loss_fn(fast)
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph, allow_unused=True)
                fast = self._sgd_step(fast, grads, track)
        return fast if track else {n: w.detach() for n, w in fast.items()}

    def _num_steps(self, steps: Optional[int]) -> int:
        if steps is not None:
            return steps
        return self.config.inner_steps if self.training else self.config.num_eval_inner_steps

    def adapt(
        self, inputs: Mapping[str, torch.Tensor], labels: torch.Tensor, steps: Optional[int] = None
    ) -> dict[str, torch.Tensor]:
        """Fast weights after `steps` inner SGD steps on (inputs, labels), by parameter name.

        With grad enabled the result is a differentiable function of theta0 (second order, or first order
        with `first_order`); under `torch.no_grad()` the inner gradients are still taken but the returned
        weights are detached (evaluation: no graph kept). Call inside `episode_mode()`.
        """
        theta = self.meta_parameters()
        fast = {n: theta[n] for n in self.adapted_names}

        def support_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(self.functional_forward(params, inputs), labels)

        return self._inner_loop(fast, support_loss, self._num_steps(steps))

    # ----------------------------------------------------------------------------------------------
    # ANIL fast path: inner loop on the head's input features

    def head_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The head's input features (B, D) at theta0, and (first call) a check that head(features) = logits."""
        if self.head_name is None:
            self.head_name = self._resolve_head_name()
        head = self.model.get_submodule(self.head_name)
        captured: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = _logits_of(self.model(**inputs))
        finally:
            hook.remove()
        if len(captured) != 1:
            raise RuntimeError(f"The head {self.head_name} ran {len(captured)} times in one forward; expected once.")
        features = captured[0]
        if not self._feature_path_checked:
            self._feature_path_checked = True
            with torch.no_grad():
                same = logits.shape == head(features).shape and torch.allclose(
                    head(features), logits, rtol=1e-4, atol=1e-5
                )
            if not same:
                self._feature_path_ok = False
                logger.warning("The logits are not the head's output; ANIL uses the generic (slower) inner loop.")
        return features

    def _head_weights(self) -> dict[str, torch.Tensor]:
        theta = self.meta_parameters()
        return {n: theta[n] for n in self.adapted_names}

    def head_logits(self, features: torch.Tensor, head: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the head with weights `head` (names as in `adapted_names`) on its input features."""
        weight = head[f"{self.head_name}.weight"]
        bias = head.get(f"{self.head_name}.bias")
        return F.linear(features, weight, bias)  # (B, N)

    def adapt_head(
        self, features: torch.Tensor, labels: torch.Tensor, steps: Optional[int] = None
    ) -> dict[str, torch.Tensor]:
        """ANIL's inner loop on precomputed head-input features (same result as `adapt` with adapt='head')."""

        def support_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(self.head_logits(features, params), labels)

        return self._inner_loop(self._head_weights(), support_loss, self._num_steps(steps))

    @property
    def uses_feature_path(self) -> bool:
        return self.config.adapt == "head" and self._feature_path_ok

    # ----------------------------------------------------------------------------------------------
    # One task

    def forward(
        self,
        support: Mapping[str, torch.Tensor],
        support_labels: torch.Tensor,
        query: Mapping[str, torch.Tensor],
        query_labels: torch.Tensor,
        steps: Optional[int] = None,
    ) -> MAMLOutput:
        """Adapt on the support set, then the query loss at the adapted weights (one task)."""
        with self.episode_mode():
            logits = None
            if self.uses_feature_path:
                support_features = self.head_features(support)  # (N*K, D), through the body at theta0
                if self.uses_feature_path:  # the first call may have switched it off
                    head = self.adapt_head(support_features, support_labels, steps)
                    logits = self.head_logits(self.head_features(query), head)  # (N*Q, N)
            if logits is None:
                fast = self.adapt(support, support_labels, steps)
                logits = self.functional_forward(fast, query)  # (N*Q, N)
        loss = F.cross_entropy(logits, query_labels)
        accuracy = float((logits.detach().argmax(-1) == query_labels).float().mean())
        return MAMLOutput(loss=loss, logits=logits, accuracy=accuracy)

    # ----------------------------------------------------------------------------------------------
    # Saving

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> None:
        """The model with its own `save_pretrained` (plain transformers / peft folder), plus `save_meta_state`."""
        os.makedirs(directory, exist_ok=True)
        save = getattr(self.model, "save_pretrained", None)
        if callable(save):
            save(directory, **kwargs)
        else:
            torch.save(self.model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
        self.save_meta_state(directory)

    def save_meta_state(self, directory: str | os.PathLike) -> None:
        """What MAML adds to a saved model: its config with the adapted parameter names and, with Meta-SGD, the
        learned inner learning rates by parameter name (for models saved in another format than `save_pretrained`'s)."""
        from safetensors.torch import save_file

        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, MAML_CONFIG_NAME), "w") as f:
            json.dump({**asdict(self.config), "adapted_parameters": list(self.adapted_names)}, f, indent=2)
        if self.inner_lrs is not None:
            save_file(
                {n: lr.detach().contiguous().cpu() for n, lr in self.named_inner_lrs().items()},
                os.path.join(directory, INNER_LRS_NAME),
            )

    def load_inner_lrs(self, directory: str | os.PathLike) -> None:
        """Read learned inner learning rates written by `save_pretrained` (Meta-SGD)."""
        from safetensors.torch import load_file

        if self.inner_lrs is None:
            raise ConfigError("This MAML has no learned inner learning rates; create it with learn_inner_lr=True.")
        saved = load_file(os.path.join(directory, INNER_LRS_NAME))
        with torch.no_grad():
            for name, lr in self.named_inner_lrs().items():
                lr.copy_(saved[name])

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, model: nn.Module) -> "MAML":
        """Rebuild the wrapper around `model` (already loaded from `directory`, e.g. with `from_pretrained`).

        A sentence-transformers folder (a pooled head, `hf_transfer.models.pooled_classifier`) gives `model` through
        `load_saved_pooled_classifier(directory)`; its meta-learned LoRA, unmerged, through
        `PeftModel.from_pretrained(load_pooled_classifier(base, pooling, labels), directory / "adapter")`.
        """
        with open(os.path.join(directory, MAML_CONFIG_NAME)) as f:
            saved = json.load(f)
        saved.pop("adapted_parameters", None)
        maml = cls(model, MAMLConfig(**saved))
        if maml.inner_lrs is not None:
            maml.load_inner_lrs(directory)
        return maml
