"""`pyswarm secret create|ls|inspect|rm`: the cluster's secrets (stored_files.py)."""

from pyswarm.cli.stored_files import flavor_app

app = flavor_app("secret")
