"""Object detection as a transfer task (`recipes/detect.py`): a DETR-family detector on the user's pretrained
classification backbone, the derived built-in detection sets, COCO-folder and `objects`-column data with box checks,
box-aware augmentation, the strategies, and COCO mAP by torchmetrics."""

from .arguments import (
    DETECTION_DATASETS,
    DetectionArguments,
    DetectionDataArguments,
    DetectorArguments,
    detect_argument_classes,
    detection_source_name,
)
from .augmentation import collate_detection, create_box_augmentation, detection_transform
from .data import category_names_of, check_boxes, load_coco_folder, load_detection_dataset
from .metrics import evaluate_detector, predict_detections, score_detections
from .model import Detector, backbone_module, create_detector, neck_module_names, set_trainable
from .strategies import DETECTION_STRATEGIES, DetectionStrategy

__all__ = [
    "DETECTION_DATASETS",
    "DETECTION_STRATEGIES",
    "DetectionArguments",
    "DetectionDataArguments",
    "DetectionStrategy",
    "Detector",
    "DetectorArguments",
    "backbone_module",
    "category_names_of",
    "check_boxes",
    "collate_detection",
    "create_box_augmentation",
    "create_detector",
    "detect_argument_classes",
    "detection_source_name",
    "detection_transform",
    "evaluate_detector",
    "load_coco_folder",
    "load_detection_dataset",
    "neck_module_names",
    "predict_detections",
    "score_detections",
    "set_trainable",
]
