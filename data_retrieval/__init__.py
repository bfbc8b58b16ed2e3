"""Datasets (layouts, ids, ground truth), attack generation, the Kaggle splitter and the demo set."""
