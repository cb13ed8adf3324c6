"""The compose file format as `docker stack deploy` reads it: YAML, interpolation, merge,
validation and normalisation into one canonical mapping."""
