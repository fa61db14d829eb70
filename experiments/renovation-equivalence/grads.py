import sys, numpy as np, torch
out = sys.argv[1]
try:
    from ecrs.inference.recommender import TrainedRecommender
except ImportError:
    from ecrs.models.registry import TrainedRecommender
from ecrs.data.prepare import load_samples
from ecrs.models.recommender import feedback_weights
rec = TrainedRecommender.load("/work/baseline/artifacts/recommender/redial/ecr-fast-s0", cache_turns=True)
train = load_samples("/work/baseline/artifacts/data", "redial", "train")[:300]
f = rec.featurize(train)
rows, targets, weights = feedback_weights(train, rec.cfg)
b = f.batch(rows[:256], targets[:256], weights[:256])
res = []
for rep in range(4):
    rec.model.train(); rec.model.zero_grad()
    torch.manual_seed(0)
    loss = rec.model(b).loss
    loss.backward()
    res.append(np.concatenate([p.grad.flatten().numpy() for p in rec.model.parameters() if p.grad is not None]))
np.save(f"{out}_grads.npy", res[0])
print(out, float(loss), [float(np.abs(res[0]-r).max()) for r in res[1:]])
