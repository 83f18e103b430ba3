"""Layer 4's alerting: SLO burn rates and threshold rules evaluated from the projections."""
