"""Engine workers benchmark: throughput with 1 and 2 Ray Serve replicas of the embedded engine,
the latency the Ray hop adds, and what a gateway process holds in Ray mode."""
