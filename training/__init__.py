"""salescast.training: forecasters, backtest, Optuna tuning, MLflow tracking and registry."""
