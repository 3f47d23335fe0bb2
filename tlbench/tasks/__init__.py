"""Tasks beyond classification: their models, targets and scores."""
