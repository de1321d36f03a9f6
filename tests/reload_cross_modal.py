"""Run in a fresh process: load saved cross-modal classifiers, first with `trust_remote_code=True` and no
hf_transfer model code imported (the code saved next to the weights), then after `import hf_transfer.cross_modal`
(the registered class, no flag); classify the test images with `pipeline("image-classification")` each way and print
the predicted labels and accuracy as JSON.

argv: a JSON list of output folders, dataset args as JSON (read with hf_transfer's data loader: the rows the run
scored).
"""

import json
import sys

from transformers import AutoModelForImageClassification, pipeline

from hf_transfer.data import DataArguments, load_transfer_dataset  # the rows only

folders, data_json = json.loads(sys.argv[1]), sys.argv[2]
test = load_transfer_dataset(DataArguments(**json.loads(data_json)))["test"]
names = test.features["label"].names
assert "hf_transfer.cross_modal" not in sys.modules


def predict(classifier) -> list[str]:
    return [p[0]["label"] for p in classifier(list(test["image"]), top_k=1)]


def accuracy(predictions: list[str]) -> float:
    return sum(p == names[label] for p, label in zip(predictions, test["label"])) / len(test)


out = {folder: {} for folder in folders}
for folder in folders:
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    out[folder]["remote_code"] = predict(pipeline("image-classification", model=folder, trust_remote_code=True))

import hf_transfer.cross_modal  # noqa: E402,F401 (registers the class with the Auto classes)

for folder in folders:
    model = AutoModelForImageClassification.from_pretrained(folder)
    assert type(model).__module__ == "hf_transfer.cross_modal.modeling_cross_modal", type(model).__module__
    out[folder]["registered"] = predict(pipeline("image-classification", model=folder))
    out[folder]["accuracy"] = accuracy(out[folder]["registered"])
print(json.dumps(out))
