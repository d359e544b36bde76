"""Machinery shared by the lenses: memory budgets, out-of-core matrices, nearest neighbours, input saliency."""
