"""What earlier calls picked, kept in the output folder so the next call continues: `selection.json` (the state:
model, pool fingerprint, every round's rows and reasons) and `selected.csv` (the same rows, to hand to labellers).

Both files are written to a temporary name and renamed, so an interrupted call leaves the previous round intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ..errors import ConfigError, DataError
from ..modalities import MODALITIES
from .pool import Pool
from .strategies import Pick

__all__ = ["SelectionState", "STATE_FILE", "TABLE_FILE"]

STATE_FILE = "selection.json"
TABLE_FILE = "selected.csv"
STATE_VERSION = 1


@dataclass
class SelectionState:
    """Every round so far: `rounds[i]` holds its strategy, seed, the labelled-row count it saw and its picks."""

    model: str
    pool: dict  # source, fingerprint, rows
    rounds: list[dict] = field(default_factory=list)
    version: int = STATE_VERSION

    @property
    def picked(self) -> list[int]:
        return [pick["pool_row"] for r in self.rounds for pick in r["picks"]]

    @classmethod
    def load(cls, output_dir: str | os.PathLike) -> Optional[SelectionState]:
        path = Path(output_dir) / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:
            raise DataError(
                f"{path} is not a selection state written by hf-transfer select ({err}). Use another --output_dir."
            ) from None
        if state.version != STATE_VERSION:
            raise DataError(f"{path} was written by another version of select; use another --output_dir.")
        return state

    def check_continues(self, model: str, pool: dict, output_dir: str) -> None:
        """A state of another model or pool is one `ConfigError`: its row numbers would mean other rows."""
        if self.pool["fingerprint"] != pool["fingerprint"]:
            raise ConfigError(
                f"--output_dir '{output_dir}' holds a selection from another pool ({self.pool['source']}, "
                f"{self.pool['rows']} rows; this pool has {pool['rows']} rows or other content). Pass the same pool "
                "to continue it, or a new --output_dir."
            )
        if self.model != model:
            raise ConfigError(
                f"--output_dir '{output_dir}' holds a selection made with --model_name_or_path {self.model}; pass it "
                "again to continue, or use a new --output_dir."
            )

    def add_round(
        self, strategy: str, requested: str, seed: int, labelled_rows: int, picks: Sequence[Pick], seconds: float
    ) -> dict:
        entry = {
            "round": len(self.rounds) + 1,
            "strategy": strategy,
            "requested_strategy": requested,
            "seed": seed,
            "labelled_rows": labelled_rows,
            "seconds": round(seconds, 3),
            "picks": [{"pool_row": p.row, "reason": p.reason} for p in picks],
        }
        self.rounds.append(entry)
        return entry

    def table(self, pool: Pool) -> pd.DataFrame:
        """One line per picked row, in the order picked: round, order, pool_row, id, text / image, strategy, reason."""
        column = MODALITIES.get(pool.modality).input_column
        lines = []
        for r in self.rounds:
            for order, pick in enumerate(r["picks"], 1):
                row = pick["pool_row"]
                line = {"round": r["round"], "order": order, "pool_row": row}
                if pool.ids is not None:
                    line["id"] = pool.ids[row]
                line.update({column: pool.shown[row], "strategy": r["strategy"], "reason": pick["reason"]})
                lines.append(line)
        return pd.DataFrame(lines)

    def save(self, output_dir: str | os.PathLike, pool: Pool) -> tuple[Path, Path]:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        table, state = output_dir / TABLE_FILE, output_dir / STATE_FILE
        _write_atomic(table, self.table(pool).to_csv(index=False))
        _write_atomic(state, json.dumps(asdict(self), indent=2) + "\n")
        return table, state


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
