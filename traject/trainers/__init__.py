"""Trainers: advantages, losses, batching, the built-in learner, SFT, and the veRL backend."""
