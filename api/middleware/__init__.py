"""The API request path as ASGI middleware, one concern per module, stacked per endpoint by api/routing.py."""
