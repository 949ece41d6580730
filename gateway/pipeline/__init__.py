"""The synthesis pipeline: the one path from a request to released, marked audio."""
