"""Processes that turn a node's push streams into wake-ups (checks); they decide nothing."""
