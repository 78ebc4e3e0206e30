"""Behavioural clusters of users beside the lifecycle rules (ml.clusters.behaviour)."""
