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

Which parameters adapt is `adapted_parameters.py`; batch norm and dropout in episodes `episode_mode.py`; the
files a saved MAML adds to its model `saving.py`.

ANIL (`adapt="head"`) takes a fast path: the body runs once on the support set and once on the query
set, and the inner loop works on the head's input features (the generic path would re-run the unchanged
body every inner step). Both give the same numbers; the first call checks that the head's output is the
model's logits and falls back to the generic path otherwise.

References:
    Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks".
    Li, Zhou, Chen, Li 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning".
    Raghu, Raghu, Bengio, Vinyals 2020, "Rapid Learning or Feature Reuse? Towards Understanding the
    Effectiveness of MAML" (ANIL).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .adapted_parameters import create_inner_lrs, resolve_head_name, select_adapted_parameters
from .arguments import MAMLConfig
from .episode_mode import episode_mode, examples_are_independent
from .saving import load_inner_lrs, load_maml_config, save_maml, save_meta_state

__all__ = ["MAML", "MAMLOutput"]

logger = logging.getLogger(__name__)


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
        self.head_name: Optional[str] = None
        if self.config.adapt in ("head", "lora_and_head") or self.config.head_module is not None:
            self.head_name = resolve_head_name(model, self.config.head_module)
        self.adapted_names: tuple[str, ...] = select_adapted_parameters(model, self.config.adapt, self.head_name)
        self.inner_lrs: Optional[nn.ParameterList] = (
            create_inner_lrs(model, self.adapted_names, self.config) if self.config.learn_inner_lr else None
        )
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
    # Which parameters adapt (adapted_parameters.py)

    def meta_parameters(self) -> dict[str, nn.Parameter]:
        """theta0: the model's trainable parameters by name (what the outer optimizer updates, with the lrs)."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def named_inner_lrs(self) -> dict[str, torch.Tensor]:
        """Meta-SGD's learned learning rates by parameter name (empty without `learn_inner_lr`)."""
        if self.inner_lrs is None:
            return {}
        return {n: lr for n, lr in zip(self.adapted_names, self.inner_lrs)}

    # ----------------------------------------------------------------------------------------------
    # Episode mode: batch norm and dropout (episode_mode.py)

    @property
    def examples_are_independent(self) -> bool:
        """True when, in episodes, each example's output depends on that example only (no batch statistics)."""
        return examples_are_independent(self.model, self.config)

    def episode_mode(self) -> ContextManager[None]:
        """Dropout off (unless `dropout`), batch norm per `batch_norm` with running statistics untouched."""
        return episode_mode(self.model, self.config)

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

    def _adapted_weights(self) -> dict[str, torch.Tensor]:
        """theta0's adapted parameters: where every inner loop starts."""
        theta = self.meta_parameters()
        return {n: theta[n] for n in self.adapted_names}

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

        def support_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(self.functional_forward(params, inputs), labels)

        return self._inner_loop(self._adapted_weights(), support_loss, self._num_steps(steps))

    # ----------------------------------------------------------------------------------------------
    # ANIL fast path: inner loop on the head's input features

    def head_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The head's input features (B, D) at theta0, and (first call) a check that head(features) = logits."""
        if self.head_name is None:
            self.head_name = resolve_head_name(self.model, self.config.head_module)
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

        return self._inner_loop(self._adapted_weights(), support_loss, self._num_steps(steps))

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
    # Saving (saving.py)

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> None:
        """The model with its own `save_pretrained` (plain transformers / peft folder), plus `save_meta_state`."""
        save_maml(self, directory, **kwargs)

    def save_meta_state(self, directory: str | os.PathLike) -> None:
        """`maml_config.json` and Meta-SGD's learned rates, for a model saved in a format of its own."""
        save_meta_state(self, directory)

    def load_inner_lrs(self, directory: str | os.PathLike) -> None:
        """Read learned inner learning rates written by `save_pretrained` (Meta-SGD)."""
        load_inner_lrs(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, model: nn.Module) -> "MAML":
        """Rebuild the wrapper around `model` (already loaded from `directory`, e.g. with `from_pretrained`).

        A sentence-transformers folder (a pooled head, `hf_transfer.models.pooled_classifier`) gives `model` through
        `load_saved_pooled_classifier(directory)`; its meta-learned LoRA, unmerged, through
        `PeftModel.from_pretrained(load_pooled_classifier(base, pooling, labels), directory / "adapter")`.
        """
        maml = cls(model, load_maml_config(directory))
        if maml.inner_lrs is not None:
            maml.load_inner_lrs(directory)
        return maml
