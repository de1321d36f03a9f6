"""What the user sets for domain adaptation: the method and its hyperparameters, and the two data sources.

The source and the target domain are each described by the same flags as `hf_transfer.data.DataArguments`,
prefixed: `--source_dataset_name`, `--target_train_file`, `--target_text_column`, ... The prefixed classes are
generated from `DataArguments`, so every data option of `recipes/finetune.py` exists for both domains and
the two can never drift apart.
"""

from __future__ import annotations

import dataclasses
import re
import typing
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..data.arguments import DataArguments
from ..data.constants import BUILTIN_DATASETS, DERIVED_DATASETS
from ..errors import ConfigError, HfTransferError
from ..finetuning.strategies import STRATEGIES
from ..tasks import AUTO_TASK, TASKS
from .methods import ADAPTATION_METHODS, AdaptationMethod

__all__ = [
    "METHODS",
    "DomainAdaptationArguments",
    "SourceDataArguments",
    "TargetDataArguments",
    "create_prefixed_data_arguments",
    "check_transfer_strategy",
    "prefix_flags",
]

METHODS: tuple[str, ...] = ADAPTATION_METHODS.names()


@dataclass
class DomainAdaptationArguments:
    """How to adapt a model trained on labelled source data to an unlabelled target domain.

    Args:
        method (`str`, defaults to `"dann"`): a name of `hf_transfer.adaptation.methods.ADAPTATION_METHODS`:
            `source_only` trains on labelled source data alone (the baseline); `dann` adds a domain
            discriminator behind a gradient-reversal layer (Ganin et al. 2016); `coral` matches feature
            covariances (Sun & Saenko 2016); `mmd` minimises a multi-kernel MMD (DAN, Long et al. 2015); `mcc`
            minimises the class confusion of the target predictions (Jin et al. 2020); `cdan` conditions DANN's
            discriminator on the predictions (CDAN+E, Long et al. 2018); `target_oracle` trains on the *labelled* target train split instead (the upper bound, not an
            adaptation method). Target labels are otherwise used only for evaluation.
        alignment_weight (`float`, defaults to 1.0): λ, how strongly the backbone is pushed towards domain-
            invariant features: the weight of the CORAL / MMD term, and the scale of DANN's reversed gradient.
            DANN and MMD are scale-free (λ = 1 as in the papers). CORAL's loss grows with the feature variance;
            Sun & Saenko set λ so that λ·L_CORAL is about the task loss at the end of training: read the logged
            `alignment_loss` of a λ = 1 run (10 suits EfficientNet-Lite0, 1e5 MiniLM's pooler features).
        alignment_schedule (`Literal["ganin", "constant"]`, defaults to `"ganin"`): `ganin` multiplies λ by
            2 / (1 + exp(-γ p)) - 1 at training progress p ∈ [0, 1] (warm start from 0), `constant` keeps λ.
        schedule_gamma (`float`, defaults to 10.0): γ of the `ganin` schedule.
        alignment_learning_rate (`float`, *optional*): learning rate of DANN's discriminator. Default: the
            head learning rate (`--head_learning_rate`, else `--learning_rate`).
        dann_hidden_size (`int`, defaults to 256): width of the DANN / CDAN discriminator's two hidden layers.
        dann_dropout (`float`, defaults to 0.5): dropout in the DANN / CDAN discriminator.
        mcc_temperature (`float`, defaults to 2.5): softmax temperature of MCC.
        cdan_entropy_conditioning (`bool`, defaults to True): CDAN+E's entropy weights.
        cdan_randomized (`bool`, *optional*): CDAN's randomized multilinear map; default when classes x feature
            width > 4096.
        cdan_randomized_dim (`int`, defaults to 1024): width of the randomized map.
        target_self_training (`bool`, defaults to False): add a pseudo-label cross-entropy on target rows whose
            prediction passes its class's threshold (`hf_transfer.pseudo_labels.ClassThresholds`), on top of any
            method but the oracle.
        self_training_threshold (`float`, defaults to 0.95): the threshold of a fully learned class (FlexMatch's τ).
        self_training_min_threshold (`float`, defaults to 0.5): the floor under the per-class thresholds.
        self_training_weight (`float`, defaults to 1.0): weight of the pseudo-label term.
        self_training_start (`float`, defaults to 0.0): training progress in [0, 1) from which the term is added.
        self_training_distribution_alignment (`bool`, defaults to False): read each target prediction after
            scaling it by the class prior / the mean prediction over the target pool (ReMixMatch), so a class the
            model over-predicts cannot take most pseudo-labels.
        self_training_class_quota (`float`, *optional*): at most this fraction of the pool, split by the class
            prior, keeps each class as pseudo-label (CBST's class-balanced selection); None for no cap.
        self_training_class_prior (`Literal["uniform", "source"]`, defaults to `"uniform"`): the target class
            distribution both options assume: uniform, or the source train split's label frequencies.
        mmd_num_kernels (`int`, defaults to 5): number of Gaussian kernels of the MK-MMD.
        mmd_kernel_mul (`float`, defaults to 2.0): ratio between neighbouring kernel bandwidths.
        mmd_estimator (`Literal["biased", "linear"]`, defaults to `"biased"`): quadratic-time biased estimate
            or DAN's linear-time unbiased estimate.
        pair_seed (`int`, defaults to 0): seed of the pairing of source with target rows in training batches.
        compute_a_distance (`bool`, defaults to True): report the proxy A-distance between the domains'
            held-out features before and after training (Ben-David et al. 2007).
        a_distance_max_samples (`int`, defaults to 500): rows per domain used for the A-distance.
    """

    method: str = field(
        default="dann",
        metadata={
            "help": " ".join(f"{entry.name}: {entry.description}." for entry in ADAPTATION_METHODS.entries())
            + " Default dann."
        },
    )
    alignment_weight: float = field(
        default=1.0,
        metadata={
            "help": "Strength of the alignment (positive): weight of the CORAL / MMD loss, scale of DANN's "
            "reversed gradient. Default 1.0. For CORAL pick it so that weight x the logged alignment_loss is "
            "about the task loss at the end of training (e.g. 10 for EfficientNet-Lite0, 1e5 for MiniLM)."
        },
    )
    alignment_schedule: Literal["ganin", "constant"] = field(
        default="ganin",
        metadata={
            "help": "ganin: scale the alignment weight by 2/(1+exp(-gamma p))-1 at training progress p "
            "(warm start from 0, Ganin et al. 2016). constant: fixed weight. Default ganin."
        },
    )
    schedule_gamma: float = field(
        default=10.0, metadata={"help": "gamma of the ganin schedule (positive). Default 10."}
    )
    alignment_learning_rate: Optional[float] = field(
        default=None,
        metadata={
            "help": "Learning rate of DANN's domain discriminator. Default: --head_learning_rate, else --learning_rate."
        },
    )
    dann_hidden_size: int = field(
        default=256, metadata={"help": "Width of the DANN / CDAN discriminator's two hidden layers."}
    )
    dann_dropout: float = field(default=0.5, metadata={"help": "Dropout in the DANN / CDAN discriminator, in [0, 1)."})
    mcc_temperature: float = field(
        default=2.5, metadata={"help": "Softmax temperature of MCC (positive; the paper uses 2.5-3). Default 2.5."}
    )
    cdan_entropy_conditioning: bool = field(
        default=True,
        metadata={"help": "CDAN+E: weight rows by 1 + exp(-entropy of the prediction). Default true."},
    )
    cdan_randomized: Optional[bool] = field(
        default=None,
        metadata={
            "help": "CDAN's randomized multilinear map (f R_f) * (g R_g) / sqrt(d) instead of f x g. Default: when "
            "classes x feature width > 4096."
        },
    )
    cdan_randomized_dim: int = field(default=1024, metadata={"help": "Width d of CDAN's randomized map. Default 1024."})
    target_self_training: bool = field(
        default=False,
        metadata={
            "help": "Target self-training on top of --method: target rows whose prediction passes its class's "
            "threshold (FlexMatch per-class thresholds with a floor) add a cross-entropy with that pseudo-label."
        },
    )
    self_training_threshold: float = field(
        default=0.95, metadata={"help": "Self-training threshold of a fully learned class, in (0, 1]. Default 0.95."}
    )
    self_training_min_threshold: float = field(
        default=0.5,
        metadata={"help": "Floor under the per-class self-training thresholds, in [0, threshold]. Default 0.5."},
    )
    self_training_weight: float = field(
        default=1.0, metadata={"help": "Weight of the self-training term (positive). Default 1.0."}
    )
    self_training_start: float = field(
        default=0.0,
        metadata={"help": "Training progress in [0, 1) from which the self-training term is added. Default 0."},
    )
    self_training_distribution_alignment: bool = field(
        default=False,
        metadata={
            "help": "Class-balance the pseudo-labels: scale each target prediction by class prior / mean prediction "
            "over the target pool before thresholding (ReMixMatch's distribution alignment). Default false."
        },
    )
    self_training_class_quota: Optional[float] = field(
        default=None,
        metadata={
            "help": "Cap each class's pseudo-labels at this fraction of the target pool times the class prior "
            "(CBST), in (0, 1]. Default: no cap."
        },
    )
    self_training_class_prior: Literal["uniform", "source"] = field(
        default="uniform",
        metadata={
            "help": "Target class distribution assumed by --self_training_distribution_alignment and "
            "--self_training_class_quota: uniform, or source (the source train split's label frequencies)."
        },
    )
    mmd_num_kernels: int = field(default=5, metadata={"help": "Number of Gaussian kernels of the MK-MMD (>= 1)."})
    mmd_kernel_mul: float = field(
        default=2.0, metadata={"help": "Ratio between neighbouring MMD kernel bandwidths (> 1). Default 2."}
    )
    mmd_estimator: Literal["biased", "linear"] = field(
        default="biased",
        metadata={
            "help": "biased: quadratic-time MMD estimate (lower variance). linear: DAN's linear-time unbiased "
            "estimate. Default biased."
        },
    )
    pair_seed: int = field(
        default=0, metadata={"help": "Seed of the pairing of source rows with target rows in training batches."}
    )
    compute_a_distance: bool = field(
        default=True,
        metadata={
            "help": "Report the proxy A-distance between source and target held-out features before and "
            "after training (a linear domain classifier; 0 = indistinguishable, 2 = separable)."
        },
    )
    a_distance_max_samples: int = field(
        default=500, metadata={"help": "Rows per domain used for the proxy A-distance (at least 20). Default 500."}
    )

    def __post_init__(self) -> None:
        ADAPTATION_METHODS.check(self.method)
        if self.alignment_schedule not in ("ganin", "constant"):
            raise ConfigError(f"--alignment_schedule {self.alignment_schedule!r} must be `ganin` or `constant`.")
        if self.mmd_estimator not in ("biased", "linear"):
            raise ConfigError(f"--mmd_estimator {self.mmd_estimator!r} must be `biased` or `linear`.")
        if not self.alignment_weight > 0:
            raise ConfigError(
                f"--alignment_weight {self.alignment_weight} must be positive; use --method source_only for no alignment."
            )
        if not self.schedule_gamma > 0:
            raise ConfigError(f"--schedule_gamma {self.schedule_gamma} must be positive (the paper uses 10).")
        if self.alignment_learning_rate is not None and not self.alignment_learning_rate > 0:
            raise ConfigError(
                f"--alignment_learning_rate {self.alignment_learning_rate} must be positive; omit it to use the "
                "head learning rate."
            )
        if self.dann_hidden_size <= 0:
            raise ConfigError(f"--dann_hidden_size {self.dann_hidden_size} must be positive.")
        if not 0.0 <= self.dann_dropout < 1.0:
            raise ConfigError(f"--dann_dropout {self.dann_dropout} must be in [0, 1).")
        if self.mmd_num_kernels < 1:
            raise ConfigError(f"--mmd_num_kernels {self.mmd_num_kernels} must be at least 1.")
        if self.mmd_num_kernels > 1 and not self.mmd_kernel_mul > 1.0:
            raise ConfigError(
                f"--mmd_kernel_mul {self.mmd_kernel_mul} must be > 1 to spread {self.mmd_num_kernels} kernels; "
                "use e.g. 2.0, or --mmd_num_kernels 1."
            )
        if not self.mcc_temperature > 0:
            raise ConfigError(f"--mcc_temperature {self.mcc_temperature} must be positive (the paper uses 2.5-3).")
        if self.cdan_randomized_dim <= 0:
            raise ConfigError(f"--cdan_randomized_dim {self.cdan_randomized_dim} must be positive (e.g. 1024).")
        if not 0.0 < self.self_training_threshold <= 1.0:
            raise ConfigError(
                f"--self_training_threshold {self.self_training_threshold} must lie in (0, 1], e.g. 0.95."
            )
        if not 0.0 <= self.self_training_min_threshold <= self.self_training_threshold:
            raise ConfigError(
                f"--self_training_min_threshold {self.self_training_min_threshold} must lie in "
                f"[0, --self_training_threshold {self.self_training_threshold}]."
            )
        if not self.self_training_weight > 0:
            raise ConfigError(f"--self_training_weight {self.self_training_weight} must be positive.")
        if not 0.0 <= self.self_training_start < 1.0:
            raise ConfigError(
                f"--self_training_start {self.self_training_start} must lie in [0, 1): the fraction of training "
                "after which the self-training term starts."
            )
        if self.self_training_class_quota is not None and not 0.0 < self.self_training_class_quota <= 1.0:
            raise ConfigError(
                f"--self_training_class_quota {self.self_training_class_quota} must lie in (0, 1], e.g. 0.5."
            )
        if self.self_training_class_prior not in ("uniform", "source"):
            raise ConfigError(
                f"--self_training_class_prior {self.self_training_class_prior!r} must be `uniform` or `source`."
            )
        balances = self.self_training_distribution_alignment or self.self_training_class_quota is not None
        if balances and not self.target_self_training:
            raise ConfigError(
                "--self_training_distribution_alignment / --self_training_class_quota balance the pseudo-labels of "
                "target self-training: add --target_self_training true."
            )
        if self.target_self_training and self.method_entry.trains_on == "target":
            raise ConfigError(
                f"--target_self_training has no unlabelled target rows to pseudo-label with --method {self.method} "
                "(it trains on the labelled target split); drop the flag or pick an adaptation method."
            )
        if self.a_distance_max_samples < 20:
            raise ConfigError(
                f"--a_distance_max_samples {self.a_distance_max_samples} is too few to train and test a domain "
                "classifier; use at least 20, or --compute_a_distance false."
            )
        if not self.uses_alignment and self.alignment_weight != 1.0:
            warnings.warn(
                f"--alignment_weight is ignored by --method {self.method} (it trains without alignment).", stacklevel=2
            )

    @property
    def uses_alignment(self) -> bool:
        """True for the methods that draw unlabelled target batches and add an alignment loss."""
        return self.method_entry.aligns

    @property
    def method_entry(self) -> AdaptationMethod:
        """The `ADAPTATION_METHODS` entry of `--method`."""
        return ADAPTATION_METHODS.get(self.method)

    @property
    def uses_target_rows(self) -> bool:
        """Training batches pair source rows with unlabelled target rows (an alignment loss or self-training)."""
        return self.method_entry.trains_on == "source_and_target" or self.target_self_training

    def alignment_loss_options(self) -> dict[str, object]:
        """The fields an alignment loss may take (its entry says which)."""
        return {name: getattr(self, name) for name in self.method_entry.loss_options}


# --------------------------------------------------------------------------------------------------
# Source and target data: DataArguments under a prefix


_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataArguments))
_FLAG_PATTERN = re.compile(r"--(" + "|".join(sorted(_DATA_FIELDS, key=len, reverse=True)) + r")\b")


def prefix_flags(text: str, prefix: str) -> str:
    """`--train_file` -> `--source_train_file` in help texts and error messages."""
    return _FLAG_PATTERN.sub(lambda m: f"--{prefix}_{m.group(1)}", text)


def create_prefixed_data_arguments(prefix: str, description: str) -> type:
    """A dataclass with every `DataArguments` field as `<prefix>_<name>` (same types, defaults and help).

    Its `__post_init__` runs `DataArguments`' checks and re-raises their errors with the prefixed flag
    names; `to_data_arguments()` returns the validated plain `DataArguments`.
    """
    hints = typing.get_type_hints(DataArguments)
    fields = []
    for f in dataclasses.fields(DataArguments):
        if f.name == "dataset_name":
            names = ", ".join((*BUILTIN_DATASETS, *DERIVED_DATASETS))
            help_text = (
                f"The {description}: a built-in offline data set (one of: {names}) or a Hub dataset id. "
                f"Omit it when you pass --{prefix}_train_file or --{prefix}_train_dir."
            )
        else:
            help_text = f"[{prefix}] " + prefix_flags(f.metadata.get("help", ""), prefix)
        fields.append((f"{prefix}_{f.name}", hints[f.name], field(default=f.default, metadata={"help": help_text})))

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f"{prefix}_{f.name}") for f in dataclasses.fields(DataArguments)}
        try:
            self._data_arguments = DataArguments(**values)
        except HfTransferError as err:
            raise type(err)(f"{prefix.capitalize()} data: {prefix_flags(str(err), prefix)}") from err

    def to_data_arguments(self) -> DataArguments:
        """The same settings as a plain `DataArguments`, for `load_transfer_dataset` and friends."""
        return self._data_arguments

    cls = dataclasses.make_dataclass(
        f"{prefix.capitalize()}DataArguments",
        fields,
        namespace={"__post_init__": __post_init__, "to_data_arguments": to_data_arguments, "prefix": prefix},
    )
    cls.__module__ = __name__
    cls.__doc__ = (
        f"The {description}: every `hf_transfer.data.DataArguments` field, prefixed `{prefix}_` "
        f"(e.g. `--{prefix}_dataset_name`, `--{prefix}_train_file`, `--{prefix}_max_train_samples`)."
    )
    return cls


SourceDataArguments = create_prefixed_data_arguments("source", "source domain (labelled)")
TargetDataArguments = create_prefixed_data_arguments(
    "target", "target domain (its labels are used for evaluation only, except by target_oracle)"
)


def check_transfer_strategy(strategy: str, task: str = "auto") -> None:
    """Domain adaptation trains the backbone in one stage (full or LoRA fine-tuning); it adapts classifiers."""
    if task != AUTO_TASK and not TASKS.get(task).one_class_per_row:
        raise ConfigError(
            f"--task {task}: domain adaptation adapts classifiers (one class per row) for now; train a {task} model "
            "with recipes/finetune.py."
        )
    # The strategies whose one stage fine-tunes the backbone (a probe stage would fit its head on source features).
    adaptable = [entry.name for entry in STRATEGIES.entries() if entry.finetunes and not entry.probes]
    if strategy not in adaptable:
        reason = "does not train the backbone" if not STRATEGIES.get(strategy).finetunes else "starts with a probe"
        raise ConfigError(
            f"--strategy {strategy} {reason}, so there is nothing to adapt; use --strategy "
            f"{' or --strategy '.join(adaptable)} with domain adaptation."
        )
