"""One side of the check: serving scores of 600 ReDial test samples, and the logits and loss of one training batch
(eval mode), from the checkpoint $RUN on the prepared data $DATA, with whichever ecrs is on PYTHONPATH."""
import os
import sys

import numpy as np
import torch

try:
    from ecrs.inference.recommender import TrainedRecommender  # after the renovation
except ImportError:
    from ecrs.models.registry import TrainedRecommender  # before
from ecrs.data.prepare import load_samples
from ecrs.models.recommender import feedback_weights

out = sys.argv[1]
rec = TrainedRecommender.load(os.environ["RUN"], cache_turns=True)
test = load_samples(os.environ["DATA"], "redial", "test")[:600]
train = load_samples(os.environ["DATA"], "redial", "train")[:300]
np.save(f"{out}_scores.npy", rec.score(test))
rec.model.eval()
rows, targets, weights = feedback_weights(train, rec.cfg)
with torch.no_grad():
    o = rec.model(rec.featurize(train).batch(rows[:256], targets[:256], weights[:256]))
np.save(f"{out}_logits.npy", o.logits.numpy())
np.save(f"{out}_loss.npy", np.array([float(o.loss)]))
