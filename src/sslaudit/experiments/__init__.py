"""Experiments that retrain encoders (the layer above the lenses): the influence removal
experiment and Q-Score-regularised fine-tuning. They call `run.train_run`; no lens calls them."""
