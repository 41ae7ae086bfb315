"""How jobs run: the Dramatiq broker, its middleware and the worker entry point."""
