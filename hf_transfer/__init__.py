"""hf_transfer: transfer pretrained Hugging Face backbones to new tasks with little labelled data."""

__version__ = "0.1.0"
