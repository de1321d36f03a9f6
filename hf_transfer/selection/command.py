"""`hf-transfer select`: choose the pool rows to label next from a backbone's (cached) features.

hf-transfer select --model_name_or_path minilm --pool_file unlabelled.csv --num_rows 50 --output_dir outputs/select
hf-transfer select --model_name_or_path minilm --pool_file unlabelled.csv --train_file labelled.csv --num_rows 50 \
    --output_dir outputs/select

The first call (no labelled rows) picks typical rows of k-means clusters; later calls with the rows labelled so far
fit a probe on them and pick uncertain but diverse rows (BADGE). The same --output_dir continues: rows picked before
are never picked again, and the features come from the cache, so each round after the first takes seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional, Sequence

import numpy as np
import torch
from datasets import DatasetDict
from sklearn.preprocessing import normalize
from transformers import HfArgumentParser

from ..errors import ConfigError
from ..models import ModelArguments
from ..probing import FeatureCache
from ..recipe.arguments import parse_recipe_args
from ..transferability.candidates import CandidateRequest, extract_candidate_features
from .arguments import SelectArguments
from .pool import available_rows, load_labelled, load_pool, pool_fingerprint
from .registry import resolve_strategy
from .state import SelectionState
from .strategies import SelectionProblem
from .uncertainty import fit_selection_probe, reading_for

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _features(args: SelectArguments, split: str, dataset, cache: FeatureCache, device: torch.device):
    """The backbone's pooled embedding of every row (`hf-transfer rank`'s extraction and cache) and the labels."""
    (candidate,) = extract_candidate_features(
        CandidateRequest(args.model_name_or_path, source_head=False),
        DatasetDict({split: dataset}),
        model_args=ModelArguments(model_name_or_path=args.model_name_or_path, cache_dir=args.cache_dir),
        max_seq_length=args.max_seq_length,
        batch_size=args.feature_batch_size,
        cache=cache,
        device=device,
    )
    return candidate.features[split], candidate.labels[split]


def main(argv: Optional[Sequence[str]] = None) -> int:
    # 1. Arguments: flags, or a YAML / JSON file and overriding flags.
    (args,) = parse_recipe_args(HfArgumentParser((SelectArguments,), prog="hf-transfer select"), argv)
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device cpu.")
    output_dir = args.output_dir or f"outputs/select-{args.pool_name}"

    # 2. Pool and labelled rows; what earlier rounds picked (checked against this pool and model).
    pool = load_pool(args)
    labelled = load_labelled(args, pool)
    pool_info = {"source": pool.description, "fingerprint": pool_fingerprint(pool.keys), "rows": len(pool)}
    state = SelectionState.load(output_dir)
    if state is None:
        state = SelectionState(args.model_name_or_path, pool_info)
    else:
        state.check_continues(args.model_name_or_path, pool_info, output_dir)
        logger.info("Continuing %s: %d rows picked in %d rounds", output_dir, len(state.picked), len(state.rounds))
    available = available_rows(pool, labelled, state.picked)
    strategy = resolve_strategy(args.strategy, labelled is not None, labelled.task if labelled else None)
    if strategy.needs_probe:  # fail before any extraction: no labels, or a task without probabilities
        if labelled is None:
            raise ConfigError(
                f"--strategy {strategy.name} needs the rows labelled so far (--train_file or --train_dir) to fit a "
                "probe on; for a cold start use --strategy typical (or auto), kcenter or random."
            )
        reading_for(labelled.task, strategy.name)
    left = int(available.sum())
    if args.num_rows > left:
        raise ConfigError(
            f"--num_rows {args.num_rows} is more than the {left} pool rows left to pick (of {len(pool)}: the others "
            "are labelled, picked before or repeated). Ask for at most that many."
        )

    # 3. Features (cached: every later round reads them back), L2-normalised for the distances.
    start = time.perf_counter()
    cache = FeatureCache(None if args.cache_dir is None else f"{args.cache_dir}/features")
    pool_features, _ = _features(args, "pool", pool.dataset, cache, device)
    labelled_features = labels = None
    if labelled is not None:
        labelled_features, labels = _features(args, "labelled", labelled.dataset, cache, device)
    logger.info("Features ready in %.1fs", time.perf_counter() - start)

    # 4. The probe (uncertainty strategies) and the picks.
    start = time.perf_counter()
    probe = None
    if strategy.needs_probe:
        probe = fit_selection_probe(
            labelled_features, labels, pool_features, labelled.task, labelled.label_names, strategy.name, args.seed
        )
    problem = SelectionProblem(
        normalize(pool_features.double().numpy()),
        available,
        args.num_rows,
        labelled=normalize(labelled_features.double().numpy()) if labelled is not None else np.zeros((0, 0)),
        picked_before=np.asarray(state.picked, dtype=np.int64),
        seed=args.seed,
        probe=probe,
    )
    picks = strategy.select(problem)
    seconds = time.perf_counter() - start
    entry = state.add_round(
        strategy.name, args.strategy, args.seed, 0 if labelled is None else len(labelled.dataset), picks, seconds
    )

    # 5. selected.csv and selection.json.
    table, state_path = state.save(output_dir, pool)
    print(f"Round {entry['round']}: {len(picks)} rows picked by {strategy.name} in {seconds:.1f}s.")
    for pick in picks[:10]:
        shown = pool.shown[pick.row]
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        print(f"  row {pick.row}: {shown!r}: {pick.reason}")
    if len(picks) > 10:
        print(f"  ... and {len(picks) - 10} more")
    print(f"Saved {table} and {state_path}", file=sys.stderr)
    return 0
