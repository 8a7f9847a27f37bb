"""Training: losses (one per module), momentum encoders, schedules, loops, distributed helpers."""
