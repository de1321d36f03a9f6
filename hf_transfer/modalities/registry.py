"""The modalities by name: text (a tokenizer reads it) and vision (an image processor does).

Adding a modality is one entry here plus the modules it names (canonical column check, preprocessing, collator).
"""

from __future__ import annotations

from .._registry import LazyReference, Registry
from .modality import ModalityEntry

__all__ = ["MODALITIES"]

MODALITIES: Registry[ModalityEntry] = Registry("modality", "modality")
MODALITIES.register(
    ModalityEntry(
        name="text",
        description="text read by a tokenizer: a string per row, or a list of words per row (token classification)",
        inputs="text",
        backbone_phrase="a text backbone",
        input_column="text",
        words_column="tokens",
        preprocess_words=LazyReference("hf_transfer.processing.word_windows:preprocess_words"),
        processor_class=LazyReference("transformers:AutoTokenizer"),
        processor_noun="tokenizer",
        default_pooling="mean",
        pools_tokens=True,
        sentence_transformers=True,
        uses_max_seq_length=True,
        uses_image_size=False,
        augmentable=False,
        transformed_on_read=False,
        contrastive_views=("dropout", "pair"),
        views_hint="dropout (SimCSE) or pair (with --pair_column)",
        card_example='["a sentence"]',
        example_models="minilm or a BERT/RoBERTa",
        canonicalize=LazyReference("hf_transfer.data.columns:canonical_text_column"),
        preprocess=LazyReference("hf_transfer.processing.text:preprocess_text"),
        create_collator=LazyReference("hf_transfer.processing.text:create_padding_collator"),
        describe_preprocessing=LazyReference("hf_transfer.processing.text:describe_tokenization"),
        processor_from_config=LazyReference("hf_transfer.contrastive.model:tokenizer_from_source"),
        contrastive_collator=LazyReference("hf_transfer.contrastive.views:create_text_views_collator"),
    )
)
MODALITIES.register(
    ModalityEntry(
        name="vision",
        description="images read by an image processor, decoded and resized as rows are read",
        inputs="images",
        backbone_phrase="an image backbone",
        input_column="image",
        words_column=None,
        preprocess_words=None,
        processor_class=LazyReference("transformers:AutoImageProcessor"),
        processor_noun="image processor",
        default_pooling="pooler",
        pools_tokens=False,
        sentence_transformers=False,
        uses_max_seq_length=False,
        uses_image_size=True,
        augmentable=True,
        transformed_on_read=True,
        contrastive_views=("augment",),
        views_hint="augment (or auto)",
        card_example="[image]",
        example_models="efficientnet-lite0 or a ViT",
        canonicalize=LazyReference("hf_transfer.data.columns:canonical_image_column"),
        preprocess=LazyReference("hf_transfer.processing.image_transforms:preprocess_images"),
        create_collator=LazyReference("hf_transfer.processing.image_transforms:create_image_collator"),
        describe_preprocessing=LazyReference("hf_transfer.processing.image_transforms:describe_image_processing"),
        processor_from_config=LazyReference("hf_transfer.contrastive.model:default_image_processor"),
        contrastive_collator=LazyReference("hf_transfer.contrastive.views:create_image_views_collator"),
    )
)
