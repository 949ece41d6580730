"""Gateway replicas: which process runs which admitted request, and closing what a dead one left."""
