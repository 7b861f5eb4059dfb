"""The campaign DAGs: the builder that wires them, the task bodies, and the run report."""
