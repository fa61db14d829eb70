"""One side of the check: the gradients of every parameter for one training batch (train mode, dropout seeded), four
times, to see the backward's own run-to-run spread (CPU reductions are not deterministic across runs)."""
import os
import sys

import numpy as np
import torch

try:
    from ecrs.inference.recommender import TrainedRecommender
except ImportError:
    from ecrs.models.registry import TrainedRecommender
from ecrs.data.prepare import load_samples
from ecrs.models.recommender import feedback_weights

out = sys.argv[1]
rec = TrainedRecommender.load(os.environ["RUN"], cache_turns=True)
train = load_samples(os.environ["DATA"], "redial", "train")[:300]
rows, targets, weights = feedback_weights(train, rec.cfg)
batch = rec.featurize(train).batch(rows[:256], targets[:256], weights[:256])
grads = []
for _ in range(4):
    rec.model.train()
    rec.model.zero_grad()
    torch.manual_seed(0)
    rec.model(batch).loss.backward()
    grads.append(np.concatenate([p.grad.flatten().numpy() for p in rec.model.parameters() if p.grad is not None]))
np.save(f"{out}_grads.npy", np.stack(grads))
