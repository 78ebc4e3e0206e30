"""Models watched after they ship: realised performance on matured labels, drift, and when to retrain."""
