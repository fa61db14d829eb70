"""The nine ECR emotion labels (ECR_SPEC §2), in the paper's order, and the keep-threshold β."""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise",
)
EMOTION_INDEX = {label: i for i, label in enumerate(EMOTIONS)}
BETA = 0.1  # labels with probability > BETA are kept, ordered by probability
NEUTRAL = EMOTION_INDEX["neutral"]


def kept_labels(probs: "list[float] | tuple[float, ...]", beta: float = BETA, top: int = 3) -> list[tuple[str, float]]:
    """Labels with probability > beta, strongest first, at most `top`; the top-1 label if none passes.

    The top-1 fallback is ECR's rule for user turns that mention entities (an entity always gets an emotion).
    """
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept = [(EMOTIONS[i], float(probs[i])) for i in order if probs[i] > beta][:top]
    return kept or [(EMOTIONS[order[0]], float(probs[order[0]]))]
