"""cryoframe.tasks."""
