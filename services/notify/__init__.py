"""The notify pool: matches subscribers and delivers webhooks and email."""
