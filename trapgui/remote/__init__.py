"""Remote jobs: the Antenna processing-service client and worker."""
