"""Products computed from a run's flux file: the inversion prior, the site scores, the NEE map."""
