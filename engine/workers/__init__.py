"""Engine workers: cloning engines as Ray Serve deployments, and the gateway's client for them."""
