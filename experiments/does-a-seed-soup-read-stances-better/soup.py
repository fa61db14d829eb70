"""Average the weights of stance encoders fine-tuned with different loop seeds (one data split) and score the
average on the shared validation split, beside each member and beside a logit ensemble of the members.

    .venv/bin/python experiments/does-a-seed-soup-read-stances-better/soup.py DIR0 DIR1 DIR2 --out SOUP_DIR

Only validation is computed here; the test splits are read by benchmarks/stance.py afterwards.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ecrs.config import load_config
from ecrs.models.stance import EncoderStanceClassifier, StanceModel
from ecrs.training.stance import StanceConfig, _selection_score, _split, load_stance_data


class Ensemble(StanceModel):
    """Mean of the members' probabilities (what a soup tries to get for the price of one model)."""

    def __init__(self, members):
        self.members = members

    def proba(self, text, spans):
        return np.mean([m.proba(text, spans) for m in self.members], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("members", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(StanceConfig, Path(args.members[0]) / "config.yaml", [])
    data = load_stance_data(cfg)
    _, r_val = _split(data["redial"]["train"], cfg)
    _, p_val = _split(data["people_genres"]["train"], cfg)
    members = [EncoderStanceClassifier.load(d, onnx=False) for d in args.members]
    scores = {d: _selection_score(m, r_val, p_val) for d, m in zip(args.members, members)}
    soup = EncoderStanceClassifier.load(args.members[0], onnx=False)
    with torch.no_grad():
        for part in ("encoder", "head"):
            states = [getattr(m, part).state_dict() for m in members]
            getattr(soup, part).load_state_dict(
                {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
                 for k, v in states[0].items()})
    soup.save(Path(args.out))
    (Path(args.out) / "config.yaml").write_text((Path(args.members[0]) / "config.yaml").read_text())
    result = {"members": scores, "soup": _selection_score(soup, r_val, p_val),
              "ensemble": _selection_score(Ensemble(members), r_val, p_val)}
    print(json.dumps(result, indent=1))
    (Path(__file__).parent / "validation.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
