"""salescast.serving: the champion behind a FastAPI prediction API."""
