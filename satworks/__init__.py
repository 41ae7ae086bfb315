"""satworks: a job platform for apps that take Bitcoin and Lightning payments and run raffles."""

__version__ = "0.1.0"
