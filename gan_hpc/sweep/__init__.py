"""A sweep: its spec and search space, the Tune driver and watchers, ranking, reports, export."""
