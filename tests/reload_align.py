"""Run in a fresh process: load an aligned dual encoder with transformers alone (no hf_transfer import for the model),
classify the test images with `pipeline("zero-shot-image-classification")`, and print the accuracies as JSON.

argv: output_dir, dataset args as JSON (read with hf_transfer's data loader: the same rows the run scored).
"""

import json
import sys

from transformers import VisionTextDualEncoderModel, pipeline

output_dir, data_json = sys.argv[1], sys.argv[2]
model = VisionTextDualEncoderModel.from_pretrained(output_dir)
assert type(model).__name__ == "VisionTextDualEncoderModel"
classifier = pipeline("zero-shot-image-classification", model=output_dir)
results = json.loads(open(f"{output_dir}/all_results.json").read())
template = results["caption_template"]

from hf_transfer.data import DataArguments, load_transfer_dataset  # noqa: E402 (the rows only)

test = load_transfer_dataset(DataArguments(**json.loads(data_json)))["test"]
names = test.features["label"].names
readable = [name.replace("_", " ").strip() for name in names]
held = [names.index(n) for n in results["held_out_classes"]]
groups = {"all": list(range(len(names)))}
if held:
    groups["heldout"] = held
    groups["seen"] = [i for i in range(len(names)) if i not in held]
out = {}
for group, candidates in groups.items():
    rows = [i for i, label in enumerate(test["label"]) if label in candidates]
    hits = 0
    for i in rows:
        scores = classifier(
            test[i]["image"], candidate_labels=[readable[c] for c in candidates], hypothesis_template=template
        )
        hits += scores[0]["label"] == readable[test[i]["label"]]
    out[f"zero_shot_{group}_test_accuracy"] = hits / len(rows)
print(json.dumps(out))
