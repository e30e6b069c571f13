"""The HTTP API (FastAPI): partner routes, admin routes and problem+json errors."""
