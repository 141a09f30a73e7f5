"""Load scenarios: replay a production request pattern against a service and measure it."""
