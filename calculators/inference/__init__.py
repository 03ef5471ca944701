"""Model inference: InferenceCalculator and the pluggable engines it runs on (see `engines`)."""
