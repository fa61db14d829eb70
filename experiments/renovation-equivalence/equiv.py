"""Same checkpoint, old code vs new code: serving scores on test samples and the training loss on one batch."""
import sys, numpy as np, torch
out = sys.argv[1]
try:
    from ecrs.inference.recommender import TrainedRecommender
except ImportError:
    from ecrs.models.registry import TrainedRecommender
from ecrs.data.prepare import load_samples
from ecrs.models.recommender import feedback_weights
torch.manual_seed(0)
run = "/work/baseline/artifacts/recommender/redial/ecr-fast-s0"
rec = TrainedRecommender.load(run, cache_turns=True)
test = load_samples("/work/baseline/artifacts/data", "redial", "test")[:600]
train = load_samples("/work/baseline/artifacts/data", "redial", "train")[:300]
scores = rec.score(test)
rec.model.eval()
f = rec.featurize(train)
rows, targets, weights = feedback_weights(train, rec.cfg)
with torch.no_grad():
    o = rec.model(f.batch(rows[:256], targets[:256], weights[:256]))
np.save(f"{out}_scores.npy", scores)
np.save(f"{out}_loss.npy", np.array([float(o.loss)]))
np.save(f"{out}_logits.npy", o.logits.numpy())
print(out, scores.shape, float(o.loss))
