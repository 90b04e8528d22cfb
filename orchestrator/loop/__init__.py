"""The control loop: desired state, observe, plan, execute, track; and its commands."""
