"""`hf-transfer rank`: rank candidate backbones (or layers) for a data set by transferability scores.

hf-transfer rank --model_name_or_path minilm@all random:minilm --dataset_name tweet_sentiment --max_train_samples 40
hf-transfer rank --model_name_or_path efficientnet-lite0 efficientnet-lite0@all --dataset_name digits \
    --check_with_probes true

`--candidates` is another name of `--model_name_or_path`. Few labelled rows (fewer than the features' dimensions)
are the case rank is for: every score is defined there.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

import torch
from transformers import HfArgumentParser

from ..data import DataArguments, data_source_name, load_transfer_dataset
from ..errors import ConfigError
from ..models import ModelArguments
from ..probing import FeatureCache
from ..recipe.arguments import parse_recipe_args
from .arguments import RankArguments
from .candidates import extract_candidate_features, parse_candidates
from .ranking import rank_candidates, write_ranking

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # 1. Arguments: flags, or a YAML / JSON file and overriding flags.
    parser = HfArgumentParser((RankArguments, DataArguments), prog="hf-transfer rank")
    rank_args, data_args = parse_recipe_args(parser, argv)
    requests = parse_candidates(rank_args.model_name_or_path)
    device = torch.device(
        "cuda" if rank_args.device == "cuda" or (rank_args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device cpu.")

    # 2. Data: the recipes' loader (train scores the candidates; validation / test serve the probe check).
    splits = load_transfer_dataset(data_args, rank_args.cache_dir)
    if not rank_args.check_with_probes:
        splits = splits.__class__({"train": splits["train"]})
    dataset = data_source_name(data_args)

    # 3. Features of every candidate (cached), then the scores.
    cache = FeatureCache(None if rank_args.cache_dir is None else f"{rank_args.cache_dir}/features")
    candidates = []
    for request in requests:
        logger.info("Extracting features of %s", request.model)
        candidates.extend(
            extract_candidate_features(
                request,
                splits,
                model_args=ModelArguments(model_name_or_path=request.model, cache_dir=rank_args.cache_dir),
                max_seq_length=rank_args.max_seq_length,
                batch_size=rank_args.feature_batch_size,
                seed=rank_args.seed,
                cache=cache,
                device=device,
            )
        )
    if len(candidates) < 2:
        raise ConfigError(f"Only one candidate ({candidates[0].candidate.name}): name at least two to rank.")
    ranking = rank_candidates(candidates, rank_args.scores, rank_args.rank_by, fit_probes=rank_args.check_with_probes)

    # 4. The table: printed and written as json / md.
    output_dir = rank_args.output_dir or f"outputs/rank-{dataset.replace('/', '_')}"
    json_path, md_path = write_ranking(ranking, output_dir)
    print(ranking.to_markdown())
    print(f"Saved {json_path} and {md_path}", file=sys.stderr)
    return 0
