"""Progressive delivery: the canary, the shadow, stepped rollouts and their gates, watched
deploys, and the driver that runs them in a serving process."""
