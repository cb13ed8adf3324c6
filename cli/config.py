"""`pyswarm config create|ls|inspect|rm`: the cluster's configs (stored_files.py)."""

from pyswarm.cli.stored_files import flavor_app

app = flavor_app("config")
