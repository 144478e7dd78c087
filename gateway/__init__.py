"""Webhook ingress: verifies, deduplicates and queues Slack, GitHub and Stripe deliveries."""

__all__ = ["__version__"]

__version__ = "0.1.0"
