"""The API's routers, one per concern: forecast, invocations, actuals, model, health."""
