"""Trainers: advantage estimators, losses, the built-in learner and the veRL backend."""
