"""Forecasts of each lifecycle segment's orders and revenue (ml.forecasts.segments)."""
