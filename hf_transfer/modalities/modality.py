"""`ModalityEntry`: everything that differs between what backbones read (text, images), in one entry.

A model and its data are of one modality: what the processor is, which canonical column holds an input and how it is
checked, how a split becomes model inputs and how rows are collated, which flags apply (`--max_seq_length`,
`--image_size`, augmentation), how the embedding is pooled, which views contrastive pretraining makes and what the
model card's snippet feeds the model. The rest of the toolkit asks the entry (`MODALITIES.get(modality).pools_tokens`)
instead of comparing the name with strings. Implementations are named as `module:function` and imported when used:
argument dataclasses read this module without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .._registry import LazyReference
from ..constants import Modality

__all__ = ["ModalityEntry"]


@dataclass(frozen=True)
class ModalityEntry:
    """What a backbone reads.

    Args:
        name: the modality (`text`, `vision`), as `infer_model_modality` and `infer_modality` say it.
        description: one line for the docs.
        inputs: what its data holds, for messages (`images`).
        backbone_phrase: a backbone of it, for messages (`an image backbone`).
        input_column: the canonical column of an input (`hf_transfer.data`).
        words_column: the canonical column of pre-split words (token classification), if it has one.
        preprocess_words: `(dataset, processor, *, columns, max_seq_length, desc_prefix) -> dataset` of model inputs
            when the data holds `words_column` (`hf_transfer.processing.word_windows`).
        processor_class: the transformers `Auto...` class that loads its processor.
        processor_noun: what that processor is called in messages (`image processor`).
        default_pooling: the `--pooling` of a backbone that names none (`hf_transfer.models.pooling_modes`).
        pools_tokens: its embedding pools token states with `--pooling` over the attention mask; otherwise the
            model's own pooled output is the embedding (its head pools itself).
        sentence_transformers: its backbones are read and saved in sentence-transformers' format (pooling config).
        uses_max_seq_length: `--max_seq_length` bounds an input (capped to what the model reads).
        uses_image_size: `--image_size` resizes an input (`hf_transfer.processing.set_image_size`).
        augmentable: timm's training transforms apply (`--augmentation`, `--mixup`, `--cutmix`, ...).
        transformed_on_read: inputs are decoded and transformed as rows are read (`with_transform`), not stored:
            `Trainer` must keep the raw input column, and DataLoader workers share the work.
        contrastive_views: the `--views` that fit it, the first being `auto`'s choice without `--pair_column`.
        views_hint: the `--views` to pass instead, for the error on one that does not fit.
        card_example: what the model card's usage snippet passes to the processor.
        example_models: models of this modality an error message suggests when another kind was given.
        canonicalize: `(ds, split, input_column) -> ds`, the canonical input column checked and cast
            (`hf_transfer.data.columns`).
        preprocess: `(dataset, processor, *, num_labels, max_seq_length, desc_prefix, augmentation) ->
            dataset` of model inputs (`hf_transfer.processing`).
        create_collator: `processor -> collate_fn` turning preprocessed rows into a batch.
        describe_preprocessing: `(processor, max_seq_length) -> str`, a stable text for cache keys.
        processor_from_config: `(model_type, config, tokenizer_source, model_args) -> processor` of a backbone built
            from a config (contrastive pretraining from scratch).
        contrastive_collator: `(processor, views, args) -> collate_fn` making the two views of each row.
    """

    name: Modality
    description: str
    inputs: str
    backbone_phrase: str
    input_column: str
    words_column: Optional[str]
    preprocess_words: Optional[LazyReference]
    processor_class: LazyReference
    processor_noun: str
    default_pooling: str
    pools_tokens: bool
    sentence_transformers: bool
    uses_max_seq_length: bool
    uses_image_size: bool
    augmentable: bool
    transformed_on_read: bool
    contrastive_views: tuple[str, ...]
    views_hint: str
    card_example: str
    example_models: str
    canonicalize: LazyReference
    preprocess: LazyReference
    create_collator: LazyReference
    describe_preprocessing: LazyReference
    processor_from_config: LazyReference
    contrastive_collator: LazyReference

    @property
    def processor_class_name(self) -> str:
        """The `Auto...` class name, as the model card's snippet imports it."""
        return self.processor_class.target.rpartition(":")[2]
