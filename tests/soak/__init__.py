"""The soak benchmark (``make soak``): ``anxin serve`` under a steady load for a long time."""
