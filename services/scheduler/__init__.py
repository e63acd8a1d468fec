"""The scheduler: periodic work that decides when the pools work (`tasks.py`)."""
