"""The learners app's admin, one module per group of models; importing them registers them."""

from . import consent, learners, scores, segments

__all__ = ["consent", "learners", "scores", "segments"]
