"""Command line: `hf-transfer COMMAND ...` (also `python -m hf_transfer COMMAND ...`).

- `push OUTPUT_DIR --repo_id user/name`: pushes a finished output directory (model or adapter, processor, results
  and a freshly generated model card) to the Hub, e.g. after a push that failed during the run.
- `compare --model_name_or_path ... --dataset_name ... [--strategy ...]`: runs a grid of strategies x seeds x label
  budgets through recipes/finetune.py and writes a table, plots and a recommendation (`hf_transfer.comparison`).
  Ctrl-C stops it with the table of the finished cells (exit code 130); the same command resumes.
- `rank --model_name_or_path ... --dataset_name ...`: ranks backbones or layers for a data set by transferability
  scores (LogME, H-score, LEEP, NCE) computed from their features, before any training, down to a few labelled rows
  (`hf_transfer.transferability`).
- `select --model_name_or_path ... --pool_file ... --num_rows K [--train_file ...]`: chooses the K pool rows to label
  next from the backbone's cached features: typical rows without labels, uncertain and diverse ones with them; the same
  --output_dir continues (`hf_transfer.selection`).

compare, rank and select take the recipes' flag names (`--model_name_or_path`, `--seed`, the data flags, ...), several
values where they take several; their older names (`--models`, `--candidates`, ...) still work.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Optional, Sequence

from .errors import HfTransferError
from .hub import push_output_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started with Ctrl-C ignored (a background job of a non-interactive shell inherits that): every command must
        # still stop when it is sent SIGINT, with its one line (compare and rank as well as push).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="hf-transfer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", add_help=False, help="Compare strategies on your data (compare --help for flags)."
    )
    compare.add_argument("compare_args", nargs=argparse.REMAINDER)
    rank = commands.add_parser(
        "rank", add_help=False, help="Rank backbones or layers by transferability scores (rank --help for flags)."
    )
    rank.add_argument("rank_args", nargs=argparse.REMAINDER)
    select = commands.add_parser(
        "select", add_help=False, help="Choose the pool rows to label next (select --help for flags)."
    )
    select.add_argument("select_args", nargs=argparse.REMAINDER)
    push = commands.add_parser("push", help="Push an output directory to the Hub with a generated model card.")
    push.add_argument("output_dir", help="A directory written by one of the recipes (--output_dir).")
    push.add_argument("--repo_id", required=True, help="Target repository, e.g. `your-name/minilm-tweets-lora`.")
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.add_argument("--token", default=None, help="Hub token; default: HF_TOKEN or the saved login.")
    push.add_argument("--commit_message", default=None, help="Commit message of the upload.")
    push.add_argument(
        "--max_retries",
        type=int,
        default=2,
        help="Attempts for transient Hub errors (huggingface_hub already retries file uploads).",
    )
    push.add_argument("--timeout", type=float, default=60.0, help="Seconds per Hub request (connect, send, answer).")
    push.add_argument("--deadline", type=float, default=1800.0, help="Seconds for the whole push.")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["rank"], ["compare"], ["select"]):  # their flags are dataclasses' (HfArgumentParser)
        if argv[0] == "rank":
            from .transferability.command import main as command_main
        elif argv[0] == "select":
            from .selection.command import main as command_main
        else:
            from .comparison.command import main as command_main

        logging.basicConfig(format="%(levelname)s - %(name)s - %(message)s", level=logging.INFO)
        try:
            return command_main(argv[1:])
        except HfTransferError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # before or after the part that handles it (compare's grid)
            print(f"interrupted: hf-transfer {argv[0]} stopped.", file=sys.stderr)
            return 130
    args = parser.parse_args(argv)

    logging.basicConfig(format="%(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    try:
        url = push_output_dir(
            args.output_dir,
            args.repo_id,
            token=args.token,
            private=args.private or None,
            commit_message=args.commit_message,
            max_retries=args.max_retries,
            request_timeout=args.timeout,
            deadline=args.deadline,
            flags={
                "token": "--token",
                "repo_id": "--repo_id",
                "max_retries": "--max_retries",
                "timeout": "--timeout",
                "deadline": "--deadline",
            },
        )
    except HfTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # HubPushInterrupted says what state the Hub may be in
        print(f"error: {err or 'interrupted'}", file=sys.stderr)
        # At exit Python would join huggingface_hub's upload threads, which may sit in a read for the whole request
        # timeout: Ctrl-C ends the process now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
