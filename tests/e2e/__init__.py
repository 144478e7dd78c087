"""End to end: signed deliveries through the real app, Redis, worker processes and fake platform APIs."""
