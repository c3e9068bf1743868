"""Long-horizon time-series forecasting: data protocol, models, metrics, training and benchmarks."""
