"""salescast.experiments: experiment specs, settings, the CLI and the orchestration."""
